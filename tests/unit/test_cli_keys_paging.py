"""`routerone keys list` reads keys a page at a time (session 16; KEYS_LIST_PAGE at once, not all of
them in one read) and prints every key once, oldest first, across the page boundaries."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from routerone.cli import KEYS_LIST_PAGE
from routerone.store.base import NewKey
from routerone.store.sqlite import SQLiteStore

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import run  # noqa: E402


async def _fill(db: Path, n: int) -> tuple[int, int]:
    store = SQLiteStore(str(db))
    try:
        await store.migrate()
        acc = await store.create_account("many")
        other = await store.create_account("other")
        await store.create_key(NewKey(account_id=other.id, key_hash="other", prefix="r1-other"))
        for i in range(n):
            await store.create_key(NewKey(account_id=acc.id, key_hash=f"h{i}", prefix=f"r1-k{i}", name=f"k{i}"))
        return acc.id, other.id
    finally:
        await store.close()


def test_keys_list_prints_every_key_once_across_pages(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    n = 2 * KEYS_LIST_PAGE + 7
    acc, other = asyncio.run(_fill(db, n))
    out = run(db, "keys", "list", "--account", str(acc))
    assert out.returncode == 0, out.stderr
    assert [line.split()[1] for line in out.stdout.splitlines()] == [f"r1-k{i}" for i in range(n)]
    everyone = run(db, "keys", "list").stdout.splitlines()
    ids = [int(line.split()[0]) for line in everyone]
    assert len(everyone) == n + 1 and ids == sorted(set(ids))
    assert run(db, "keys", "list", "--account", str(other)).stdout.split()[1] == "r1-other"

"""GET /admin/keys is paged (session 16): it listed every key in one response (5,000 keys: 265 ms and
growing linearly). Now `limit` (default 100, 1..100000) and `after_id`, oldest first, and
`next_after_id` in the response (null on the last page). A real gateway on a real socket (SQLite,
and PostgreSQL where marked); the keys are written through the store, read only over HTTP."""
from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import httpx2
import pytest

from routerone.settings import ProviderSettings, Settings
from routerone.store.base import NewKey
from routerone.store.factory import open_store
from routerone.testing.harness import ADMIN_KEY, Gateway

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import pg_database  # noqa: E402

KEYS = 250


async def _fill(database_url: str, n: int) -> int:
    store = open_store(database_url)
    try:
        acc = await store.create_account("many-keys")
        for i in range(n):
            await store.create_key(NewKey(account_id=acc.id, key_hash=f"page-{i}", prefix=f"r1-p{i}", name=f"k{i}"))
        return acc.id
    finally:
        await store.close()


def _pages(http: httpx2.Client, **params: str) -> tuple[list[dict], list[int]]:
    """Follows next_after_id to the end: the keys seen and each page's size."""
    keys: list[dict] = []
    sizes: list[int] = []
    after: int | None = None
    for _ in range(100):
        r = http.get("/admin/keys", params=dict(params, **({"after_id": str(after)} if after is not None else {})))
        assert r.status_code == 200, r.text
        page = r.json()
        keys += page["data"]
        sizes.append(len(page["data"]))
        after = page["next_after_id"]
        if after is None:
            return keys, sizes
        assert after == page["data"][-1]["id"]
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_admin_keys_are_paged_and_following_pages_yields_every_key_once(backend: str, tmp_path: Path,
                                                                        fake_upstream) -> None:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(pg_database()) if backend == "postgres" else f"sqlite:///{tmp_path / 'keys.db'}"
        gw = stack.enter_context(Gateway(Settings(
            database_url=url, demo="off",
            providers={"openai": ProviderSettings(api_key=fake_upstream.api_key, base_url=fake_upstream.base_url)})))
        http = stack.enter_context(httpx2.Client(base_url=gw.url, timeout=60,
                                                 headers={"Authorization": f"Bearer {ADMIN_KEY}"}))
        small = http.get("/admin/keys").json()          # a small install: everything in `data`, as before
        assert len(small["data"]) == 1 and small["next_after_id"] is None
        account_id = asyncio.run(_fill(url, KEYS))

        first = http.get("/admin/keys", params={"account_id": str(account_id), "limit": "100"}).json()
        assert len(first["data"]) == 100 and first["next_after_id"] == first["data"][-1]["id"]
        default = http.get("/admin/keys").json()
        assert len(default["data"]) == 100 and default["next_after_id"] is not None    # the default page size

        keys, sizes = _pages(http, account_id=str(account_id), limit="100")
        assert sizes == [100, 100, 50]
        ids = [k["id"] for k in keys]
        assert ids == sorted(set(ids)) and len(ids) == KEYS
        assert {k["name"] for k in keys} == {f"k{i}" for i in range(KEYS)}
        everyone, _ = _pages(http, limit="77")
        assert len(everyone) == KEYS + 1 and [k["id"] for k in everyone][1:] == ids
        exact, sizes = _pages(http, account_id=str(account_id), limit=str(KEYS))
        assert len(exact) == KEYS and sizes == [KEYS]           # one row more is read: no empty last page

        for params, param in (({"limit": "0"}, "limit"), ({"limit": "100001"}, "limit"), ({"limit": "x"}, "limit"),
                              ({"after_id": "0"}, "after_id"), ({"after_id": "abc"}, "after_id"),
                              ({"after_id": str(2**63)}, "after_id")):
            r = http.get("/admin/keys", params=params)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, (params, r.text)

"""GET /admin/audit pages back to the first entry (session 13): `before_id` and the actor/action
filters used to apply within the newest AUDIT_SCAN_MAX entries only, so older entries could not be
reached through the API. A real gateway on a real socket (SQLite, and PostgreSQL where marked); the
entries are written through the store, read only through the admin HTTP API."""
from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

import httpx2
import pytest

from routerone.services.accounts import AUDIT_SCAN_MAX
from routerone.settings import ProviderSettings, Settings
from routerone.store.factory import open_store
from routerone.testing.harness import ADMIN_KEY, Gateway

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import pg_database  # noqa: E402

EXTRA_ENTRIES = AUDIT_SCAN_MAX + 150


async def _fill(database_url: str, n: int) -> None:
    store = open_store(database_url)
    try:
        for start in range(0, n, 500):
            await asyncio.gather(*(store.record_audit("cli", "account.update", f"account:{i % 7 + 1}", "{}")
                                   for i in range(start, min(n, start + 500))))
    finally:
        await store.close()


def _pages(http: httpx2.Client, **params: str) -> tuple[list[dict], int]:
    """Follows next_before_id to the end; the entries seen and the number of requests it took."""
    entries: list[dict] = []
    before: int | None = None
    for requests in range(1, 200):
        query = dict(params, **({"before_id": str(before)} if before is not None else {}))
        r = http.get("/admin/audit", params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        entries += page["data"]
        before = page["next_before_id"]
        if before is None:
            return entries, requests
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_audit_pages_back_to_the_first_entry(backend: str, tmp_path: Path, fake_upstream) -> None:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(pg_database()) if backend == "postgres" else f"sqlite:///{tmp_path / 'audit.db'}"
        gw = stack.enter_context(Gateway(Settings(
            database_url=url, demo="off", usage_flush_interval_s=0.05,
            providers={"openai": ProviderSettings(api_key=fake_upstream.api_key, base_url=fake_upstream.base_url)})))
        http = stack.enter_context(httpx2.Client(base_url=gw.url, timeout=60,
                                                 headers={"Authorization": f"Bearer {ADMIN_KEY}"}))
        first = http.get("/admin/audit").json()["data"]
        assert [(e["actor"], e["action"]) for e in first] == [("system", "key.create")]   # the bootstrap key
        oldest = first[0]
        asyncio.run(_fill(url, EXTRA_ENTRIES))

        everything, requests = _pages(http, limit="1000")
        ids = [e["id"] for e in everything]
        assert len(ids) == EXTRA_ENTRIES + 1 and ids == sorted(set(ids), reverse=True)
        assert everything[-1] == oldest and requests == -(-(EXTRA_ENTRIES + 1) // 1000)

        # filters that match only the oldest entry, under more than AUDIT_SCAN_MAX newer ones
        for params in ({"actor": "system"}, {"action": "key."}, {"action": "key.create", "limit": "1"},
                       {"target": oldest["target"], "actor": "system"}):
            found, _ = _pages(http, **params)
            assert found == [oldest], params
        assert _pages(http, actor="nobody")[0] == []
        family, _ = _pages(http, action="account.", limit="1000")
        assert len(family) == EXTRA_ENTRIES and family[-1]["id"] == ids[-2]
        assert _pages(http, target="account:3", limit="1000")[0] == [e for e in everything if e["target"] == "account:3"]
        hour_ago, later = str(int(oldest["created_at"]) - 3600), str(int(time.time()) + 3600)
        assert _pages(http, since=hour_ago, limit="1000")[0] == everything
        assert _pages(http, since=later) == ([], 1)           # the scan stops at the first older entry

"""Micro-benchmark: the cost of writing the usage row inside the settle transaction (issue 11).

Per store (SQLite file, PostgreSQL), N requests are reserved, then settled by C concurrent callers:
  old:  store.settle(id, cost), then the usage rows written by store.insert_usage in batches of 200
        (what the UsageWriter queue did)
  new:  store.settle_recorded(id, cost, record): the row written in the settle's own transaction
Prints settles/s (wall clock, including the usage writes) and the database round trips (PostgreSQL).

    .venv/bin/python bench/settle_usage_micro.py [--n 4000] [--concurrency 64] [--skip-postgres]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid

from routerone.store.base import NewKey, Reservation, UsageRecord
from routerone.store.postgres import PostgresStore
from routerone.store.sqlite import SQLiteStore

PG_URL = os.environ.get("ROUTERONE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _record(rid: str, acc: int, key: int) -> UsageRecord:
    return UsageRecord(rid, key, acc, "auto", "gpt-4o-mini", "openai", 10, 5, 0, 0, 3.2, None, 200, None, False,
                       time.time(), "chat", "balanced: cheapest", None)


async def run(store, n: int, concurrency: int, mode: str) -> float:
    acc = await store.create_account("bench")
    await store.adjust_balance(acc.id, 10**12, kind="credit")
    key = await store.create_key(NewKey(account_id=acc.id, key_hash=uuid.uuid4().hex, prefix="b"))
    ids = [f"{mode}-{uuid.uuid4().hex[:8]}-{i}" for i in range(n)]
    for i in range(0, n, 256):
        await asyncio.gather(*(store.reserve(Reservation(rid, acc.id, key.id, 100, 4e9)) for rid in ids[i:i + 256]))
    queue = asyncio.Queue()
    for rid in ids:
        queue.put_nowait(rid)
    pending: list[UsageRecord] = []

    async def worker() -> None:
        while not queue.empty():
            rid = queue.get_nowait()
            if mode == "new":
                await store.settle_recorded(rid, 50, _record(rid, acc.id, key.id))
            else:
                s = await store.settle(rid, 50)
                rec = _record(rid, acc.id, key.id)
                rec.cost_micros = s.charged_micros
                pending.append(rec)
                if len(pending) >= 200:
                    batch = pending[:200]
                    del pending[:200]
                    await store.insert_usage(batch)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if pending:
        await store.insert_usage(pending)
    return n / (time.perf_counter() - t0)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--skip-postgres", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        stores = [("sqlite", lambda: SQLiteStore(os.path.join(d, f"{uuid.uuid4().hex}.db")))]
        if not a.skip_postgres:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            import asyncpg
            admin = await asyncpg.connect(PG_URL)
            await admin.execute(f'CREATE SCHEMA "{schema}"')
            stores.append(("postgres", lambda: PostgresStore(PG_URL, server_settings={"search_path": schema})))
        try:
            for name, make in stores:
                for mode in ("old", "new") * int(os.environ.get("REPEAT", "2")):
                    store = make()
                    await store.migrate()
                    rate = await run(store, a.n, a.concurrency, mode)
                    extra = f"  round trips {store.round_trips()}" if hasattr(store, "round_trips") else ""
                    print(f"{name:9s} {mode}: {rate:8.0f} settles/s (with usage rows){extra}", flush=True)
                    await store.close()
        finally:
            if not a.skip_postgres:
                await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

"""Micro-benchmark: PostgreSQL CPU per request of the batch routines, pg_0001/0002 vs pg_0003_batch.

One connection, one account and key, N requests (N x B/8 for B > 8) reserved then settled (with
usage rows) in batches of B, by the old routines (ro_reserve_many, ro_settle_record_many) and by the new ones
(ro_reserve_batch, ro_settle_batch). Prints the server backend's CPU time per request (utime + stime
of its process, from /proc: the server must run on this machine) for reserve and for settle, and
the wall time. CPU time, not wall time, so it means something on a busy machine too.

    .venv/bin/python bench/pg_batch_micro.py [--n 4096] [--batches 1,8,32,128]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import time

import asyncpg

from routerone.store import postgres_sql as sql
from routerone.store.postgres import PostgresStore

PG_URL = os.environ.get("ROUTERONE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
TICKS = os.sysconf("SC_CLK_TCK")
USAGE = ([7], [1], ["auto"], ["gpt-4o-mini"], ["openai"], [10], [5], [0], [3.2], [None], [200], [None], [0],
         [0.0], ["chat"], ["balanced"], [None])       # $5..$21, one item; repeated per batch


def backend_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def one(conn: asyncpg.Connection, pid: int, variant: str, n: int, b: int, tag: str) -> dict:
    acc = await conn.fetchval("INSERT INTO accounts (name, balance_micros, created_at) VALUES ('m', 1000000000000, 0) "
                              "RETURNING id")
    key = await conn.fetchval("INSERT INTO api_keys (account_id, key_hash, prefix, created_at) "
                              "VALUES ($1, $2, 'p', 0) RETURNING id", acc, f"h-{tag}")
    reserve, settle = (sql.RESERVE_MANY, sql.SETTLE_RECORD_MANY) if variant == "old" else \
                      (sql.RESERVE_BATCH, sql.SETTLE_BATCH)
    ids = [f"{tag}-{i}" for i in range(n)]
    out = {}
    for phase in ("reserve", "settle"):
        c0, t0 = backend_cpu_s(pid), time.perf_counter()
        for i in range(0, n, b):
            chunk = ids[i:i + b]
            m = len(chunk)
            if phase == "reserve":
                await conn.fetchrow(reserve, chunk, [acc] * m, [key] * m, [1000] * m, [4e9] * m, "off")
            else:
                usage = [col * m for col in USAGE]
                usage[0], usage[1] = [key] * m, [acc] * m
                await conn.fetchrow(settle, chunk, [400] * m, time.time(), [True] * m, *usage, "off")
        out[phase] = ((backend_cpu_s(pid) - c0) * 1e6 / n, (time.perf_counter() - t0) * 1e6 / n)
    bal = await conn.fetchval("SELECT balance_micros FROM accounts WHERE id = $1", acc)
    assert bal == 10**12 - 400 * n, bal
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--batches", default="1,8,32,128")
    a = ap.parse_args()
    admin = await asyncpg.connect(PG_URL)
    db = f"pgscale_micro_{os.getpid()}"
    await admin.execute(f'CREATE DATABASE "{db}"')
    try:
        url = PG_URL.rsplit("/", 1)[0] + "/" + db
        store = PostgresStore(url)
        await store.migrate()
        await store.close()
        conn = await asyncpg.connect(url)
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        print(f"{'batch':>5} {'variant':>7} {'reserve CPU us/req':>19} {'settle CPU us/req':>18} "
              f"{'reserve wall':>12} {'settle wall':>11}")
        for b in [int(x) for x in a.batches.split(",")]:
            n = a.n * max(1, b // 8)        # CPU time comes in 10 ms ticks: enough work per figure
            for variant in ("old", "new"):                      # warm-up (plans cached), not shown
                await one(conn, pid, variant, a.n, b, f"{variant}{b}-{time.monotonic_ns()}")
            for variant in ("old", "new"):
                r = await one(conn, pid, variant, n, b, f"{variant}{b}-{time.monotonic_ns()}")
                print(f"{b:5d} {variant:>7} {r['reserve'][0]:19.1f} {r['settle'][0]:18.1f} "
                      f"{r['reserve'][1]:12.1f} {r['settle'][1]:11.1f}")
        await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

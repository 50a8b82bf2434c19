"""Console Activity page load with 100,000 usage rows (issue 13: under 200 ms of server time).

    .venv/bin/python bench/console_activity.py                  # SQLite, and PostgreSQL if reachable
    .venv/bin/python bench/console_activity.py --rows 100000 --runs 30 --skip-postgres

Fills one account with N usage rows spread over the last 29 days (8 models, 5 keys), starts a real
Router One on that database, signs a console user in, and times GET /console/activity (the account's
page) and /console/operator/activity (gateway-wide) over loopback: each figure is the full request
(server time plus a loopback round trip, so an upper bound of the server time). The page's one
aggregate query is an index-only range scan on usage_account_rollup / usage_time_rollup
(migration 0007); the query plan is printed.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from http.cookiejar import CookieJar
from urllib.parse import urlencode
import urllib.request

import asyncpg

from routerone.console.web import CONSOLE
from routerone.settings import Settings
from routerone.store.base import Store, UsageRecord
from routerone.store.factory import open_store
from routerone.testing.harness import Gateway

MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "claude-sonnet-4", "claude-haiku", "gemini-2.5-flash",
          "llama-3.3-70b", "deepseek-chat"]
PG_URL = os.environ.get("ROUTERONE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
EMAIL, PASSWORD = "bench@example.com", "bench-password-1"
PAGES = [("account 30d by day", "/console/activity?range=30d&by=day"),
         ("account 7d by hour", "/console/activity?range=7d&by=hour"),
         ("account 24h by hour", "/console/activity?range=24h&by=hour"),
         ("gateway 30d by day", "/console/operator/activity?range=30d&by=day")]


async def fill(store: Store, rows: int) -> int:
    await store.migrate()
    acc = await store.create_account("bench")
    await store.adjust_balance(acc.id, 10**9, kind="credit")
    rnd, now, span = random.Random(7), time.time(), 29 * 86_400   # all inside the 30-day pages
    batch: list[UsageRecord] = []
    for i in range(rows):
        batch.append(UsageRecord(f"b{i}", key_id=1 + i % 5, account_id=acc.id, requested_model="auto",
                                 routed_model=rnd.choice(MODELS), provider="openai",
                                 prompt_tokens=rnd.randint(10, 3000), completion_tokens=rnd.randint(5, 800),
                                 cost_micros=rnd.randint(10, 20_000), latency_ms=rnd.uniform(100, 3000),
                                 status=200 if rnd.random() > 0.02 else 502, created_at=now - rnd.uniform(0, span),
                                 route_reason="balanced: bench"))
        if len(batch) == 5_000:
            await store.insert_usage(batch)
            batch = []
    await store.insert_usage(batch)
    return acc.id


def sign_in(base: str) -> urllib.request.OpenerDirector:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(base + "/console/login").read()
    csrf = next(c.value for c in jar if c.name == "ro_console_login")
    opener.open(base + "/console/login", urlencode({"csrf": csrf, "email": EMAIL, "password": PASSWORD}).encode()).read()
    assert any(c.name == "ro_console" for c in jar), "sign-in failed"
    return opener


def measure(database_url: str, rows: int, runs: int, label: str) -> list[tuple[str, float, float, float]]:
    store = open_store(database_url)
    t0 = time.perf_counter()
    account_id = asyncio.run(_fill_and_close(store, rows))
    print(f"[{label}] {rows:,} usage rows written in {time.perf_counter() - t0:.1f} s", flush=True)
    if database_url.startswith("postgresql"):
        # what autovacuum does after a bulk of inserts (PG 13+): statistics and the visibility map,
        # which the index-only COUNT of the roll-up cache relies on
        asyncio.run(_admin("VACUUM ANALYZE usage", database_url))
    gw = Gateway(Settings(database_url=database_url, demo="off", providers={}))
    gw.start()
    try:
        console = gw.app[CONSOLE]          # type: ignore[index]
        gw.call(console.users.create(EMAIL, PASSWORD, account_id=account_id, role="operator"))
        opener = sign_in(gw.url)
        out = []
        for name, path in PAGES:
            t = time.perf_counter()
            opener.open(gw.url + path).read()           # first load: the roll-up cache is cold
            cold_ms = (time.perf_counter() - t) * 1000
            for _ in range(2):
                opener.open(gw.url + path).read()
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                body = opener.open(gw.url + path).read()
                times.append((time.perf_counter() - t) * 1000)
            if "30d" in path:
                assert f"{rows:,}".encode() in body, "the page does not count every request"
            times.sort()
            out.append((name, statistics.median(times), times[int(0.95 * (len(times) - 1))], times[-1]))
            print(f"[{label}] {name:<22} p50 {out[-1][1]:6.1f} ms  p95 {out[-1][2]:6.1f} ms  max {out[-1][3]:6.1f} ms  "
                  f"(first load, cache cold: {cold_ms:.1f} ms)",
                  flush=True)
        cache = console.activity_cache
        print(f"[{label}] roll-up cache: {cache.hits} hits, {cache.misses} misses", flush=True)
    finally:
        gw.stop()
    return out


async def _fill_and_close(store: Store, rows: int) -> int:
    try:
        return await fill(store, rows)
    finally:
        await store.close()


def sqlite_plan(path: str) -> None:
    import sqlite3
    db = sqlite3.connect(path)
    plan = db.execute("EXPLAIN QUERY PLAN SELECT CAST(CAST(created_at / 86400 AS INTEGER) * 86400 AS REAL) AS b, "
                      "routed_model, key_id, COUNT(*), SUM(cost_micros) FROM usage WHERE account_id = 1 AND "
                      "created_at >= 0 GROUP BY b, routed_model, key_id").fetchall()
    print("[sqlite] plan: " + " | ".join(r[-1] for r in plan))
    db.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "console-bench.db")
        results["sqlite"] = measure(f"sqlite:///{path}", args.rows, args.runs, "sqlite")
        sqlite_plan(path)
    if not args.skip_postgres:
        db = f"r1_console_bench_{uuid.uuid4().hex[:8]}"
        try:
            asyncio.run(_admin(f"CREATE DATABASE {db}"))
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"[postgres] skipped: {exc}")
        else:
            try:
                results["postgres"] = measure(PG_URL.rsplit("/", 1)[0] + "/" + db, args.rows, args.runs, "postgres")
            finally:
                asyncio.run(_admin(f"DROP DATABASE {db} WITH (FORCE)"))
    worst = max(p95 for res in results.values() for _, _, p95, _ in res)
    print(f"worst p95: {worst:.1f} ms (target: under 200 ms)")
    return 0 if worst < 200 else 1


async def _admin(sql: str, url: str = PG_URL) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())

"""The deployed topology under load (issue 15, item 1): nginx in front of three Router One
instances sharing PostgreSQL and Redis, a fake upstream, and steady load (streams and
non-streams, several keys) through the official `openai` SDK.

(a) One instance is SIGKILLed: the only requests that fail are ones that were in flight on it
    (nginx's access log says which instance each request went to); traffic continues on the
    other two (nginx: a refused connection goes to the next instance).
(b) A rolling restart with SIGTERM, one instance at a time (each drains, exits 0, comes back):
    no request fails.
(c) Afterwards money, usage and limiter state reconcile exactly with what the clients were told:
    per account, balance = credit - sum of `usage.cost`; the ledger holds exactly one charge per
    answered request, of that cost; a usage row per answered request with that cost; in Redis each
    answered request is logged with exactly the tokens its usage reported; what the killed instance
    left behind (open holds, unreleased leases) is no more than the requests that failed there.

Figures are printed on a line starting with `FIGURES topology` (run with -s).
"""
from __future__ import annotations

import asyncio
import collections
import random
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import asyncpg
import openai
import pytest
import redis.asyncio as aioredis
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import (MODEL, Admin, FakeUpstream, GatewayProcess, bootstrap_admin, free_port,  # noqa: E402
                           pg_database, write_catalog, write_config)
from ratelimit_procs import delete_scopes, require_redis  # noqa: E402
from topology_procs import Nginx, nginx_binary, parse_access_log  # noqa: E402

from routerone.limits import KEY_PREFIX  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

N_INSTANCES = 3
N_KEYS = 4
CONCURRENCY = 16            # client loops sending back to back
BALANCE = 50_000_000        # $50 per account
CHUNK_MS = 20               # upstream pacing: a 25-token stream takes ~0.5 s
STREAM_TOKENS = 25
LIMITER_WINDOW_S = 60       # the production window (the Redis limiter's log of admitted requests)
FAIL_TIMEOUT_S = 2.0        # nginx's fail_timeout (deploy/nginx/routerone.conf.template, topology_procs)
PLAIN_TOKENS = 5
PLAIN_SLEEP_MS = 150
STEADY_ANSWERS = 30         # answered requests before the kill, and after it before the restart


@dataclass
class Sent:
    cid: str                     # the client's x-request-id (nginx logs it)
    key: int
    stream: bool
    started: float
    ended: float = 0.0
    ok: bool = False
    error: str = ""
    billing_id: str = ""         # x-routerone-request-id: the ledger / usage / limiter id
    cost_micros: int = 0
    total_tokens: int = 0


def micros(cost) -> int:
    return int(Decimal(str(cost)) * 1_000_000)


async def one(client: AsyncOpenAI, key: int, stream: bool) -> Sent:
    s = Sent(f"topo-{uuid.uuid4().hex[:16]}", key, stream, time.monotonic())
    try:
        if stream:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": "stream please"}], max_tokens=STREAM_TOKENS,
                stream=True, stream_options={"include_usage": True}, extra_headers={"x-request-id": s.cid})
            s.billing_id = raw.headers.get("x-routerone-request-id", "")
            usage, tokens = None, 0
            async for chunk in raw.parse():
                tokens += sum(1 for c in chunk.choices if c.delta.content)
                usage = chunk.usage or usage
            assert usage is not None and tokens == STREAM_TOKENS, f"stream ended early ({tokens} tokens)"
        else:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": f"[[sleep:{PLAIN_SLEEP_MS}]] plain"}],
                max_tokens=PLAIN_TOKENS, extra_headers={"x-request-id": s.cid})
            s.billing_id = raw.headers.get("x-routerone-request-id", "")
            usage = raw.parse().usage
        s.cost_micros = micros((usage.model_extra or {})["cost"])
        s.total_tokens = usage.total_tokens
        s.ok = True
    except Exception as exc:  # noqa: BLE001 - every failure is counted and checked below
        s.error = f"{type(exc).__name__}: {exc}"[:200]
    s.ended = time.monotonic()
    return s


async def load(clients: list[AsyncOpenAI], stop: asyncio.Event, out: list[Sent]) -> None:
    async def loop(i: int) -> None:
        n = i
        while not stop.is_set():
            out.append(await one(clients[n % len(clients)], n % len(clients), stream=n % 2 == 0))
            n += 1
    await asyncio.gather(*(loop(i) for i in range(CONCURRENCY)))


async def isolate_pg_ids(db_url: str) -> None:
    """This run's accounts and keys get ids no other run on the shared Redis uses (scopes key:<id>)."""
    start = random.SystemRandom().randrange(10**9, 10**12)
    conn = await asyncpg.connect(db_url)
    try:
        for seq in ("accounts_id_seq", "api_keys_id_seq"):
            await conn.execute(f"ALTER SEQUENCE {seq} RESTART WITH {start}")
    finally:
        await conn.close()


def restart(gw: GatewayProcess, incarnation: int) -> None:
    gw.log_path = gw.log_path.with_name(f"{gw.name}-{incarnation}.log")
    gw.start().wait_ready()


def prefix_of(gw: GatewayProcess) -> str:
    import urllib.request
    with urllib.request.urlopen(gw.url + "/healthz", timeout=5) as r:
        return r.headers["x-request-id"][:-10]


def test_nginx_three_instances_kill_rolling_restart_and_reconcile(tmp_path: Path):
    nginx_binary()
    redis_url = require_redis()
    with pg_database() as db_url, FakeUpstream(chunk_interval_ms=CHUNK_MS) as upstream:
        asyncio.run(scenario(tmp_path, db_url, upstream, redis_url))


async def scenario(tmp_path: Path, db_url: str, upstream: FakeUpstream, redis_url: str) -> None:
    scopes: list[str] = []
    if True:
        await bootstrap_admin(db_url)
        await isolate_pg_ids(db_url)
        config = write_config(tmp_path / "gateway.toml", database_url=db_url, upstream_url=upstream.base_url,
                              catalog_path=write_catalog(tmp_path / "catalog.toml"), redis_url=redis_url,
                              drain_timeout_s=10.0)
        gateways = [GatewayProcess(config, tmp_path, f"gw{i}") for i in range(N_INSTANCES)]
        (tmp_path / "nginx").mkdir()
        nginx = Nginx(tmp_path / "nginx", free_port(), [g.port for g in gateways])
        instance_of: dict[str, int] = {}          # process prefix of x-routerone-request-id -> instance
        try:
            for g in gateways:
                g.log_path = g.log_path.with_name(f"{g.name}-0.log")
                g.start()
            for i, g in enumerate(gateways):
                await asyncio.to_thread(g.wait_ready)
                instance_of[await asyncio.to_thread(prefix_of, g)] = i
            nginx.start()
            async with Admin(nginx.url) as admin:
                made = [await admin.new_key(BALANCE, rpm=100_000, tpm=10**9, concurrency=1000) for _ in range(N_KEYS)]
            keys = [m[0] for m in made]
            accounts = [m[1] for m in made]
            key_ids = [m[2] for m in made]
            scopes += [f"key:{k}" for k in key_ids]
            clients = [AsyncOpenAI(base_url=nginx.url + "/v1", api_key=k, max_retries=0, timeout=30) for k in keys]

            results: list[Sent] = []
            stop = asyncio.Event()
            load_task = asyncio.create_task(load(clients, stop, results))

            async def answered_since(t: float, n: int, timeout_s: float = 30.0) -> None:
                """Wait (on a slow machine, longer) until n requests sent after t have been answered."""
                deadline = time.monotonic() + timeout_s
                while sum(1 for s in results if s.ok and s.started > t) < n and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            await answered_since(0, STEADY_ANSWERS)                   # steady load on three

            # (a) SIGKILL one instance
            killed = gateways[0]
            kill_at = time.monotonic()
            await asyncio.to_thread(killed.kill)
            dead_at = time.monotonic()     # reaped: a request sent before this may have reached it
            await asyncio.sleep(1.0)
            await answered_since(dead_at + 0.05, STEADY_ANSWERS)      # traffic goes on on two
            after_kill = [s for s in results if s.started > dead_at + 0.05]
            await asyncio.to_thread(restart, killed, 1)
            instance_of[await asyncio.to_thread(prefix_of, killed)] = 0
            await asyncio.sleep(FAIL_TIMEOUT_S + 0.5)           # nginx tries it again after fail_timeout

            # (b) rolling restart with SIGTERM
            roll_at = time.monotonic()
            drains = []
            for i, g in enumerate(gateways):
                # one at a time, and never before nginx takes the previous one back (fail_timeout):
                # with passive health only, nginx would otherwise count two instances out at once. Its
                # last failed try of the restarted instance can come until that instance listens, so
                # fail_timeout is counted from then (counted from the SIGTERM, a restart slowed by a
                # loaded machine left nginx two instances out: 48 requests failed in one CI run)
                g.proc.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(g.proc.wait, 30)
                drains.append((code, [ln for ln in g.log_tail(50).splitlines() if "drain" in ln]))
                await asyncio.to_thread(restart, g, 2)
                instance_of[await asyncio.to_thread(prefix_of, g)] = i
                await asyncio.sleep(FAIL_TIMEOUT_S + 0.5)
            roll_end = time.monotonic()
            await asyncio.sleep(1.0)
            stop.set()
            await load_task
            for c in clients:
                await c.close()
            await asyncio.sleep(0.5)                                   # usage queues flush every 50 ms

            # -- what the clients saw ------------------------------------------------------------
            log = parse_access_log(nginx.access_log)
            killed_addr = f"127.0.0.1:{killed.port}"
            failed = [s for s in results if not s.ok]
            # in flight on the killed instance: sent before it was gone (the SIGKILL is sent from a
            # thread, so requests sent between kill_at and its death reach it too), still open at
            # kill_at, and nginx's last try went to it
            in_flight_on_killed = [s for s in results if s.started < dead_at and s.ended > kill_at
                                   and log.get(s.cid, {}).get("upstream", [""])[-1] == killed_addr]
            failed_kill = [s for s in failed if s.started < roll_at]
            failed_roll = [s for s in failed if s.started >= roll_at or s.ended >= roll_at]
            ok = [s for s in results if s.ok]
            served_by = collections.Counter(instance_of.get(s.billing_id[:-10], -1) for s in ok)

            # -- what the stores say -------------------------------------------------------------
            conn = await asyncpg.connect(db_url)
            try:
                acc_rows = {r["id"]: r for r in await conn.fetch(
                    "SELECT id, balance_micros, reserved_micros FROM accounts WHERE id = ANY($1)", accounts)}
                ledger_sum = {r[0]: r[1] for r in await conn.fetch(
                    "SELECT account_id, SUM(amount_micros)::BIGINT FROM ledger WHERE account_id = ANY($1) "
                    "GROUP BY account_id", accounts)}
                charge_rows = await conn.fetch(
                    "SELECT request_id, account_id, amount_micros FROM ledger WHERE kind = 'charge' "
                    "AND account_id = ANY($1)", accounts)
                charges = {r[0]: -r[2] for r in charge_rows}
                charged_account = {r[0]: r[1] for r in charge_rows}
                usage_rows = {r[0]: (r[1], r[2]) for r in await conn.fetch(
                    "SELECT request_id, cost_micros, status FROM usage WHERE account_id = ANY($1)", accounts)}
                open_holds = {r[0]: r[1] for r in await conn.fetch(
                    "SELECT request_id, amount_micros FROM reservations WHERE state = 'open' AND account_id = ANY($1)",
                    accounts)}
            finally:
                await conn.close()
            checked_at = time.monotonic()
            r = aioredis.from_url(redis_url)
            try:
                logged = {k: await r.zcard(f"{KEY_PREFIX}key:{k}:req") for k in key_ids}
                leases = {k: await r.zcard(f"{KEY_PREFIX}key:{k}:cc") for k in key_ids}
                lease_ids = {m.decode() for k in key_ids for m in await r.zrange(f"{KEY_PREFIX}key:{k}:cc", 0, -1)}
                tok = {}
                for k in key_ids:
                    tok.update({rid.decode(): int(v) for rid, v in (await r.hgetall(f"{KEY_PREFIX}key:{k}:tok")).items()})
            finally:
                await r.aclose()

            told = collections.Counter()
            for s in ok:
                told[accounts[s.key]] += s.cost_micros
            ok_ids = {s.billing_id: s for s in ok}
            missing_usage = [s for s in ok if s.billing_id not in usage_rows]
            # a request in flight on the killed instance whose settle committed in the instant
            # before the kill, its reply not yet out: charged (with its usage row), never answered
            unanswered = {rid: c for rid, c in charges.items() if rid not in ok_ids}
            figures = dict(
                requests=len(results), ok=len(ok), streams=sum(s.stream for s in results),
                served_by_instance=dict(sorted(served_by.items())),
                in_flight_on_killed_at_kill=len(in_flight_on_killed), failed_during_kill=len(failed_kill),
                failed_during_rolling_restart=len(failed_roll),
                requests_after_kill_before_restart=len(after_kill),
                rolling_restart_s=round(roll_end - roll_at, 2),
                drain_exit_codes=[d[0] for d in drains], open_holds_left_by_kill=len(open_holds),
                leases_left_by_kill=sum(leases.values()), usage_rows=len(usage_rows),
                usage_rows_missing=len(missing_usage), told_micros=sum(told.values()),
                charged_but_unanswered_by_kill=len(unanswered))
            print(f"FIGURES topology: {figures}")
            for code, lines in drains:
                for line in lines:
                    print(f"FIGURES topology drain: exit={code} {line}")

            # (a) only requests in flight on the killed instance failed, and traffic went on
            assert failed_kill, "the SIGKILL failed no request: load too light to test (a)"
            assert {s.cid for s in failed_kill} <= {s.cid for s in in_flight_on_killed}, [
                (s.cid, s.error, log.get(s.cid)) for s in failed_kill if s not in in_flight_on_killed][:5]
            assert sum(s.ok for s in after_kill if s.started < roll_at) >= STEADY_ANSWERS, "traffic did not go on"
            assert all(s.ok for s in after_kill if s.started < roll_at)
            # (b) the rolling restart failed nothing; each instance drained and exited 0
            assert not failed_roll, [(s.cid, s.error, log.get(s.cid)) for s in failed_roll][:5]
            assert [d[0] for d in drains] == [0] * N_INSTANCES, drains
            assert all(any("drained:" in ln for ln in lines) for _, lines in drains), drains
            assert set(served_by) == {0, 1, 2}, served_by
            # (c) money: balance = credit - what clients were told; ledger = balance; one charge each
            # (exactly, apart from requests in flight on the killed instance that were charged in the
            # instant between their settle's commit and their reply: each has its usage row with that
            # cost, and with the holds the kill left they are no more than were in flight on it)
            assert len(unanswered) + len(open_holds) <= len(in_flight_on_killed), (unanswered, open_holds)
            assert all(usage_rows.get(rid, (None,))[0] == c for rid, c in unanswered.items()), unanswered
            for a in accounts:
                lost_reply = sum(c for rid, c in unanswered.items() if charged_account[rid] == a)
                assert acc_rows[a]["balance_micros"] == BALANCE - told[a] - lost_reply, (a, acc_rows[a], told[a])
                assert ledger_sum[a] == acc_rows[a]["balance_micros"]
            assert {rid: c for rid, c in charges.items() if rid in ok_ids} == \
                {s.billing_id: s.cost_micros for s in ok if s.cost_micros}
            assert all(s.cost_micros > 0 for s in ok)
            # what the kill left: holds of requests that never answered, no more than failed there
            assert not set(open_holds) & set(ok_ids)
            assert len(open_holds) <= len(failed_kill)
            assert sum(acc_rows[a]["reserved_micros"] for a in accounts) == sum(open_holds.values())
            # limiter: every answered request logged with exactly the tokens its usage reported;
            # requests logged but never answered are exactly the leases the kill left behind
            # (the limiter keeps a request for its 60 s window: on a machine so slow that the run
            # outlasted it, only the requests still inside the window can be checked)
            in_window = {rid: s for rid, s in ok_ids.items() if s.started > checked_at - LIMITER_WINDOW_S + 2}
            assert {rid: tok.get(rid) for rid in in_window} == {rid: s.total_tokens for rid, s in in_window.items()}
            # a request charged but never answered (see (c)) gave its lease back if the kill came after
            # its release (which follows the settle): it is logged with its tokens, and it was charged
            released_unanswered = set(tok) - set(ok_ids) - lease_ids
            assert released_unanswered <= set(unanswered), released_unanswered - set(unanswered)
            if len(in_window) == len(ok_ids):
                assert sum(logged.values()) - len(ok) == sum(leases.values()) + len(released_unanswered) \
                    <= len(failed_kill)
            assert len(open_holds) <= sum(leases.values()) <= len(failed_kill)
            # usage rows: each with the cost the client was told, none for anything else
            assert all(usage_rows[s.billing_id] == (s.cost_micros, 200) for s in ok if s.billing_id in usage_rows)
            assert set(usage_rows) <= set(ok_ids) | set(unanswered), set(usage_rows) - set(ok_ids)
            if missing_usage:
                lost_on = collections.Counter(instance_of.get(s.billing_id[:-10]) for s in missing_usage)
                assert all(s.ended <= kill_at and instance_of.get(s.billing_id[:-10]) == 0 for s in missing_usage), \
                    lost_on
                pytest.xfail(f"KNOWN GAP (issue 11, usage rows written with the settle): {len(missing_usage)} "
                             f"usage row(s) of requests answered by the SIGKILLed instance were still queued "
                             f"in its memory and are lost; balances, ledger and limiter reconcile exactly")
        finally:
            nginx.stop()
            for g in gateways:
                g.stop()
            delete_scopes(redis_url, scopes)

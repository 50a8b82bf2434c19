"""Issue 4 "done when", concurrency: a prepaid balance can not be overspent by concurrent requests.

An account funded for exactly N requests receives 10xN concurrent requests through two gateway
processes sharing one PostgreSQL database (and through one in-thread gateway on SQLite): exactly N
succeed, the rest get the seed's 402, the balance ends at exactly zero and is never negative while
the burst runs, and the ledger sums to the balance. When requests cost less than their worst case,
more than N succeed and the balance still never goes below zero.

Every figure is printed (run with `pytest -s`) on lines starting with `FIGURES`.
"""
from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import asyncpg
import openai
import pytest
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import (MAX_OUTPUT, MODEL, OUTPUT_MICROS_PER_TOKEN, SEED_402, Admin,  # noqa: E402
                           FakeUpstream, GatewayProcess, billing_id, bootstrap_admin, cost_header_micros, pg_database,
                           usage_cost_micros, write_catalog, write_config)

from routerone.testing.harness import Gateway  # noqa: E402

pytestmark = pytest.mark.slow

N = 20                                                    # requests the account is funded for
EXACT_MAX_TOKENS = 5
EXACT_COST = EXACT_MAX_TOKENS * OUTPUT_MICROS_PER_TOKEN   # worst case == actual cost
CHEAP_WORST = MAX_OUTPUT * OUTPUT_MICROS_PER_TOKEN        # no max_tokens: the model's max output
CHEAP_COST = 12 * OUTPUT_MICROS_PER_TOKEN                 # the fake's default 12-token reply


# -- targets: where the requests go, and how the test reads the balance behind the gateway's back --
@dataclass
class Target:
    name: str
    base_urls: list[str]            # one per gateway process; requests alternate between them
    admin_url: str
    open_probe: Callable[[], Awaitable["Probe"]]


class Probe:
    async def read(self, account_id: int) -> tuple[int, int]:   # (balance_micros, reserved_micros)
        raise NotImplementedError

    async def close(self) -> None:
        pass


class PgProbe(Probe):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def read(self, account_id: int) -> tuple[int, int]:
        r = await self.conn.fetchrow("SELECT balance_micros, reserved_micros FROM accounts WHERE id = $1",
                                     account_id)
        return r[0], r[1]

    async def close(self) -> None:
        await self.conn.close()


class SqliteProbe(Probe):
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, timeout=30)

    async def read(self, account_id: int) -> tuple[int, int]:
        r = self.db.execute("SELECT balance_micros, reserved_micros FROM accounts WHERE id = ?",
                            (account_id,)).fetchone()
        return r[0], r[1]

    async def close(self) -> None:
        self.db.close()


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def postgres_target(upstream, tmp_path_factory):
    with pg_database() as db_url:
        asyncio.run(bootstrap_admin(db_url))
        d = tmp_path_factory.mktemp("pg-gateways")
        cfg = write_config(d / "gateway.toml", database_url=db_url, upstream_url=upstream.base_url,
                           catalog_path=write_catalog(d / "catalog.toml"))
        gws = [GatewayProcess(cfg, d, "gw-a").start(), GatewayProcess(cfg, d, "gw-b").start()]
        try:
            for g in gws:
                g.wait_ready()
            async def probe() -> Probe:
                return PgProbe(await asyncpg.connect(db_url))
            yield Target("postgres, 2 gateway processes", [g.base_url for g in gws], gws[0].url, probe)
        finally:
            for g in gws:
                g.stop()


@pytest.fixture(scope="module")
def sqlite_target(upstream, tmp_path_factory):
    d = tmp_path_factory.mktemp("sqlite-gateway")
    db = str(d / "r1.db")
    gw = Gateway.for_upstreams(db, {"openai": (upstream.base_url, "sk-fake-upstream")},
                               catalog_path=str(write_catalog(d / "catalog.toml")))
    with gw:
        async def probe() -> Probe:
            return SqliteProbe(db)
        yield Target("sqlite, 1 in-thread gateway", [gw.base_url], gw.url, probe)


@pytest.fixture(scope="module", params=[pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def target(request) -> Target:
    return request.getfixturevalue(f"{request.param}_target")


# -- running a burst --------------------------------------------------------------------------------
@dataclass
class Ok:
    request_id: str
    header_cost: int
    usage_cost: int
    completion_tokens: int


class Watch:
    """Reads the account's balance and hold behind the gateways' backs, as fast as it can, from its
    own thread and event loop (so 10xN client requests on the test's loop cannot starve it)."""

    def __init__(self, open_probe: Callable[[], Awaitable[Probe]], account_id: int) -> None:
        self.samples = 0
        self.min_balance: int | None = None
        self.min_available: int | None = None
        self.max_reserved = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(open_probe, account_id),),
                                        name="balance-watch", daemon=True)
        self._thread.start()

    async def _main(self, open_probe: Callable[[], Awaitable[Probe]], account_id: int) -> None:
        probe = await open_probe()
        try:
            while True:
                last = self._stop.is_set()
                balance, reserved = await probe.read(account_id)
                self.samples += 1
                self.min_balance = balance if self.min_balance is None else min(self.min_balance, balance)
                avail = balance - reserved
                self.min_available = avail if self.min_available is None else min(self.min_available, avail)
                self.max_reserved = max(self.max_reserved, reserved)
                if last:
                    return
                await asyncio.sleep(0.002)
        finally:
            await probe.close()

    def stop(self) -> "Watch":
        self._stop.set()
        self._thread.join(30)
        return self

    def __repr__(self) -> str:
        return (f"Watch(samples={self.samples}, min_balance={self.min_balance}, "
                f"min_available={self.min_available}, max_reserved={self.max_reserved})")


async def _one(client: AsyncOpenAI, i: int, prompt: str, max_tokens: int | None) -> Ok | Exception:
    extra: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens else {}
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": f"request {i}. {prompt}"}], **extra)
    except openai.APIError as exc:
        return exc
    comp = raw.parse()
    return Ok(billing_id(raw.headers), cost_header_micros(raw.headers["x-routerone-cost"]),
              usage_cost_micros(comp.usage), comp.usage.completion_tokens)


async def burst(clients: list[AsyncOpenAI], count: int, prompt: str, max_tokens: int | None,
                stagger_s: float = 0.0) -> tuple[list[Ok], list[Exception]]:
    async def launch(i: int) -> Ok | Exception:
        if stagger_s:
            await asyncio.sleep(i * stagger_s)
        return await _one(clients[i % len(clients)], i, prompt, max_tokens)
    results = await asyncio.gather(*(launch(i) for i in range(count)))
    oks = [r for r in results if isinstance(r, Ok)]
    errs = [r for r in results if not isinstance(r, Ok)]
    return oks, errs


def assert_all_402(errs: list[Exception]) -> None:
    unexpected = [e for e in errs if not (isinstance(e, openai.APIStatusError) and e.status_code == 402)]
    assert not unexpected, f"{len(unexpected)} requests failed otherwise than 402, e.g. {unexpected[:3]!r}"
    for e in errs:
        assert isinstance(e, openai.APIStatusError)
        assert e.response.json() == SEED_402


async def check_books(admin: Admin, account_id: int, funded: int, oks: list[Ok], cost_each: int) -> dict:
    """Ledger, account and usage records agree with each other and with what the clients saw."""
    acc = await admin.account(account_id)
    ledger = await admin.ledger(account_id)
    charges = {e["request_id"]: -e["amount_micros"] for e in ledger if e["kind"] == "charge"}
    credits = [e for e in ledger if e["kind"] == "credit"]
    ledger_sum = sum(e["amount_micros"] for e in ledger)

    assert acc["reserved_micros"] == 0, acc
    assert acc["available_micros"] == acc["balance_micros"], acc
    assert sum(c["amount_micros"] for c in credits) == funded
    assert ledger_sum == acc["balance_micros"], (ledger_sum, acc)
    assert sum(charges.values()) == funded - acc["balance_micros"]
    assert acc["spent_micros"] == funded - acc["balance_micros"]
    assert len(ledger) == len(credits) + len(charges), "only the credit and one charge per success"
    assert set(charges) == {o.request_id for o in oks}, "one ledger charge per successful request"
    for o in oks:   # usage.cost == x-routerone-cost == the ledger charge, for every request
        assert o.usage_cost == o.header_cost == charges[o.request_id] == cost_each, o

    usage = await admin.usage(account_id, expect=len(oks))
    recs = {r["request_id"]: r for r in usage["data"]}
    assert set(recs) == set(charges), "one usage record per successful request"
    for rid, r in recs.items():
        assert r["status"] == 200 and r["cost_micros"] == charges[rid], r
    assert usage["totals"]["cost_micros"] == sum(charges.values())
    return {"final_balance": acc["balance_micros"], "ledger_sum": ledger_sum,
            "ledger_charges": sum(charges.values())}


async def store_batching(target: Target) -> tuple[int, int] | None:
    """(reserve calls, reserve round trips) summed over the target's gateways, from /metrics;
    None when the store does not batch (SQLite)."""
    import aiohttp
    calls = trips = 0
    async with aiohttp.ClientSession() as s:
        for url in target.base_urls:
            async with s.get(url.removesuffix("/v1") + "/metrics") as r:
                text = await r.text()
            found = dict(line.split() for line in text.splitlines()
                         if line.startswith(("routerone_store_reserve_calls ", "routerone_store_reserve_round_trips ")))
            if not found:
                return None
            calls += int(float(found["routerone_store_reserve_calls"]))
            trips += int(float(found["routerone_store_reserve_round_trips"]))
    return calls, trips


def report(variant: str, target: Target, **figures: Any) -> None:
    line = ", ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\nFIGURES [{target.name}] {variant}: {line}")


# -- the proofs -------------------------------------------------------------------------------------
async def test_funded_for_n_exactly_n_succeed(target: Target) -> None:
    funded = N * EXACT_COST
    async with Admin(target.admin_url) as admin:
        key, account_id, _ = await admin.new_key(funded)
        clients = [AsyncOpenAI(base_url=u, api_key=key, max_retries=0, timeout=60) for u in target.base_urls]
        watch = Watch(target.open_probe, account_id)
        batching_before = await store_batching(target)
        t0 = time.perf_counter()
        try:   # the upstream holds each call 100 ms, so the N holds really overlap the rejections
            oks, errs = await burst(clients, 10 * N, "[[sleep:100]]", EXACT_MAX_TOKENS)
        finally:
            wall_s = time.perf_counter() - t0
            watch.stop()
            for c in clients:
                await c.close()
        if batching_before is not None:     # PostgreSQL: the burst's reserves shared round trips
            calls, trips = (a - b for a, b in zip(await store_batching(target), batching_before))
            assert calls == 10 * N and 0 < trips < calls, (calls, trips)

        assert_all_402(errs)
        assert len(oks) == N, f"{len(oks)} succeeded, expected exactly {N}"
        assert all(o.completion_tokens == EXACT_MAX_TOKENS for o in oks)
        books = await check_books(admin, account_id, funded, oks, EXACT_COST)
        assert books["final_balance"] == 0
        assert watch.samples > 1 and watch.min_balance >= 0 and watch.min_available >= 0, watch
        assert 0 < watch.max_reserved <= funded, "the watcher must have sampled during the burst"
        report("worst case == cost", target, N=N, requests=10 * N, successes=len(oks), http_402=len(errs),
               cost_each_micros=EXACT_COST, funded_micros=funded, final_balance_micros=books["final_balance"],
               ledger_sum_micros=books["ledger_sum"], min_balance_seen=watch.min_balance,
               min_available_seen=watch.min_available, max_reserved_seen=watch.max_reserved,
               balance_samples=watch.samples, wall_s=f"{wall_s:.2f}")


async def test_cheaper_than_worst_case_more_than_n_succeed(target: Target) -> None:
    """Funded for N worst cases; each reply really costs about an eighth of its worst case.
    A burst of 10xN overlapping requests (launched over ~0.6 s, so later ones find settled money),
    then one request at a time until the first 402: by then no worst case fits any more."""
    funded = N * CHEAP_WORST
    async with Admin(target.admin_url) as admin:
        key, account_id, _ = await admin.new_key(funded)
        clients = [AsyncOpenAI(base_url=u, api_key=key, max_retries=0, timeout=60) for u in target.base_urls]
        watch = Watch(target.open_probe, account_id)
        t0 = time.perf_counter()
        try:
            oks, errs = await burst(clients, 10 * N, "hello", None, stagger_s=0.003)
            assert_all_402(errs)
            burst_ok, burst_402 = len(oks), len(errs)
            i = 10 * N
            for i in range(10 * N, 10 * N + funded // CHEAP_COST + 1):
                r = await _one(clients[i % len(clients)], i, "hello", None)
                if not isinstance(r, Ok):
                    assert_all_402([r])
                    break
                oks.append(r)
            else:
                pytest.fail("the balance never ran out")
        finally:
            wall_s = time.perf_counter() - t0
            watch.stop()
            for c in clients:
                await c.close()

        assert len(oks) > N, f"only {len(oks)} succeeded; settling must return the unused hold"
        assert all(o.completion_tokens == 12 for o in oks)
        books = await check_books(admin, account_id, funded, oks, CHEAP_COST)
        assert books["final_balance"] == funded - len(oks) * CHEAP_COST
        assert 0 <= books["final_balance"] < CHEAP_WORST, "a 402 with nothing in flight: no worst case fits"
        assert watch.min_balance >= 0 and watch.min_available >= 0, watch
        report("cost < worst case", target, N=N, burst_requests=10 * N, burst_successes=burst_ok,
               burst_402=burst_402, then_sequential_successes=len(oks) - burst_ok, successes=len(oks),
               worst_case_micros=CHEAP_WORST, cost_each_micros=CHEAP_COST, funded_micros=funded,
               final_balance_micros=books["final_balance"], ledger_sum_micros=books["ledger_sum"],
               min_balance_seen=watch.min_balance, min_available_seen=watch.min_available,
               max_reserved_seen=watch.max_reserved, balance_samples=watch.samples, wall_s=f"{wall_s:.2f}")


# -- gateways starting together on one fresh database ---------------------------------------------
class _BarrierStore:
    """Wraps a store so that two bootstraps both finish looking for the admin key before either
    creates it: the interleaving two gateway processes starting at the same moment can have."""

    def __init__(self, store: Any, barrier: asyncio.Barrier) -> None:
        self._store, self._barrier = store, barrier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def key_by_hash(self, key_hash: str) -> Any:
        found = await self._store.key_by_hash(key_hash)
        await self._barrier.wait()
        return found


async def test_gateways_starting_together_bootstrap_one_admin_key(tmp_path: Path) -> None:
    from routerone.services.accounts import AccountsService
    from routerone.services.keys import hash_key
    from routerone.store.sqlite import SQLiteStore
    from routerone.testing.harness import ADMIN_KEY

    db = str(tmp_path / "fresh.db")
    stores = [SQLiteStore(db), SQLiteStore(db)]     # two processes' worth of store on one database
    try:
        for s in stores:
            await s.migrate()
        barrier = asyncio.Barrier(2)
        results = await asyncio.gather(
            *(AccountsService(_BarrierStore(s, barrier)).bootstrap_admin(ADMIN_KEY) for s in stores),  # type: ignore[arg-type]
            return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"a gateway's bootstrap failed: {errors[0]!r}"
        keys = [k for k in await stores[0].list_keys() if k.role == "admin"]
        assert [k.prefix for k in keys] == [(await stores[0].key_by_hash(hash_key(ADMIN_KEY))).prefix]
        assert len(await stores[0].list_accounts()) == 1, "one admin account, not one per gateway"
    finally:
        for s in stores:
            await s.close()

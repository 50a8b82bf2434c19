"""Contract suite for the `StickyStore` seam (routing/sticky.py): every contract test runs against
StickyMap (in-process), SharedStickyTable (shared memory, `serve --workers N`) and RedisStickyStore.
Redis tests use ROUTERONE_TEST_REDIS_URL (default redis://127.0.0.1:6379/0); when it is unreachable
they are skipped (the reason printed), or fail when the CI environment variable is set. Each test
uses its own keys (a fresh uuid) and deletes its Redis keys afterwards.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import sys
import time
import uuid
from urllib.parse import urlsplit

import pytest
import redis

from routerone.billing.prices import Price
from routerone.catalog import Catalog, ModelInfo
from routerone.providers.base import Deployment, Vendor
from routerone.routing.health import Health
from routerone.routing.planner import Planner
from routerone.routing.sticky import StickyMap, StickyStore
from routerone.routing.sticky_redis import STICKY_KEY_PREFIX, RedisStickyStore
from routerone.routing.sticky_shared import MODEL_ID_BYTES, WAYS, SharedStickyState, SharedStickyTable
from routerone.wire.chat import validate_body

REDIS_URL = os.environ.get("ROUTERONE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@functools.cache
def _redis_problem() -> str | None:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1.0) as s:
            s.sendall(b"PING\r\n")
            if not s.recv(64).startswith(b"+PONG"):
                return "it did not answer PING with PONG"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def require_redis() -> str:
    """The Redis URL; skips the test when Redis is down, or fails it when CI is set (called from
    test bodies, so that under CI the test is reported FAILED, not ERROR)."""
    problem = _redis_problem()
    if problem is None:
        return REDIS_URL
    message = f"Redis is not reachable at {REDIS_URL} ({problem})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI is set, so the Redis sticky-store tests must run", pytrace=False)
    print(f"\nSKIP redis sticky-store tests: {message}", file=sys.stderr)
    pytest.skip(message)


@pytest.fixture(params=["memory", "shared", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def ns() -> str:
    """This test's own key prefix."""
    return f"t{uuid.uuid4().hex}:"


@pytest.fixture
async def make_store(backend: str, ns: str):
    """make_store(ttl_s) -> a store; calls after the first on a shared backend (shared memory,
    Redis) open another view of the same state, as another worker or instance would."""
    made: list[StickyStore] = []
    states: list[SharedStickyState] = []

    def make(ttl_s: float = 60.0) -> StickyStore:
        if backend == "redis":
            require_redis()
            store: StickyStore = RedisStickyStore(REDIS_URL, ttl_s=ttl_s)
        elif backend == "shared":
            if not states:
                states.append(SharedStickyState(slots=8192, ttl_s=ttl_s))  # 300 keys: no bucket overflows
            store = SharedStickyTable(states[0].handle)
        else:
            store = StickyMap(ttl_s=ttl_s)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            await store.close()
        for state in states:
            state.unlink()
        if backend == "redis" and _redis_problem() is None:
            client = redis.Redis.from_url(REDIS_URL)
            try:
                keys = list(client.scan_iter(match=f"{STICKY_KEY_PREFIX}{ns}*", count=1000))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()


async def eventually(store: StickyStore, key: str, timeout_s: float = 2.0) -> str | None:
    """What `lookup` finds once a background pin had time to land."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await store.lookup(key)
        if found is not None or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.01)


# --- the contract -------------------------------------------------------------------------------

async def test_remember_then_lookup(make_store, ns):
    s = make_store()
    assert await s.lookup(ns + "a") is None
    await s.remember(ns + "a", "gpt-4.1")
    assert await s.lookup(ns + "a") == "gpt-4.1"
    assert await s.lookup(ns + "b") is None
    await s.remember(ns + "a", "gpt-4o-mini")        # a conversation that moved is re-pinned
    assert await s.lookup(ns + "a") == "gpt-4o-mini"


async def test_pin_does_not_wait_and_lands(make_store, ns):
    s = make_store()
    assert s.pin(ns + "p", "openrouter/meta-llama/llama-3.1-405b-instruct") is None
    assert await eventually(s, ns + "p") == "openrouter/meta-llama/llama-3.1-405b-instruct"


async def test_ttl_runs_from_last_use(make_store, ns):
    s = make_store(ttl_s=1.0)
    await s.remember(ns + "t", "m1")
    await s.remember(ns + "idle", "m1")
    for _ in range(3):                     # used every 0.6 s: outlives its 1 s TTL
        await asyncio.sleep(0.6)
        assert await s.lookup(ns + "t") == "m1"
    assert await s.lookup(ns + "idle") is None      # unused for 1.8 s: expired
    await asyncio.sleep(1.3)
    assert await s.lookup(ns + "t") is None


async def test_concurrent_calls_each_get_their_own_answer(make_store, ns):
    s = make_store()
    await asyncio.gather(*(s.remember(f"{ns}c{i}", f"model-{i}") for i in range(300)))
    found = await asyncio.gather(*(s.lookup(f"{ns}c{i}") for i in range(300)))
    assert found == [f"model-{i}" for i in range(300)]


async def test_shared_backends_share_between_views(make_store, backend, ns):
    a, b = make_store(), make_store()
    await a.remember(ns + "x", "m-a")
    expected = None if backend == "memory" else "m-a"   # in-process: each process its own map
    assert await b.lookup(ns + "x") == expected


async def test_planner_later_turn_stays_on_first_turn_model(make_store, backend, ns):
    """The planner over each store, with a second planner as a second worker/instance: a later
    turn stays on turn 1's model where a fresh decision would pick the other one."""
    store_a, store_b = make_store(), make_store()
    p_a, p_b = planner(store_a), planner(store_b)
    turn1 = [{"role": "user", "content": f"{ns} plan a trip"}]
    turn2 = turn1 + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "cheaper"}]
    first = await plan(p_a, turn1, 0.9)
    assert first.attempts[0].model.id == "strong"
    if store_a.remote:
        await eventually(store_a, (await p_a.recall(req(turn2), "k1")).key)
    same = await plan(p_a, turn2, 0.1)
    assert same.attempts[0].model.id == "strong" and same.reason.startswith("sticky conversation")
    other = await plan(p_b, turn2, 0.1)
    assert other.attempts[0].model.id == ("cheap" if backend == "memory" else "strong")


# --- the planner's cost per request (Redis: round trips) -----------------------------------------

async def test_redis_round_trips_only_for_later_turns_of_auto(ns):
    s = RedisStickyStore(require_redis())
    try:
        p = planner(s)
        turn1 = [{"role": "user", "content": f"{ns} hello"}]
        turn2 = turn1 + [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "more"}]
        assert not p.needs_recall(validate_body({"model": "strong", "messages": turn2}))  # named: none
        before = s._calls.batches
        r1 = await p.recall(req(turn1), "k1")
        assert s._calls.batches == before and not r1.later          # first turn: no awaited lookup
        p.plan(req(turn1), 10, willingness_to_pay=0.9, scope="k1", recall=r1)   # pins in the background
        await eventually(s, r1.key)
        before = s._calls.batches
        r2 = await p.recall(req(turn2), "k1")
        assert s._calls.batches == before + 1 and r2.pinned == "strong"   # later turn: one round trip
        p.plan(req(turn2), 10, willingness_to_pay=0.1, scope="k1", recall=r2)
        await asyncio.sleep(0.05)
        assert s._calls.batches == before + 1                       # stayed: nothing written
    finally:
        await s.close()


def test_in_process_store_is_asked_synchronously():
    p = planner(StickyMap())
    assert not p.needs_recall(req([{"role": "user", "content": "x"}]))


# --- Redis down: decided afresh, never a failure ------------------------------------------------

async def test_redis_unreachable_answers_unknown_logs_once(caplog):
    with socket.socket() as sock:          # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = RedisStickyStore(f"redis://127.0.0.1:{port}/0")
    try:
        p = planner(s)
        turn2 = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                 {"role": "user", "content": "q2"}]
        with caplog.at_level(logging.WARNING, logger="routerone.routing"):
            for _ in range(5):
                r = await p.recall(req(turn2), "k1")
                assert r.later and r.pinned is None
                plan_ = p.plan(req(turn2), 10, willingness_to_pay=0.1, scope="k1", recall=r)
                assert plan_.attempts[0].model.id == "cheap"          # decided afresh
            t0 = time.monotonic()
            assert await s.lookup("x") is None                       # during the outage: at once
            assert time.monotonic() - t0 < 0.05
        await asyncio.sleep(0.05)
        warnings = [r for r in caplog.records if "sticky store unreachable" in r.getMessage()]
        assert len(warnings) == 1 and s.outages == 1 and s.fallback_events >= 6
    finally:
        await s.close()


async def test_redis_error_reply_fails_only_its_own_call(ns, caplog):
    url = require_redis()
    client = redis.Redis.from_url(url)
    client.rpush(STICKY_KEY_PREFIX + ns + "list", "x")       # a key GETEX answers WRONGTYPE for
    client.close()
    s = RedisStickyStore(url)
    try:
        await s.remember(ns + "ok", "m1")
        with caplog.at_level(logging.WARNING, logger="routerone.routing"):
            found = await asyncio.gather(s.lookup(ns + "list"), s.lookup(ns + "ok"), s.lookup(ns + "list"))
        assert found == [None, "m1", None] and s.fallback_events == 2 and s.outages == 0
        assert len([r for r in caplog.records if "error reply" in r.getMessage()]) == 1
        assert await s.lookup(ns + "ok") == "m1"                 # not taken for an outage
    finally:
        await s.close()
        client = redis.Redis.from_url(url)
        client.delete(STICKY_KEY_PREFIX + ns + "list", STICKY_KEY_PREFIX + ns + "ok")
        client.close()


# --- shared memory: bounded, LRU within a bucket --------------------------------------------------

async def test_shared_table_is_bounded_and_keeps_recently_used():
    state = SharedStickyState(slots=64, ttl_s=60)
    t = SharedStickyTable(state.handle)
    try:
        t.put("hot", "m-hot")
        for i in range(2000):
            t.put(f"k{i}", "m")
            assert t.get("hot") == "m-hot"          # used all along: never the least recently used
        assert len(t) <= 64 and t.get("k1999") == "m"
        assert sum(t.get(f"k{i}") is not None for i in range(2000)) == 64 - 1
        t.put("long", "x" * (MODEL_ID_BYTES + 1))  # an id that does not fit is not pinned
        assert t.get("long") is None and WAYS == 8
    finally:
        await t.close()
        state.unlink()


async def test_shared_table_repin_keeps_one_entry_per_conversation():
    """A conversation re-pinned while an earlier entry of its bucket is free updates its own entry
    (it was written to the free one too: two entries for one conversation)."""
    now = [0.0]
    state = SharedStickyState(slots=WAYS, ttl_s=60)       # one bucket: every key shares it
    t = SharedStickyTable(state.handle, clock=lambda: now[0])
    try:
        for i in range(WAYS):
            t.put(f"k{i}", "old")
        now[0] = 30.0
        assert all(t.get(f"k{i}") == "old" for i in range(1, WAYS))
        now[0] = 61.0
        assert t.get("k0") is None                          # expired: its entry is freed
        t.put("k3", "new")
        assert t.get("k3") == "new" and len(t) == WAYS - 1
    finally:
        await t.close()
        state.unlink()


# --- helpers --------------------------------------------------------------------------------------

V = Vendor("v", "openai", "http://127.0.0.1:1/v1", api_key="k")


def _model(mid: str, quality: float, out_usd: int) -> ModelInfo:
    return ModelInfo(id=mid, provider="v", context_window=100_000, max_output=4096,
                     price=Price(out_usd * 250_000, out_usd * 1_000_000),
                     deployments=(Deployment(mid, V, mid),), quality=quality)


class ByWillingness:
    """Strongest at willingness to pay >= 0.5, else cheapest."""
    name = "test"

    def rank(self, req, models, ctx):
        if ctx.willingness_to_pay >= 0.5:
            return sorted(models, key=lambda m: -m.quality), "strongest"
        return sorted(models, key=lambda m: m.price.output_micros_per_mtok), "cheapest"


def planner(store: StickyStore) -> Planner:
    models = [_model("strong", 0.9, 30), _model("cheap", 0.4, 1)]
    return Planner(Catalog({m.id: m for m in models}, {"v": V}), Health(), {"test": ByWillingness()},
                   default_strategy="test", sticky=store)


def req(messages):
    return validate_body({"model": "auto", "messages": messages})


async def plan(p: Planner, messages, wtp: float, scope: str = "k1"):
    """As ChatService does: await the recall only when the store is remote."""
    r = req(messages)
    recall = await p.recall(r, scope) if p.needs_recall(r) else None
    return p.plan(r, 10, willingness_to_pay=wtp, scope=scope, recall=recall)

"""Contract suite for the `Limiter` seam: every contract test runs against MemoryLimiter and
RedisLimiter. Redis tests use ROUTERONE_TEST_REDIS_URL (default redis://127.0.0.1:6379/0); when it
is unreachable they are skipped, or fail when the CI environment variable is set. Each test uses
its own scopes (a fresh uuid), so tests and concurrent runs never share limiter state.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import random
import socket
import sys
import time
import uuid
from typing import Callable
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from routerone.limits import (KEY_PREFIX, DenyReason, LimitDecision, Limiter, LimitRule,
                              MemoryLimiter, RedisLimiter, SharedLimiter, SharedLimiterState,
                              format_reset, normalize_rules)

REDIS_URL = os.environ.get("ROUTERONE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


# --- fixtures ---------------------------------------------------------------------------------

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
    """The Redis URL; skips the test when Redis is down, or fails it when CI is set.

    Called from test bodies (not fixtures) so that under CI the test is reported FAILED, not ERROR.
    """
    problem = _redis_problem()
    if problem is None:
        return REDIS_URL
    message = f"Redis is not reachable at {REDIS_URL} ({problem})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI is set, so the Redis limiter tests must run", pytrace=False)
    print(f"\nSKIP redis limiter tests: {message}", file=sys.stderr)
    pytest.skip(message)


@pytest.fixture(params=["memory", "shared", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def make_limiter(backend: str):
    made: list[Limiter] = []
    states: list[SharedLimiterState] = []

    def make(*, window_s: float = 60.0, lease_s: float = 600.0) -> Limiter:
        if backend == "redis":
            require_redis()
        if backend == "shared":       # a small block: the contract must hold without the defaults' room
            states.append(SharedLimiterState(entries=4096, scopes=256, window_s=window_s, lease_s=lease_s))
            limiter: Limiter = SharedLimiter(states[-1].handle)
        else:
            limiter = (MemoryLimiter(window_s=window_s, lease_s=lease_s) if backend == "memory"
                       else RedisLimiter(REDIS_URL, window_s=window_s, lease_s=lease_s))
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()
    for state in states:
        state.unlink()


@pytest.fixture
def scope() -> Callable[[str], str]:
    """scope("key") -> "key:<uuid>": unique per test, stable within it."""
    uid = uuid.uuid4().hex[:12]
    return lambda name: f"{name}:{uid}"


def _rid() -> str:
    return uuid.uuid4().hex


async def _acquire(limiter: Limiter, rules: list[LimitRule], tokens: int = 0) -> LimitDecision:
    return await limiter.acquire(rules, _rid(), tokens)


# --- requests per window ----------------------------------------------------------------------

async def test_rpm_admits_exactly_r_then_denies_with_retry_after(make_limiter, scope):
    limiter = make_limiter()
    rule = LimitRule(scope("key"), rpm=5)
    assert all([(await _acquire(limiter, [rule])).allowed for _ in range(5)])
    denied = await _acquire(limiter, [rule])
    assert not denied.allowed and denied.ticket is None
    assert (denied.denied_scope, denied.reason) == (rule.scope, DenyReason.RPM)
    assert denied.retry_after_s in (59.0, 60.0)          # the oldest request leaves in ~60 s


async def test_window_slides(make_limiter, scope):
    limiter = make_limiter(window_s=1.0)
    rule = LimitRule(scope("key"), rpm=2, tpm=100)
    assert (await _acquire(limiter, [rule], 50)).allowed
    assert (await _acquire(limiter, [rule], 50)).allowed
    denied = await _acquire(limiter, [rule], 0)
    assert not denied.allowed and denied.retry_after_s == 1.0   # never below 1 s
    await asyncio.sleep(1.05)
    assert (await _acquire(limiter, [rule], 100)).allowed
    assert not (await _acquire(limiter, [rule], 1)).allowed     # tokens full again


# --- tokens per window ------------------------------------------------------------------------

async def test_tpm_is_exact_in_tokens(make_limiter, scope):
    limiter = make_limiter()
    rule = LimitRule(scope("key"), tpm=1000)
    assert (await _acquire(limiter, [rule], 400)).allowed
    assert (await _acquire(limiter, [rule], 400)).allowed
    over = await _acquire(limiter, [rule], 201)
    assert not over.allowed and over.reason == DenyReason.TPM
    assert over.retry_after_s in (59.0, 60.0)
    assert (await _acquire(limiter, [rule], 200)).allowed       # exactly 1000
    assert not (await _acquire(limiter, [rule], 1)).allowed
    assert (await _acquire(limiter, [rule], 0)).allowed


async def test_tokens_above_the_whole_tpm_are_refused_with_their_own_reason(make_limiter, scope):
    limiter = make_limiter()
    key, acct = LimitRule(scope("key"), rpm=10, tpm=100), LimitRule(scope("acct"), rpm=1)
    denied = await _acquire(limiter, [acct, key], 101)
    assert not denied.allowed
    assert (denied.denied_scope, denied.reason) == (key.scope, DenyReason.TOKENS_EXCEED_TPM)
    assert denied.retry_after_s >= 1.0
    assert denied.headers["x-ratelimit-remaining-tokens"] == "100"   # nothing consumed
    assert (await _acquire(limiter, [acct, key], 100)).allowed


async def test_release_gives_back_unused_tokens_once(make_limiter, scope):
    limiter = make_limiter()
    rule = LimitRule(scope("key"), tpm=100)
    first = await _acquire(limiter, [rule], 60)
    assert not (await _acquire(limiter, [rule], 60)).allowed
    await limiter.release(first.ticket, 20)                     # 40 back: 20 counted
    second = await _acquire(limiter, [rule], 60)
    assert second.allowed and second.headers["x-ratelimit-remaining-tokens"] == "20"
    await limiter.release(first.ticket, 20)                     # idempotent: nothing more back
    await limiter.release(second.ticket, 80)                    # used more than reserved: no change
    assert not (await _acquire(limiter, [rule], 21)).allowed
    assert (await _acquire(limiter, [rule], 20)).allowed


# --- concurrency ------------------------------------------------------------------------------

async def test_concurrency_limit_and_release(make_limiter, scope):
    limiter = make_limiter()
    rule = LimitRule(scope("key"), concurrency=2)
    a, b = await _acquire(limiter, [rule]), await _acquire(limiter, [rule])
    assert a.allowed and b.allowed
    denied = await _acquire(limiter, [rule])
    assert (denied.allowed, denied.reason, denied.retry_after_s) == (False, "concurrency", 1.0)
    assert denied.headers == {}                                  # no rpm/tpm on the rule
    await limiter.release(a.ticket, 0)
    await limiter.release(a.ticket, 0)                           # a second release frees nothing
    assert (await _acquire(limiter, [rule])).allowed
    assert not (await _acquire(limiter, [rule])).allowed


async def test_concurrency_leases_expire_when_never_released(make_limiter, scope):
    limiter = make_limiter(lease_s=1.0)
    rule = LimitRule(scope("key"), concurrency=1)
    assert (await _acquire(limiter, [rule])).allowed             # its process "dies": no release
    assert not (await _acquire(limiter, [rule])).allowed
    await asyncio.sleep(1.05)
    assert (await _acquire(limiter, [rule])).allowed


# --- several rules ----------------------------------------------------------------------------

async def test_all_or_nothing_across_rules(make_limiter, scope):
    limiter = make_limiter()
    a = LimitRule(scope("key"), rpm=10, tpm=1000)
    b_rpm, b_tpm = LimitRule(scope("acct"), rpm=1), LimitRule(scope("acct2"), tpm=100)
    b_conc = LimitRule(scope("dep"), concurrency=1)
    assert (await _acquire(limiter, [a, b_rpm], 10)).allowed
    refused = await _acquire(limiter, [a, b_rpm], 10)
    assert (refused.allowed, refused.denied_scope) == (False, b_rpm.scope)
    assert (await _acquire(limiter, [a, b_tpm], 60)).allowed
    refused = await _acquire(limiter, [a, b_tpm], 60)
    assert (refused.allowed, refused.denied_scope, refused.reason) == (False, b_tpm.scope, "tpm")
    assert (await _acquire(limiter, [a, b_conc], 5)).allowed
    refused = await _acquire(limiter, [b_conc, a], 5)
    assert (refused.allowed, refused.denied_scope) == (False, b_conc.scope)
    alone = await _acquire(limiter, [a], 0)                      # A counted only the 3 admissions
    assert alone.headers["x-ratelimit-remaining-requests"] == str(10 - 4)
    assert alone.headers["x-ratelimit-remaining-tokens"] == str(1000 - 75)


async def test_denial_reports_the_rule_that_frees_last(make_limiter, scope):
    limiter = make_limiter()
    fast, slow = LimitRule(scope("key"), rpm=1), LimitRule(scope("acct"), tpm=10)
    assert (await _acquire(limiter, [slow], 10)).allowed
    await asyncio.sleep(0.05)
    assert (await _acquire(limiter, [fast], 0)).allowed
    refused = await _acquire(limiter, [slow, fast], 1)
    assert refused.denied_scope == fast.scope                    # admitted later, frees later


async def test_acquire_is_idempotent_per_request_id(make_limiter, scope):
    limiter = make_limiter()
    rule = LimitRule(scope("key"), rpm=2, tpm=100, concurrency=5)
    first = await limiter.acquire([rule], "req-1", 40)
    again = await limiter.acquire([rule], "req-1", 40)           # e.g. a retried call
    assert first.allowed and again.allowed
    assert again.headers["x-ratelimit-remaining-requests"] == "1"
    assert again.headers["x-ratelimit-remaining-tokens"] == "60"


async def test_empty_and_unlimited_rules_always_pass(make_limiter, scope):
    limiter = make_limiter()
    decision = await _acquire(limiter, [LimitRule(scope("key"))], 10**9)
    assert decision.allowed and decision.headers == {} and decision.ticket.rules == ()
    await limiter.release(decision.ticket, 0)
    assert await limiter.peek([])


async def test_peek_consumes_nothing(make_limiter, scope):
    limiter = make_limiter()
    rule = LimitRule(scope("dep"), rpm=2, tpm=100)
    assert all([await limiter.peek([rule]) for _ in range(5)])
    assert (await _acquire(limiter, [rule], 100)).allowed
    assert await limiter.peek([rule])                            # 0 tokens still fit
    assert not await limiter.peek([rule], tokens=1)
    assert (await _acquire(limiter, [rule], 0)).allowed
    assert not await limiter.peek([rule])


# --- headers ----------------------------------------------------------------------------------

async def test_headers_on_allowed_and_denied_decisions(make_limiter, scope):
    limiter = make_limiter()
    key = LimitRule(scope("key"), rpm=100, tpm=1000)
    acct = LimitRule(scope("acct"), rpm=2, tpm=50_000)
    dep = LimitRule(scope("dep:openai"), rpm=1, tpm=10)          # upstream caps are not reported
    ok = await _acquire(limiter, [key, acct, dep], 10)
    assert ok.headers == {
        "x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "990",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    await _acquire(limiter, [key, acct], 10)
    denied = await _acquire(limiter, [key, acct], 10)
    assert not denied.allowed
    assert denied.headers["x-ratelimit-remaining-requests"] == "0"
    assert denied.headers["x-ratelimit-remaining-tokens"] == "980"
    assert denied.headers["x-ratelimit-reset-requests"].endswith("s")
    only_dep = await limiter.acquire([dep], _rid(), 0)           # only upstream rules: shown
    assert only_dep.headers["x-ratelimit-limit-requests"] == "1"


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (-1, "0s"), (0.0004, "1ms"), (0.02, "20ms"), (0.999, "999ms"), (1, "1s"),
    (1.5, "1.5s"), (59.9921, "59.993s"), (60, "1m0s"), (90.25, "1m30.25s"), (360, "6m0s"),
    (3723, "1h2m3s"), (3600, "1h0m0s"),
])
def test_reset_durations_use_openai_format(seconds, text):
    assert format_reset(seconds) == text


def test_repeated_scopes_merge_into_the_tightest_rule():
    merged = normalize_rules([LimitRule("k", rpm=5), LimitRule("x"), LimitRule("k", rpm=9, tpm=7)])
    assert merged == (LimitRule("k", rpm=5, tpm=7),)
    with pytest.raises(ValueError):
        normalize_rules([LimitRule("k", rpm=-1)])


# --- exactness under concurrency --------------------------------------------------------------

async def test_concurrent_burst_admits_exactly_r(make_limiter, scope):
    limiter = make_limiter()
    r = 25
    rule = LimitRule(scope("key"), rpm=r)
    decisions = await asyncio.gather(*(_acquire(limiter, [rule]) for _ in range(5 * r)))
    assert sum(d.allowed for d in decisions) == r


async def test_concurrent_burst_is_exact_in_tokens(make_limiter, scope):
    limiter = make_limiter()
    tpm, rng = 1000, random.Random(5)
    same = LimitRule(scope("key"), tpm=tpm)
    decisions = await asyncio.gather(*(_acquire(limiter, [same], 40) for _ in range(125)))
    assert sum(d.allowed for d in decisions) == tpm // 40
    mixed = LimitRule(scope("key2"), tpm=tpm)
    sizes = [rng.randint(1, 120) for _ in range(100)]
    decisions = await asyncio.gather(*(_acquire(limiter, [mixed], n) for n in sizes))
    granted = sum(n for n, d in zip(sizes, decisions) if d.allowed)
    assert granted <= tpm
    assert all(granted + n > tpm for n, d in zip(sizes, decisions) if not d.allowed)


async def test_contention_over_a_shared_account_is_all_or_nothing(make_limiter, scope):
    limiter = make_limiter()
    key_a, key_b = LimitRule(scope("key:a"), rpm=10), LimitRule(scope("key:b"), rpm=10)
    acct = LimitRule(scope("acct"), rpm=15)
    calls = [_acquire(limiter, [key, acct]) for _ in range(50) for key in (key_a, key_b)]
    decisions = await asyncio.gather(*calls)
    won_a = sum(d.allowed for d in decisions[0::2])
    won_b = sum(d.allowed for d in decisions[1::2])
    assert won_a + won_b == 15 and won_a <= 10 and won_b <= 10
    probe_a = await _acquire(limiter, [key_a])
    assert probe_a.headers["x-ratelimit-remaining-requests"] == str(max(0, 10 - won_a - 1))


# --- memory only: exact boundaries on a fake clock ----------------------------------------------

class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_window_boundaries_are_exact(scope):
    clock = _Clock()
    limiter = MemoryLimiter(clock=clock)
    rule = LimitRule(scope("key"), rpm=3, tpm=300)
    for offset in (0, 10, 20):
        clock.now = 1000 + offset
        assert (await _acquire(limiter, [rule], 100)).allowed
    clock.now = 1030
    assert (await _acquire(limiter, [rule])).retry_after_s == 30.0
    clock.now = 1059.5
    assert (await _acquire(limiter, [rule])).retry_after_s == 1.0
    clock.now = 1060.0                                           # the t=0 entry just left
    ok = await _acquire(limiter, [rule], 100)
    assert ok.allowed and ok.headers["x-ratelimit-reset-requests"] == "1m0s"
    denied = await _acquire(limiter, [rule], 100)
    assert denied.retry_after_s == 10.0                          # t=10 leaves at 1070


async def test_memory_tpm_retry_after_counts_the_tokens_that_must_leave(scope):
    clock = _Clock()
    limiter = MemoryLimiter(clock=clock)
    rule = LimitRule(scope("key"), tpm=100)
    for offset, tokens in ((0, 10), (5, 60), (7, 30)):
        clock.now = 1000 + offset
        assert (await _acquire(limiter, [rule], tokens)).allowed
    clock.now = 1010
    assert (await _acquire(limiter, [rule], 50)).retry_after_s == 55.0   # 10 and 60 must leave


async def test_memory_drops_idle_scopes(scope):
    clock = _Clock()
    limiter = MemoryLimiter(clock=clock)
    for i in range(100):
        await _acquire(limiter, [LimitRule(f"{scope('key')}{i}", rpm=1)])
    clock.now += 121
    await _acquire(limiter, [LimitRule(scope("other"), rpm=1)])
    assert len(limiter._scopes) == 1


# --- redis only -------------------------------------------------------------------------------

@pytest.mark.redis
async def test_several_redis_instances_admit_exactly_r(scope):
    redis_url = require_redis()
    limiters = [RedisLimiter(redis_url) for _ in range(3)]       # three pools, like three gateways
    try:
        r = 30
        rule = LimitRule(scope("key"), rpm=r)
        calls = [limiters[i % 3].acquire([rule], _rid(), 0) for i in range(5 * r)]
        assert sum(d.allowed for d in await asyncio.gather(*calls)) == r
        tokens = LimitRule(scope("key2"), tpm=1000)
        calls = [limiters[i % 3].acquire([tokens], _rid(), 37) for i in range(5 * 27)]
        assert sum(d.allowed for d in await asyncio.gather(*calls)) == 1000 // 37
    finally:
        for limiter in limiters:
            await limiter.close()


def _hammer(url: str, rule: LimitRule, tokens: int, n: int, barrier, results) -> None:
    async def run() -> int:
        limiter = RedisLimiter(url, failure_policy="closed")
        await limiter.peek([LimitRule("warmup", rpm=1)])        # connect and load the script first
        barrier.wait()
        decisions = await asyncio.gather(
            *(limiter.acquire([rule], f"{os.getpid()}-{i}", tokens) for i in range(n)))
        await limiter.close()
        assert all(d.reason != DenyReason.UNAVAILABLE for d in decisions)
        return sum(d.allowed for d in decisions)
    results.put(asyncio.run(run()))


@pytest.mark.redis
@pytest.mark.slow
def test_several_processes_admit_exactly_r(scope):
    redis_url = require_redis()
    ctx = multiprocessing.get_context("spawn")
    cases = [(LimitRule(scope("key"), rpm=30), 0, 50), (LimitRule(scope("key2"), tpm=1000), 37, 45)]
    barrier, results = ctx.Barrier(3 * len(cases)), ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(redis_url, rule, tokens, n, barrier, results))
             for rule, tokens, n in cases for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    counts = [results.get(timeout=5) for _ in procs]
    assert sum(counts) == 30 + 1000 // 37                        # 150 and 135 tries, 3 processes


@pytest.mark.redis
async def test_one_round_trip_per_acquire(scope):
    redis_url = require_redis()
    limiter = RedisLimiter(redis_url)
    rule = [LimitRule(scope("key"), rpm=100, tpm=10_000, concurrency=5),
            LimitRule(scope("acct"), rpm=1000)]
    await _acquire(limiter, rule)                               # script loaded from here on
    calls: list[str] = []
    original = limiter._redis.execute_command

    async def counting(*args, **kwargs):
        calls.append(args[0])
        return await original(*args, **kwargs)

    limiter._redis.execute_command = counting
    try:
        for _ in range(5):
            decision = await _acquire(limiter, rule, 10)
            await limiter.release(decision.ticket, 5)
        await limiter.peek(rule)
    finally:
        await limiter.close()
    assert calls == ["EVALSHA"] * 11


@pytest.mark.redis
async def test_noscript_falls_back_to_eval(scope):
    redis_url = require_redis()
    limiter = RedisLimiter(redis_url)

    async def missing(*args, **kwargs):
        raise NoScriptError("NOSCRIPT No matching script")

    limiter._redis.evalsha = missing
    try:
        assert (await _acquire(limiter, [LimitRule(scope("key"), rpm=1)])).allowed
        assert not (await _acquire(limiter, [LimitRule(scope("key"), rpm=1)])).allowed
    finally:
        await limiter.close()


@pytest.mark.redis
async def test_keys_carry_the_script_version_and_expire(scope):
    redis_url = require_redis()
    limiter = RedisLimiter(redis_url, window_s=5, lease_s=30)
    client = Redis.from_url(redis_url)
    try:
        rule = LimitRule(scope("key"), rpm=5, tpm=100, concurrency=2)
        await _acquire(limiter, [rule], 10)
        base = f"{KEY_PREFIX}{rule.scope}"
        assert KEY_PREFIX == "ro:rl:v1:"
        for suffix, most_ms in ((":req", 6000), (":tok", 6000), (":tsum", 6000), (":cc", 31000)):
            assert 0 < await client.pttl(base + suffix) <= most_ms
    finally:
        await limiter.close()
        await client.aclose()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_failure_policy_open_uses_local_limits_and_warns_once(scope, caplog):
    limiter = RedisLimiter(f"redis://127.0.0.1:{_closed_port()}/0", failure_policy="open")
    rule = LimitRule(scope("key"), rpm=2)
    with caplog.at_level(logging.WARNING, logger="routerone.limits"):
        decisions = [await _acquire(limiter, [rule]) for _ in range(3)]
        assert await limiter.peek([rule]) is False
    await limiter.close()
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[2].reason == DenyReason.RPM and decisions[0].headers
    assert (limiter.fallback_events, limiter.outages) == (4, 1)
    assert len([r for r in caplog.records if "unreachable" in r.message]) == 1


async def test_failure_policy_closed_denies_for_a_second(scope, caplog):
    limiter = RedisLimiter(f"redis://127.0.0.1:{_closed_port()}/0", failure_policy="closed")
    rule = LimitRule(scope("key"), rpm=2)
    with caplog.at_level(logging.WARNING, logger="routerone.limits"):
        denied = await _acquire(limiter, [rule])
        assert not await limiter.peek([rule])
    await limiter.close()
    assert (denied.allowed, denied.retry_after_s, denied.reason) == (False, 1.0, "limiter_unavailable")
    assert limiter.fallback_events == 2
    assert any("failure_policy=closed" in r.message for r in caplog.records)


@pytest.mark.parametrize("policy", ["closed", "open"])
async def test_an_outage_is_tried_by_one_call_at_a_time(scope, policy):
    """During an outage any call may find out whether Redis is back, even with no spacing between
    tries, and a burst still costs one round trip, not one per call (one probe in flight: the
    others wait for it under "closed", decide locally under "open")."""
    limiter = RedisLimiter(f"redis://127.0.0.1:{_closed_port()}/0", failure_policy=policy)
    limiter.probe_interval_s = 0.0          # no spacing after a failed try: the one-at-a-time rule alone
    rule = LimitRule(scope("key"), rpm=1000)
    try:
        assert (await _acquire(limiter, [rule])).allowed is (policy == "open")   # the outage begins
        before = limiter.round_trips
        burst = await asyncio.gather(*(_acquire(limiter, [rule]) for _ in range(20)))
        assert limiter.round_trips - before == 1
        assert {d.allowed for d in burst} == {policy == "open"}
        if policy == "closed":
            assert {d.reason for d in burst} == {"limiter_unavailable"}
    finally:
        await limiter.close()


async def test_closed_policy_waits_for_a_hanging_probe_only_briefly(scope):
    """A Redis that accepts connections but never answers: the probe takes its timeouts; the calls
    waiting for it give up after `timeout_s` and get the policy's answer."""
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0", failure_policy="closed", timeout_s=0.4)
    rule = LimitRule(scope("key"), rpm=1000)
    try:
        assert not (await _acquire(limiter, [rule])).allowed           # the outage begins
        await asyncio.sleep(limiter.probe_interval_s * 2)
        probe = asyncio.ensure_future(_acquire(limiter, [rule]))
        await asyncio.sleep(0.02)                                       # the probe is in flight
        started = time.monotonic()
        waiting = await asyncio.gather(*(_acquire(limiter, [rule]) for _ in range(10)))
        assert time.monotonic() - started < 0.6             # the probe itself takes ~0.8 s (2 tries)
        assert {d.reason for d in waiting} == {"limiter_unavailable"}
        assert not (await probe).allowed
    finally:
        await limiter.close()
        server.close()


class _Proxy:
    """A TCP proxy in front of Redis that a test can cut and restore, to stage an outage."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.port = 0
        self.server: asyncio.AbstractServer | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        await asyncio.sleep(0.01)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


@pytest.mark.redis
async def test_redis_decides_again_after_an_outage(scope, caplog):
    redis_url = require_redis()
    proxy = _Proxy(redis_url)
    await proxy.start()
    limiter = RedisLimiter(f"redis://127.0.0.1:{proxy.port}/0", failure_policy="open")
    limiter.probe_interval_s = 0.05
    client = Redis.from_url(redis_url)
    rule = LimitRule(scope("key"), rpm=100)
    try:
        with caplog.at_level(logging.WARNING, logger="routerone.limits"):
            assert (await _acquire(limiter, [rule])).allowed and limiter.fallback_events == 0
            await proxy.stop()
            assert (await _acquire(limiter, [rule])).allowed   # local limits
            assert (await _acquire(limiter, [rule])).allowed
            assert (limiter.fallback_events, limiter.outages) == (2, 1)
            await proxy.start()
            await asyncio.sleep(0.06)
            assert (await _acquire(limiter, [rule])).allowed
            assert limiter.fallback_events == 2
        assert await client.zcard(f"{KEY_PREFIX}{rule.scope}:req") == 2
        messages = [r.message for r in caplog.records if r.name == "routerone.limits"]
        assert len(messages) == 2
        assert "unreachable" in messages[0] and "reachable again" in messages[1]
    finally:
        await limiter.close()
        await client.aclose()
        await proxy.stop()


def test_public_api_is_exported_and_the_limiters_are_async():
    import routerone.limits as limits
    assert all(hasattr(limits, name) for name in limits.__all__)
    assert {"Limiter", "LimitRule", "LimitTicket", "LimitDecision", "MemoryLimiter",
            "RedisLimiter", "SharedLimiter", "SharedLimiterState"} <= set(limits.__all__)
    for cls in (MemoryLimiter, SharedLimiter, RedisLimiter):
        for name in ("acquire", "release", "peek", "close"):
            assert asyncio.iscoroutinefunction(getattr(cls, name)), (cls, name)

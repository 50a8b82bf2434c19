"""RedisLimiter shares round trips between concurrent calls (one EVALSHA of the script's batch mode)
without changing a decision: exact admissions, calls of one request run in order, NOSCRIPT before
and between batches, one caller's error reply, and Redis failing while a batch is in flight. Real
Redis at ROUTERONE_TEST_REDIS_URL (see test_limiter_contract.py); every test uses its own scopes.
"""
from __future__ import annotations

import asyncio
import os
import uuid
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from routerone.limits import KEY_PREFIX, DenyReason, LimitRule, LimitTicket, RedisLimiter

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("ROUTERONE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_url() -> str:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1.0)
    try:
        await client.ping()
    except Exception as exc:                   # noqa: BLE001 - whatever failed, there is no Redis
        message = f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__}: {exc})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so the Redis limiter tests must run", pytrace=False)
        pytest.skip(message)
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture
def scope() -> str:
    return f"coalesce:{uuid.uuid4().hex[:12]}"


def _rid() -> str:
    return uuid.uuid4().hex


async def _burst(limiter: RedisLimiter, rules: list[LimitRule], n: int, tokens: int = 0):
    return await asyncio.gather(*(limiter.acquire(rules, _rid(), tokens) for _ in range(n)))


def _count_commands(limiter: RedisLimiter) -> list[tuple]:
    """The commands the limiter's client sends from now on (name, number of keys, args)."""
    sent: list[tuple] = []
    original = limiter._redis.execute_command

    async def counting(*args, **kwargs):
        sent.append(args)
        return await original(*args, **kwargs)

    limiter._redis.execute_command = counting
    return sent


async def test_concurrent_acquires_share_round_trips_and_stay_exact(redis_url, scope):
    limiter = RedisLimiter(redis_url)
    try:
        rules = [LimitRule(scope + ":key", rpm=25, concurrency=40),
                 LimitRule(scope + ":acct", tpm=10_000)]
        assert await limiter.peek(rules)                      # connected, script loaded
        before = limiter.round_trips
        decisions = await _burst(limiter, rules, 64, tokens=100)
        trips = limiter.round_trips - before
        assert sum(d.allowed for d in decisions) == 25
        assert {d.reason for d in decisions if not d.allowed} == {DenyReason.RPM}
        assert trips <= 2, f"64 concurrent acquires took {trips} round trips"
        before = limiter.round_trips
        await asyncio.gather(*(limiter.release(d.ticket, 40) for d in decisions if d.allowed))
        assert limiter.round_trips - before <= 2
        acct = await limiter.acquire([rules[1]], _rid(), 0)   # 25 releases gave back 60 tokens each
        assert acct.headers["x-ratelimit-remaining-tokens"] == str(10_000 - 25 * 40)
        before = limiter.round_trips
        for _ in range(3):                                    # a call made alone: one round trip
            assert await limiter.peek(rules) is False
        assert limiter.round_trips - before == 3
        assert limiter.fallback_events == 0
    finally:
        await limiter.close()


async def test_a_batch_of_64_acquires_is_one_command_and_exact(redis_url, scope):
    limiter = RedisLimiter(redis_url)
    client = Redis.from_url(redis_url)
    try:
        rules = [LimitRule(scope + ":key", rpm=25, tpm=10_000, concurrency=40),
                 LimitRule(scope + ":acct", tpm=2_000)]
        assert await limiter.peek(rules)                      # connected, script loaded
        sent = _count_commands(limiter)
        before = limiter.round_trips
        decisions = await _burst(limiter, rules, 64, tokens=100)
        assert limiter.round_trips - before == 1
        assert [args[0] for args in sent] == ["EVALSHA"]
        numkeys, argv = sent[0][2], sent[0][3 + sent[0][2]:]
        assert numkeys == 8                                   # each scope's four keys, once
        assert argv[0] == "batch" and len(argv) == 3 + 2 * 64     # request id, the rest
        assert {spec.split()[0] for spec in argv[4::2]} == {"acquire"}
        assert [d.allowed for d in decisions] == [True] * 20 + [False] * 44   # tpm 2,000 binds
        assert {(d.reason, d.denied_scope) for d in decisions[20:]} == {(DenyReason.TPM, rules[1].scope)}
        assert decisions[0].headers["x-ratelimit-remaining-tokens"] == str(2_000 - 100)
        assert decisions[19].headers["x-ratelimit-remaining-tokens"] == "0"
        assert decisions[20].headers["x-ratelimit-remaining-requests"] == str(25 - 20)
        assert await client.zcard(f"{KEY_PREFIX}{rules[0].scope}:req") == 20
        assert await client.zcard(f"{KEY_PREFIX}{rules[0].scope}:cc") == 20
        assert int(await client.get(f"{KEY_PREFIX}{rules[1].scope}:tsum")) == 2_000
        assert limiter.fallback_events == 0
    finally:
        await limiter.close()
        await client.aclose()


async def test_a_batch_runs_the_calls_of_one_request_in_order(redis_url, scope):
    """One batch: acquire A, acquire B (no slot), release A, acquire C (A's slot), acquire A again
    (counted already, but its slot is C's now), release C with its tokens unused: each call sees
    exactly what the calls before it in the batch did."""
    limiter = RedisLimiter(redis_url)
    client = Redis.from_url(redis_url)
    try:
        rules = (LimitRule(scope + ":key", tpm=1_000, concurrency=1),)
        assert await limiter.peek(rules)
        sent = _count_commands(limiter)
        a, b, c = _rid(), _rid(), _rid()
        got = await asyncio.gather(
            limiter.acquire(rules, a, 100), limiter.acquire(rules, b, 100),
            limiter.release(LimitTicket(a, rules, 100), 40), limiter.acquire(rules, c, 300),
            limiter.acquire(rules, a, 100), limiter.release(LimitTicket(c, rules, 300), 0),
            limiter.peek(rules, 700))
        assert [args[0] for args in sent] == ["EVALSHA"]
        acquired_a, denied_b, _, acquired_c, again_a, _, peeked = got
        assert acquired_a.allowed and acquired_c.allowed
        assert (denied_b.allowed, denied_b.reason) == (False, DenyReason.CONCURRENCY)
        assert (again_a.allowed, again_a.reason) == (False, DenyReason.CONCURRENCY)
        assert acquired_c.headers["x-ratelimit-remaining-tokens"] == str(1_000 - 40 - 300)
        assert again_a.headers["x-ratelimit-remaining-tokens"] == str(1_000 - 40 - 300)
        assert peeked is True                                  # C's 300 tokens were given back
        base = f"{KEY_PREFIX}{rules[0].scope}"
        assert int(await client.get(base + ":tsum")) == 40
        assert await client.zcard(base + ":cc") == 0
        assert set(await client.zrange(base + ":req", 0, -1)) == {a.encode(), c.encode()}
    finally:
        await limiter.close()
        await client.aclose()


async def test_batches_in_flight_are_bounded(redis_url, scope):
    limiter = RedisLimiter(redis_url, max_connections=1, batch_size=16)
    try:
        rule = LimitRule(scope + ":key", rpm=50)
        assert await limiter.peek([rule])
        before = limiter.round_trips
        decisions = await _burst(limiter, [rule], 100)
        assert sum(d.allowed for d in decisions) == 50
        assert limiter.round_trips - before == 7              # ceil(100 / 16), one after another
        pool = limiter._redis.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) == 1
    finally:
        await limiter.close()


async def test_script_flushed_before_a_batch(redis_url, scope):
    limiter = RedisLimiter(redis_url)
    client = Redis.from_url(redis_url)
    try:
        rule = LimitRule(scope + ":key", rpm=40, tpm=1000)
        assert await limiter.peek([rule])
        await client.script_flush()
        sent = _count_commands(limiter)
        before = limiter.round_trips
        decisions = await _burst(limiter, [rule], 64, tokens=30)
        assert [d.allowed for d in decisions] == [True] * (1000 // 30) + [False] * (64 - 1000 // 30)
        assert {d.reason for d in decisions if not d.allowed} == {DenyReason.TPM}   # before rpm
        assert [args[0] for args in sent] == ["EVALSHA", "EVAL"]   # NOSCRIPT; the same batch again
        assert limiter.round_trips - before == 2
        assert await client.zcard(f"{KEY_PREFIX}{rule.scope}:req") == 1000 // 30
        assert (await _burst(limiter, [rule], 2, tokens=30))[0].reason == DenyReason.TPM   # loaded
        assert [args[0] for args in sent[2:]] == ["EVALSHA"]
        assert limiter.fallback_events == 0
    finally:
        await limiter.close()
        await client.aclose()


async def test_script_flushed_between_batches(redis_url, scope):
    """SCRIPT FLUSH lands after the second of four batches (one connection, 16 calls a batch): the
    third finds no script and is sent again with EVAL, and every caller gets the decision it would
    have had."""
    limiter = RedisLimiter(redis_url, max_connections=1, batch_size=16)
    client = Redis.from_url(redis_url)
    sent = _count_commands(limiter)
    evalsha = limiter._redis.evalsha

    async def flushing_evalsha(*args, **kwargs):
        reply = await evalsha(*args, **kwargs)
        if len(sent) == 3:                                      # the peek and two batches ran
            await client.script_flush()
        return reply

    limiter._redis.evalsha = flushing_evalsha
    try:
        rule = LimitRule(scope + ":key", rpm=25)
        assert await limiter.peek([rule])
        before = limiter.round_trips
        decisions = await _burst(limiter, [rule], 64)
        assert [d.allowed for d in decisions] == [True] * 25 + [False] * 39
        assert limiter.round_trips - before == 5
        assert [args[0] for args in sent] == ["EVALSHA"] * 4 + ["EVAL", "EVALSHA"]
        assert limiter.fallback_events == 0
    finally:
        await limiter.close()
        await client.aclose()


async def test_an_error_reply_fails_only_its_caller(redis_url, scope):
    limiter = RedisLimiter(redis_url)
    client = Redis.from_url(redis_url)
    bad = LimitRule(scope + ":bad", rpm=5)
    try:
        await client.set(f"{KEY_PREFIX}{bad.scope}:req", "not a zset", ex=60)   # script: WRONGTYPE
        good = LimitRule(scope + ":good", rpm=10)
        assert await limiter.peek([good])
        calls = [limiter.acquire([good], _rid(), 0) for _ in range(20)]
        calls.insert(7, limiter.acquire([bad], _rid(), 0))
        before = limiter.round_trips
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert limiter.round_trips - before == 1                 # one batch, one caller failed
        error = results.pop(7)
        assert isinstance(error, ResponseError) and str(error).startswith("WRONGTYPE")
        assert sum(d.allowed for d in results) == 10
        assert (limiter.fallback_events, limiter.outages) == (0, 0)
    finally:
        await limiter.close()
        await client.delete(f"{KEY_PREFIX}{bad.scope}:req")
        await client.aclose()


async def test_callers_cancelled_while_queued_are_not_sent(redis_url, scope):
    limiter = RedisLimiter(redis_url)
    client = Redis.from_url(redis_url)
    try:
        rule = LimitRule(scope + ":key", rpm=100)
        assert await limiter.peek([rule])
        tasks = [asyncio.create_task(limiter.acquire([rule], _rid(), 0)) for _ in range(64)]
        await asyncio.sleep(0)                                 # all 64 queued, none sent yet
        for task in tasks[::2]:
            task.cancel()
        decisions = await asyncio.gather(*tasks[1::2])
        assert all(d.allowed for d in decisions)
        assert all(task.cancelled() for task in tasks[::2])
        assert await client.zcard(f"{KEY_PREFIX}{rule.scope}:req") == 32
        assert (await limiter.acquire([rule], _rid(), 0)).allowed   # the limiter still works
    finally:
        await limiter.close()
        await client.aclose()


class _HoldingProxy:
    """TCP proxy in front of Redis. After `hold()` requests are swallowed (a batch stays in flight
    and, if nothing else happens, times out: Redis hangs); `cut()` closes every connection and
    stops accepting (Redis is gone)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.held = asyncio.Event()          # a request arrived while holding
        self.holding = False
        self.server: asyncio.AbstractServer | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def hold(self) -> None:
        self.holding = True

    async def cut(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer, True),
                             self._pipe(up_reader, writer, False), return_exceptions=True)

    async def _pipe(self, reader, writer, requests: bool) -> None:
        try:
            while data := await reader.read(65536):
                if requests and self.holding:
                    self.held.set()
                    continue                                    # swallowed: the reply never comes
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("how", ["cut", "hang"])
@pytest.mark.parametrize("policy", ["open", "closed"])
async def test_redis_failing_mid_batch_gives_every_caller_the_policy_answer(redis_url, scope,
                                                                            policy, how):
    """A batch is in flight (and a second one, and a queue behind both) when Redis is cut off or
    stops answering: every caller gets the failure policy's answer, none an exception."""
    proxy = _HoldingProxy(redis_url)
    port = await proxy.start()
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}{urlsplit(redis_url).path}",
                           failure_policy=policy, timeout_s=0.2)
    try:
        rule = LimitRule(scope + ":key", rpm=25)
        assert await limiter.peek([rule])                       # connected, script loaded
        before = limiter.round_trips
        proxy.hold()
        first = asyncio.ensure_future(_burst(limiter, [rule], 64))
        await asyncio.wait_for(proxy.held.wait(), 5)            # the first batch is in flight
        second = asyncio.ensure_future(_burst(limiter, [rule], 64))
        await asyncio.sleep(0.01)                               # a second batch, and a queue
        third = asyncio.ensure_future(_burst(limiter, [rule], 64))   # queued behind both
        await asyncio.sleep(0.01)
        if how == "cut":
            await proxy.cut()
        decisions = [d for wave in (first, second, third) for d in await asyncio.wait_for(wave, 5)]
        assert len(decisions) == 192 and limiter.outages == 1
        assert limiter.round_trips - before == 2                # the queued wave was never sent
        assert limiter.fallback_events == 192
        if policy == "closed":
            assert all(not d.allowed and d.reason == DenyReason.UNAVAILABLE for d in decisions)
        else:                                                   # the local limiter decides, exactly
            assert sum(d.allowed for d in decisions) == 25
    finally:
        await limiter.close()
        await proxy.cut()

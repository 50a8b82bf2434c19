"""Redis limiter: several gateway processes or machines share one set of limits.

Calls run the `routerone_ratelimit_v1` Lua script (lua/ratelimit_v1.lua) with EVALSHA. The script
runs the sliding-window log of base.py atomically against the Redis server's clock, so the
guarantees hold across any number of gateways. Keys live under `ro:rl:v1:<scope>:`; they expire a
window (or a lease) after their last write. One Redis primary; not Redis Cluster (a decision's
rules may hash to different slots). Needs Redis >= 5 (effects replication of TIME).

Calls share round trips, and commands. Each call is queued in a `Batcher` (routerone.batching, the
same one PostgresStore uses), which takes the queue (up to `batch_size` calls, default 128); the
batch goes out as ONE EVALSHA of the script's batch mode, which runs
the calls in queue order, each exactly as it runs alone, and answers them all in one reply (one line
of integers per call: cheap to send and to parse). So the calls made in the same event-loop tick, or
while earlier batches were in flight, share a round trip and a command. At most `max_connections`
batches (default 2, one pooled connection each) are in flight; later calls wait in the queue for the
next one (back-pressure, not an outage). A call made alone is one plain single-call EVALSHA, so
without contention a call is still exactly one round trip; under load one round trip carries many
calls (`round_trips` counts the round trips sent). A script runs atomically, so batching changes no
decision: it is one of the orders in which the calls could have reached Redis anyway. A call that
fails in the script (an error reply) fails alone: the script catches its error, returns it as that
call's reply and runs the next calls. On NOSCRIPT (after SCRIPT FLUSH or a restart) one more round
trip sends the same command with EVAL, which also loads the script again.

Failure policy, when Redis cannot be reached (connection refused, timeout, read-only replica):
- "open" (default): decide with the `fallback` limiter (a MemoryLimiter with the same window unless
  one is given): local, per-process limits, so N gateways admit up to N times a limit.
- "closed": deny with `retry_after_s` 1 and reason `limiter_unavailable` (`fallback` is unused).
When a round trip fails, every call it carried gets the policy's answer (a failure that is not an
outage, such as an error reply to the whole command, sends the batch back to run call by call). The first failure of an
outage logs one warning on logger "routerone.limits"; each decision taken by the policy adds one to
`fallback_events` (export it as a metric) and each outage to `outages`. During an outage the calls
themselves find out when Redis is back: a call arriving with no probe in flight, and at least
`probe_interval_s` (10 ms) after the last failed one, is the probe (it goes to Redis as usual). Calls
arriving while it is in flight wait for it under "closed" (at most `timeout_s`) and, if it got an
answer, go to Redis too; under "open" they are decided locally at once, as they would be anyway.
So at most one call per process tries a Redis that is down, and the first requests after it
returns are decided by it (before, a probe at most once a second: "closed" answered 503 for up to
a second while Redis answered). The first success logs the recovery and Redis decides again.
Tickets taken locally are released locally. If a release cannot reach Redis, its leases end by themselves after `lease_s` and
its unused tokens stay counted. If a reply is lost after the script ran, the slot is counted in
Redis and the fallback decides too (over-counts, never under-counts); redis-py's one connection
retry (which resends a whole batch) is safe because acquire, release and peek are idempotent.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from importlib import resources
from typing import Sequence

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from routerone.batching import Batcher
from routerone.limits.base import (DenyReason, LimitDecision, Limiter, LimitRule, LimitTicket,
                                   normalize_rules, retry_after_s)
from routerone.limits.headers import ScopeUsage, rate_limit_headers
from routerone.limits.memory import MemoryLimiter

__all__ = ["RedisLimiter", "KEY_PREFIX", "SCRIPT_NAME"]

KEY_PREFIX = "ro:rl:v1:"
SCRIPT_NAME = "routerone_ratelimit_v1"
_SCRIPT = (resources.files("routerone.limits") / "lua" / "ratelimit_v1.lua").read_bytes()
_SHA = hashlib.sha1(_SCRIPT).hexdigest()
_REASONS = {1: DenyReason.RPM, 2: DenyReason.TPM, 3: DenyReason.CONCURRENCY,
            4: DenyReason.TOKENS_EXCEED_TPM}
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)
_UNSET = -1
# op, rules, request id, tokens, whether it is the probe of an outage
_Call = tuple[str, tuple[LimitRule, ...], str, int, bool]

log = logging.getLogger("routerone.limits")


class RedisLimiter:
    probe_interval_s = 0.01    # during an outage, after a failed probe: how long until the next

    def __init__(self, url: str, *, failure_policy: str = "open", fallback: Limiter | None = None,
                 window_s: float = 60.0, lease_s: float = 600.0, timeout_s: float = 0.25,
                 max_connections: int = 2, batch_size: int = 128) -> None:
        if failure_policy not in ("open", "closed"):
            raise ValueError(f"failure_policy must be 'open' or 'closed', got {failure_policy!r}")
        if window_s <= 0 or lease_s <= 0:
            raise ValueError("window_s and lease_s must be > 0")
        if max_connections < 1 or batch_size < 1:
            raise ValueError("max_connections and batch_size must be >= 1")
        self._redis = Redis.from_url(
            url, max_connections=max_connections, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 1))
        self.failure_policy = failure_policy
        self._owns_fallback = failure_policy == "open" and fallback is None
        self._fallback: Limiter | None = (
            None if failure_policy == "closed"
            else fallback if fallback is not None
            else MemoryLimiter(window_s=window_s, lease_s=lease_s))
        self._timing = (str(round(window_s * 1e6)), str(round(lease_s * 1e6)))
        # at most max_connections batches in flight, one pooled connection each
        self._calls: Batcher[_Call, list[int] | Exception | None] = Batcher(
            self._send, max_batch=batch_size, max_in_flight=max_connections)
        self._down = False
        self._probe_at = 0.0
        self._probe: asyncio.Future[None] | None = None     # the outage's probe in flight
        self._probe_wait_s = timeout_s
        self._fallback_used = False
        self.fallback_events = 0
        self.outages = 0
        self.round_trips = 0                   # round trips (one EVALSHA or EVAL each) sent

    async def acquire(self, rules: Sequence[LimitRule], request_id: str,
                      tokens: int) -> LimitDecision:
        if tokens < 0 or not request_id:
            raise ValueError("acquire needs a request_id and tokens >= 0")
        rules = normalize_rules(rules)
        if not rules:
            return LimitDecision(True, LimitTicket(request_id, (), tokens), 0.0, {})
        reply = await self._run("acquire", rules, request_id, tokens)
        if reply is None:
            return await self._degraded_acquire(rules, request_id, tokens)
        usage = [ScopeUsage(reply[i], reply[i + 1], reply[i + 2] / 1e6)
                 for i in range(4, 4 + 3 * len(rules), 3)]
        headers = rate_limit_headers(rules, usage)
        if reply[0] == 1:
            return LimitDecision(True, LimitTicket(request_id, rules, tokens), 0.0, headers)
        return LimitDecision(False, None, retry_after_s(reply[3] / 1e6), headers,
                             rules[reply[1] - 1].scope, _REASONS[reply[2]])

    async def release(self, ticket: LimitTicket, tokens_used: int) -> None:
        if not ticket.rules:
            return
        if self._fallback_used and self._fallback is not None:
            await self._fallback.release(ticket, tokens_used)
        await self._run("release", ticket.rules, ticket.request_id, max(0, tokens_used))

    async def peek(self, rules: Sequence[LimitRule], tokens: int = 0) -> bool:
        rules = normalize_rules(rules)
        if not rules:
            return True
        reply = await self._run("peek", rules, "", tokens)
        if reply is not None:
            return reply[0] == 1
        self.fallback_events += 1
        return self._fallback is not None and await self._fallback.peek(rules, tokens)

    async def close(self) -> None:
        await self._calls.close()                   # let the round trips in flight finish
        await self._redis.aclose()
        if self._owns_fallback and self._fallback is not None:
            await self._fallback.close()

    async def _run(self, op: str, rules: tuple[LimitRule, ...], rid: str,
                   tokens: int) -> list[int] | None:
        """One script call, sent with the other calls waiting for a round trip; None when Redis is
        unreachable (or still in a known outage; see the module docstring for who tries it)."""
        call = (op, rules, rid, tokens, False)
        if self._down:
            probe = self._probe
            if probe is None and time.monotonic() >= self._probe_at:
                return await self._probe_with((op, rules, rid, tokens, True))
            if probe is None or self._fallback is not None or not await self._answered(probe):
                return None
        reply = await self._calls.submit(call)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def _probe_with(self, call: _Call) -> list[int] | None:
        """This call is the outage's probe: the others wait for it (`_answered`)."""
        probe = self._probe = asyncio.get_running_loop().create_future()
        self._probe_at = time.monotonic() + self.probe_interval_s
        try:
            reply = await self._calls.submit(call)
        finally:
            self._probe = None
            probe.set_result(None)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def _answered(self, probe: asyncio.Future[None]) -> bool:
        """Under "closed": wait (at most `timeout_s`) for the probe in flight; whether Redis is back."""
        try:
            await asyncio.wait_for(asyncio.shield(probe), self._probe_wait_s)
        except asyncio.TimeoutError:
            return False
        return not self._down

    async def _send(self, batch: list[_Call]) -> list[list[int] | Exception | None]:
        """One batch's replies, in order: the script's, an error reply (that call's own), or None
        for a call that Redis could not decide (an outage, also one that began while it queued).
        A failure that is not an outage raises, and the Batcher retries the calls one by one."""
        replies: list[list[int] | Exception | None] = [None] * len(batch)
        sent = [i for i, call in enumerate(batch) if call[4] or not self._down]
        if not sent:
            return replies
        try:
            got = await self._round_trip([batch[i] for i in sent])
        except _UNREACHABLE as exc:
            self._mark_down(exc)
            return replies
        for i, reply in zip(sent, got):
            if isinstance(reply, _UNREACHABLE):
                self._mark_down(reply)
                reply = None
            elif reply is not None and not isinstance(reply, Exception) and self._down:
                self._mark_up()
            replies[i] = reply
        return replies

    async def _round_trip(self, calls: list[_Call]) -> list:
        """The script's replies to `calls`, or the error reply of each call that got one. Raises
        when the round trip fails (or the whole command gets an error reply)."""
        if len(calls) == 1:
            op, rules, rid, tokens = calls[0][:4]
            keys, args = [], [op, rid, tokens, *self._timing]
            for rule in rules:
                keys += _keys(rule.scope)
                args += (_or_unset(rule.rpm), _or_unset(rule.tpm), _or_unset(rule.concurrency))
            return [await self._evalsha(len(keys), *keys, *args)]
        keys, args, first = [], ["batch", *self._timing], {}
        for op, rules, rid, tokens, _ in calls:
            spec = f"{op} {tokens}"          # one argument: each costs redis-py to encode
            for rule in rules:               # a scope's four keys are sent once, at KEYS[k:k + 4]
                k = first.get(rule.scope)
                if k is None:
                    k = first[rule.scope] = len(keys) + 1
                    keys += _keys(rule.scope)
                spec += (f" {k} {_or_unset(rule.rpm)} {_or_unset(rule.tpm)}"
                         f" {_or_unset(rule.concurrency)}")
            args += (rid, spec)
        text, *errors = await self._evalsha(len(keys), *keys, *args)
        failed = iter(errors)                # the error replies of the empty lines, in order
        return [[*map(int, line.split())] if line else next(failed) for line in text.split(b"\n")]

    async def _evalsha(self, *args):
        self.round_trips += 1
        try:
            return await self._redis.evalsha(_SHA, *args)
        except NoScriptError:                # after SCRIPT FLUSH or a restart; EVAL loads it again
            self.round_trips += 1
            return await self._redis.eval(_SCRIPT, *args)

    async def _degraded_acquire(self, rules: tuple[LimitRule, ...], rid: str,
                                tokens: int) -> LimitDecision:
        self.fallback_events += 1
        if self._fallback is None:
            return LimitDecision(False, None, 1.0, {}, None, DenyReason.UNAVAILABLE)
        self._fallback_used = True
        return await self._fallback.acquire(rules, rid, tokens)

    def _mark_up(self) -> None:
        self._down = False
        log.warning("Redis limiter reachable again; Redis decides limits again "
                    "(%d decisions taken by failure_policy=%s so far)",
                    self.fallback_events, self.failure_policy)

    def _mark_down(self, exc: BaseException) -> None:
        self._probe_at = time.monotonic() + self.probe_interval_s
        if self._down:
            return
        self._down = True
        self.outages += 1
        action = ("using local in-process limits" if self._fallback is not None
                  else "denying requests")
        log.warning("Redis limiter unreachable (%s: %s); failure_policy=%s: %s until it answers",
                    type(exc).__name__, exc, self.failure_policy, action)


    async def ping(self) -> None:
        await self._redis.ping()


def _keys(scope: str) -> tuple[str, str, str, str]:
    base = KEY_PREFIX + scope
    return base + ":req", base + ":tok", base + ":tsum", base + ":cc"


def _or_unset(limit: int | None) -> int:
    return _UNSET if limit is None else limit

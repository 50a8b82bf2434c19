"""Shared cooldowns through Redis: once any instance (or worker) on one Redis cools a deployment
down, every instance skips it until the cooldown ends, as LiteLLM shares its cooldowns.

State: one sorted set `ro:cool:v1`, member `<deployment id>|<12 hex digits of BLAKE2b(base_url)>`
(two gateways share a deployment's cooldown only when they send to the same upstream address; the
address itself is not stored), score the end of the cooldown in the Redis server's milliseconds
(its TIME: the hosts' clocks never enter). The key expires with its last cooldown. A shared cooldown
lasts at most `MAX_SHARED_COOLDOWN_MS` (7 days; a longer `cooldown_s` stays the process's own): a
later end, or a member that is no deployment's, written by another program, is ignored.

Hot path: none. `until(dep_id)` reads a local dict. A background task refreshes that dict every
`refresh_interval_s` (one round trip: a script that answers the members still cooling and their
remaining milliseconds), so a cooldown started elsewhere is seen within that interval. Each round
trip's cost is bounded whatever fills the set (another tenant, a bug): at most READ_MAX live members
read, at most PRUNE_MAX expired ones removed (see PRUNE_MAX). Starting a
cooldown (`publish`) and ending one early on a success (`clear`) are one background round trip
each, made only when health changes state, never per request.

Redis down: routing goes on with each process's own health (every instance still cools a
deployment down for itself after `cooldown_failures` failures); shared cooldowns already known are
kept until they end. The first failure of an outage logs one warning on logger "routerone.routing",
each failed round trip adds one to `fallback_events`, and the refresh is the probe: the first
success logs the recovery. The retry budget stays per process (a shared bucket would need a round
trip per retry).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Callable, Mapping

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .health import MAX_SHARED_COOLDOWN_MS

__all__ = ["RedisCooldownBoard", "COOLDOWN_KEY"]

COOLDOWN_KEY = "ro:cool:v1"
log = logging.getLogger("routerone.routing")

# Bounded cost however many members the set holds (another tenant, a bug): each call removes at
# most PRUNE_MAX expired members (the lowest ranks) and at most PRUNE_MAX past the furthest end (the
# highest), and a refresh reads at most READ_MAX live members, those ending soonest. Before, one
# command removed every expired member and the refresh read every live one: 200k live members took
# the refresh past its timeout, and nothing was shared any more.
PRUNE_MAX = 2000
READ_MAX = 4096
_PRUNE = """
local function prune(key, now, furthest)
  local n = redis.call('ZCOUNT', key, '-inf', now)
  if n > 0 then redis.call('ZREMRANGEBYRANK', key, 0, math.min(n, %d) - 1) end
  n = redis.call('ZCOUNT', key, '(' .. furthest, '+inf')
  if n > 0 then redis.call('ZREMRANGEBYRANK', key, -math.min(n, %d), -1) end
end
""" % (PRUNE_MAX, PRUNE_MAX)
# KEYS[1] the set; ARGV: member, cooldown ms (<= ARGV[3]), ARGV[3] the furthest end from now. Keeps
# the later end when one is already set; ignores ends past the furthest (+inf broke the PEXPIREAT),
# so the key expires with the last cooldown in range.
_PUBLISH = _PRUNE + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local furthest = now + tonumber(ARGV[3])
prune(KEYS[1], now, furthest)
local ends = now + tonumber(ARGV[2])
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not cur) or tonumber(cur) < ends or tonumber(cur) > furthest then
  redis.call('ZADD', KEYS[1], ends, ARGV[1])
end
local last = redis.call('ZREVRANGEBYSCORE', KEYS[1], furthest, '(' .. now, 'WITHSCORES', 'LIMIT', 0, 1)
if last[2] then redis.call('PEXPIREAT', KEYS[1], math.floor(tonumber(last[2])) + 1000) end
return 1
"""
# KEYS[1] the set, ARGV[1] the furthest end from now: {member, remaining ms, ...} of the cooldowns
# not over yet (at most READ_MAX, those ending soonest); prunes as a publish does
_READ = _PRUNE + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local furthest = now + tonumber(ARGV[1])
prune(KEYS[1], now, furthest)
local r = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, furthest, 'WITHSCORES', 'LIMIT', 0, %d)
local out = {}
for i = 1, #r, 2 do
  out[#out + 1] = r[i]
  out[#out + 1] = math.floor(tonumber(r[i + 1]) - now)
end
return out
""" % READ_MAX


def address_tag(base_url: str) -> str:
    return hashlib.blake2b(base_url.encode(), digest_size=6).hexdigest()


class RedisCooldownBoard:
    refresh_interval_s = 0.5

    def __init__(self, url: str, base_urls: Callable[[], Mapping[str, object]], *,
                 timeout_s: float = 0.25) -> None:
        """`base_urls()`: the catalog's vendors by name (each with a `base_url`), read at each use
        so deployments discovered later are covered."""
        self._redis = Redis.from_url(url, max_connections=2, socket_timeout=timeout_s,
                                     socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0))
        self._publish = self._redis.register_script(_PUBLISH)
        self._read = self._redis.register_script(_READ)
        self._vendors = base_urls
        self._tags: dict[str, str] = {}            # base_url -> address tag (memo)
        self.shared: dict[str, float] = {}         # dep id -> end of its shared cooldown (monotonic): the local copy
        self._tasks: set[asyncio.Task] = set()
        self._writes = asyncio.Lock()              # one write at a time: the refresh keeps the other connection
        self._cleared: dict[str, float] = {}       # dep id -> when its clear reached Redis (inf: not yet)
        self._refresher: asyncio.Task | None = None
        self._down = False
        self._full_logged = False
        self.fallback_events = 0
        self.outages = 0
        self.refreshes = 0

    # -- the hot path: local reads only --------------------------------------------------------
    def until(self, dep_id: str) -> float:
        return self.shared.get(dep_id, 0.0)

    def cooling(self, now: float) -> dict[str, float]:
        return {d: t for d, t in self.shared.items() if t > now}

    # -- state changes (rare): one background round trip each ------------------------------------
    def publish(self, dep_id: str, cooldown_s: float) -> None:
        """This process cooled `dep_id` down (its own health holds that already): tell the others."""
        member = self._member(dep_id)
        if member is None:
            return
        self._spawn(self._publish(keys=[COOLDOWN_KEY], args=[member, min(max(1, round(cooldown_s * 1000)), MAX_SHARED_COOLDOWN_MS),
                                                             MAX_SHARED_COOLDOWN_MS]))

    def clear(self, dep_id: str) -> None:
        self.shared.pop(dep_id, None)
        member = self._member(dep_id)
        if member is not None:
            self._cleared[dep_id] = float("inf")   # a refresh read before the ZREM lands must not bring it back
            self._spawn(self._redis.zrem(COOLDOWN_KEY, member),
                        lambda: self._cleared.__setitem__(dep_id, time.monotonic()))

    async def start(self) -> None:
        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def flush(self) -> None:
        """Wait for the publishes and clears sent so far."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        await self.flush()
        await self._redis.aclose()

    async def refresh(self) -> None:
        """One read of the shared set into the local dict (raises on a failed round trip)."""
        sent = time.monotonic()
        reply = await self._read(keys=[COOLDOWN_KEY], args=[MAX_SHARED_COOLDOWN_MS])
        vendors = self._vendors()
        fresh: dict[str, float] = {}
        for i in range(0, len(reply) - 1, 2):
            member = reply[i].decode(errors="replace") if isinstance(reply[i], bytes) else str(reply[i])
            dep_id, _, tag = member.rpartition("|")
            vendor = vendors.get(dep_id.split("/", 1)[0])
            if vendor is not None and self._tag(vendor.base_url) == tag and self._cleared.get(dep_id, 0.0) < sent:
                fresh[dep_id] = sent + int(reply[i + 1]) / 1000
        if len(reply) >= 2 * READ_MAX and not self._full_logged:
            self._full_logged = True
            log.warning("Redis cooldown set %s holds more than %d cooldowns still running (another "
                        "program writing into it?): only the %d ending soonest are read", COOLDOWN_KEY,
                        READ_MAX, READ_MAX)
        self._cleared = {d: t for d, t in self._cleared.items() if t >= sent}
        if fresh != self.shared:                     # in place: Health holds this dict
            self.shared.clear()
            self.shared.update(fresh)
        self.refreshes += 1

    async def _refresh_loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except (RedisError, OSError) as exc:
                self._failed(exc)
            except Exception as exc:  # noqa: BLE001 - a reply of a shape nobody foresaw: the refresh goes on
                self._failed(exc)
            else:
                self._ok()
            await asyncio.sleep(self.refresh_interval_s)

    def _spawn(self, call, done: Callable[[], None] | None = None) -> None:
        async def run() -> None:
            try:
                async with self._writes:
                    await call
            except (RedisError, OSError) as exc:
                self._failed(exc)
            finally:
                if done is not None:
                    done()
        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _member(self, dep_id: str) -> str | None:
        vendor = self._vendors().get(dep_id.split("/", 1)[0])
        return None if vendor is None else f"{dep_id}|{self._tag(vendor.base_url)}"

    def _tag(self, base_url: str) -> str:
        tag = self._tags.get(base_url)
        if tag is None:
            tag = self._tags[base_url] = address_tag(base_url)
        return tag

    def _ok(self) -> None:
        if self._down:
            self._down = False
            log.warning("Redis cooldown board reachable again: cooldowns are shared again "
                        "(%d round trips failed meanwhile)", self.fallback_events)

    def _failed(self, exc: BaseException) -> None:
        self.fallback_events += 1
        if self._down:
            return
        self._down = True
        self.outages += 1
        log.warning("Redis cooldown board unreachable (%s: %s): each process keeps its own deployment "
                    "cooldowns until it answers", type(exc).__name__, exc)

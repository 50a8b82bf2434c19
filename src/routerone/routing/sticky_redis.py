"""Redis `StickyStore`: sticky conversations shared by every worker and instance on one Redis.

One string key per conversation, `ro:sticky:v1:<conversation hash>` -> model id, with a TTL of
`ttl_s` refreshed on use: a lookup is GETEX ... PX (Redis >= 6.2), a pin is SET ... PX. The hash
(sticky.conversation_key) holds no message text. Memory is bounded by the TTL (and by the Redis
server's own maxmemory policy): no entry cap of our own.

Calls share round trips: each is queued in a `Batcher` (routerone.batching, as the Redis limiter
does) and a batch goes out as one non-transactional pipeline, so a lookup made alone is one round
trip and under load one round trip carries many. At most `max_connections` batches are in flight.
`pin` does not wait: the write is queued from a background task (a first turn waits for no round
trip).

Failure (connection refused, timeout): a lookup answers None, so the planner
decides afresh (the request never fails for it), and a pin is dropped. The first failure of an
outage logs one warning on logger "routerone.routing"; each call the outage answered adds one to
`fallback_events`. An error reply to one call (GETEX on Redis < 6.2, a read-only replica, a key
of another type) answers None for that call alone, counted too and logged once per process.
During an outage Redis is tried at most once per `probe_interval_s` (by one call; the others answer
None at once, without waiting for a timeout); the first success logs the recovery.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Sequence

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from ..batching import Batcher
from .sticky import DEFAULT_TTL_S

__all__ = ["RedisStickyStore", "STICKY_KEY_PREFIX"]

STICKY_KEY_PREFIX = "ro:sticky:v1:"
log = logging.getLogger("routerone.routing")
_Call = tuple[str, str, str]        # ("get", key, "") or ("set", key, model)
_Reply = str | ResponseError | None


class RedisStickyStore:
    remote = True
    probe_interval_s = 1.0

    def __init__(self, url: str, *, ttl_s: float = DEFAULT_TTL_S, timeout_s: float = 0.25,
                 max_connections: int = 2, batch_size: int = 128) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self._redis = Redis.from_url(url, max_connections=max_connections, socket_timeout=timeout_s,
                                     socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 1))
        self._calls: Batcher[_Call, _Reply] = Batcher(self._send, max_batch=batch_size,
                                                          max_in_flight=max_connections)
        self._pins: set[asyncio.Task] = set()
        self._down = False
        self._probe_at = 0.0
        self._error_logged = False
        self.fallback_events = 0
        self.outages = 0

    def get(self, key: str) -> str | None:
        return None           # only a round trip knows: the caller awaits `lookup`

    async def lookup(self, key: str) -> str | None:
        return await self._call(("get", key, ""))

    async def remember(self, key: str, model: str) -> None:
        await self._call(("set", key, model))

    def pin(self, key: str, model: str) -> None:
        task = asyncio.get_running_loop().create_task(self.remember(key, model))
        self._pins.add(task)
        task.add_done_callback(self._pins.discard)

    async def close(self) -> None:
        if self._pins:
            await asyncio.gather(*list(self._pins), return_exceptions=True)
        await self._calls.close()
        await self._redis.aclose()

    async def ping(self) -> None:
        await self._redis.ping()

    async def _call(self, call: _Call) -> str | None:
        if self._down:
            now = time.monotonic()
            if now < self._probe_at:
                self.fallback_events += 1
                return None
            self._probe_at = now + self.probe_interval_s      # this call is the probe
        try:
            reply = await self._calls.submit(call)
        except (RedisError, OSError) as exc:      # the round trip failed: an outage
            self.fallback_events += 1
            self._mark_down(exc)
            return None
        if isinstance(reply, ResponseError):      # this call's own error reply (Redis < 6.2: no GETEX)
            self.fallback_events += 1
            if not self._error_logged:
                self._error_logged = True
                log.warning("Redis sticky store: error reply %r (logged once; such conversations are "
                            "routed afresh; GETEX needs Redis >= 6.2)", str(reply))
            return None
        return reply

    async def _send(self, batch: Sequence[_Call]) -> list[_Reply]:
        """One pipeline (one round trip): each call's model id, None, or its own error reply."""
        pipe = self._redis.pipeline(transaction=False)
        for op, key, model in batch:
            if op == "get":
                pipe.getex(STICKY_KEY_PREFIX + key, px=self.ttl_ms)
            else:
                pipe.set(STICKY_KEY_PREFIX + key, model, px=self.ttl_ms)
        replies = await pipe.execute(raise_on_error=False)
        if self._down:
            self._mark_up()
        # an entry that is not UTF-8 (another program's, or corrupted) names no model: decoded with
        # U+FFFD it matches none, the conversation is decided afresh and pinned again (a strict
        # decode failed the whole batch: a 500 for every call in it)
        return [r if isinstance(r, ResponseError) else r.decode(errors="replace") if op == "get" and isinstance(r, bytes)
                else None for (op, _, _), r in zip(batch, replies)]

    def _mark_up(self) -> None:
        self._down = False
        log.warning("Redis sticky store reachable again (%d lookups/pins answered 'unknown' meanwhile)",
                    self.fallback_events)

    def _mark_down(self, exc: BaseException) -> None:
        self._probe_at = time.monotonic() + self.probe_interval_s
        if self._down:
            return
        self._down = True
        self.outages += 1
        log.warning("Redis sticky store unreachable (%s: %s): conversations are routed afresh until it "
                    "answers", type(exc).__name__, exc)

"""The idle timeout shared by both upstream streams (transport.UpstreamStream on aiohttp's client,
http1_stream.Http1Stream on the lean one): keep-alives (SSE comments, blank lines, Anthropic pings) do not
count as activity, and more than MAX_KEEPALIVE_BYTES of them between two events is an upstream failure.
The same timer enforces the reply's overall limit (`stream_timeout_s`): an upstream trickling real
events just under the idle timeout is failed there."""
from __future__ import annotations

import asyncio
import math

from ..errors import UpstreamOverran, UpstreamTimeout, UpstreamUnavailable

__all__ = ["IdleWatchdog", "MAX_KEEPALIVE_BYTES", "MAX_REPLY_BYTES", "NO_DEADLINE_S", "read_bounded"]

MAX_KEEPALIVE_BYTES = 1 << 20     # of keep-alives between two stream events (OpenRouter's: ~25 bytes every few s)
MAX_REPLY_BYTES = 64 << 20        # a reply read whole (not streamed) or an error body beyond this is a 502
NO_DEADLINE_S = math.inf          # a stream's overall deadline until `limit_until` sets one


async def read_bounded(next_piece, declared_bytes: int | None, max_bytes: int, deadline_s: float) -> bytes:
    """A whole body from `next_piece()` (b"" at its end), at most `max_bytes` within `deadline_s`:
    more (declared or sent) is an upstream failure, read no further, so memory stays bounded."""
    async with asyncio.timeout(deadline_s):      # a deadline, not a new task (cheaper than wait_for)
        if declared_bytes is not None and declared_bytes > max_bytes:
            raise UpstreamUnavailable(f"The upstream reply is larger than {max_bytes} bytes ({declared_bytes})")
        body = bytearray()
        while chunk := await next_piece():
            body += chunk
            if len(body) > max_bytes:
                raise UpstreamUnavailable(f"The upstream reply is larger than {max_bytes} bytes")
        return bytes(body)


class IdleWatchdog:
    """The idle timeout of an upstream stream (this module's and transport.UpstreamStream): one timer
    per stream, not one per read; a wait notes when it started (`_wait_start_s`), and the timer, when
    due, fails a wait that has gone on for `_idle_s` (less the time already spent on keep-alives) or
    re-arms itself. A caller that finds a read brought only keep-alives says so with `kept_alive`;
    that read's wait then counts on, and its bytes towards MAX_KEEPALIVE_BYTES.

    `limit_until` sets the reply's overall deadline (loop time; none until then): the timer is never
    armed past it, and when it is due the stream is failed, waiting or not (the next read raises; a
    wait that begins past it arms the timer for at once)."""

    __slots__ = ()
    _kept_alive: bool
    _quiet_bytes: int
    _quiet_s: float
    _idle_s: float
    _wait_start_s: float | None
    _watchdog: asyncio.TimerHandle | None
    _loop: asyncio.AbstractEventLoop
    _deadline_s: float           # loop time the whole reply must be in by (math.inf: none)
    _limit_s: float              # that limit, for the message

    def _stalled(self, exc: UpstreamTimeout) -> None:
        raise NotImplementedError

    def limit_until(self, deadline_s: float, limit_s: float) -> None:
        """The whole reply must be in by `deadline_s` (loop time): `limit_s` after the request was sent."""
        self._deadline_s, self._limit_s = deadline_s, limit_s

    def _arm(self, now_s: float) -> None:
        """A wait begins at `now_s` with no timer set: the timer goes off at its idle due time or the
        overall deadline, whichever comes first."""
        self._watchdog = self._loop.call_at(min(now_s + self._idle_s - self._quiet_s, self._deadline_s),
                                            self._check_idle)

    def _check_idle(self) -> None:
        self._watchdog = None
        now_s = self._loop.time() + 0.001          # timers fire to the millisecond
        if now_s >= self._deadline_s:
            self._stalled(UpstreamOverran(f"The upstream reply took longer than {self._limit_s:g} s in all "
                                          "(stream_timeout_s)"))
            return
        start_s = self._wait_start_s
        if start_s is None:              # not waiting now: the next wait re-arms the watchdog
            return
        due_s = start_s + self._idle_s - self._quiet_s
        if now_s >= due_s:
            self._stalled(UpstreamTimeout(f"The upstream stream stalled: no event for {self._idle_s:g} s "
                                          "(idle timeout; keep-alives do not count)"))
        else:
            self._watchdog = self._loop.call_at(min(due_s, self._deadline_s), self._check_idle)

    def kept_alive(self, nbytes: int) -> None:
        self._kept_alive = True
        self._quiet_bytes += nbytes
        if self._quiet_bytes > MAX_KEEPALIVE_BYTES:
            raise UpstreamUnavailable(f"The upstream sent over {MAX_KEEPALIVE_BYTES} bytes of keep-alives "
                                      "(comments, blank lines, pings) without an event")

"""The stream of the lean HTTP/1.1 client (http1.py): an open upstream response on a pooled
connection (http1_pool.py), read piece by piece or pumped to a receiver."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from multidict import CIMultiDictProxy

from ..errors import UpstreamTimeout, UpstreamUnavailable
from .http1 import LINGER_S
from .idle import MAX_REPLY_BYTES, NO_DEADLINE_S, IdleWatchdog, read_bounded

if TYPE_CHECKING:
    from .http1 import _Conn
    from .http1_pool import Http1Pool

__all__ = ["Http1Stream"]


class Http1Stream(IdleWatchdog):
    """An open upstream response: `status`, `headers`, then `read()` until b""; always `close()`.
    Same contract as transport.UpstreamStream (idle watchdog, cancel-safe reads, keep-alives that do
    not reset the idle timeout: `kept_alive`)."""

    __slots__ = ("status", "headers", "_conn", "_pool", "_key", "_idle_s", "_loop", "_wait_start_s", "_watchdog",
                 "_quiet_s", "_quiet_bytes", "_kept_alive", "_deadline_s", "_limit_s")

    def __init__(self, conn: _Conn, pool: "Http1Pool", key: tuple, idle_s: float) -> None:
        self._conn, self._pool, self._key, self._idle_s = conn, pool, key, idle_s
        self._loop = conn.loop
        self._wait_start_s: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._quiet_s = 0.0          # time waited for reads that brought only keep-alives, since a real event
        self._quiet_bytes = 0        # bytes of keep-alives since a real event
        self._kept_alive = False     # the last read brought only keep-alives (the caller said so)
        self._deadline_s, self._limit_s = NO_DEADLINE_S, NO_DEADLINE_S    # limit_until
        self.status = conn.status
        self.headers = CIMultiDictProxy(conn.headers)

    def _settle_quiet(self) -> None:
        """Before a new wait: a real event since the last one resets the keep-alive account."""
        if not self._kept_alive:
            self._quiet_s, self._quiet_bytes = 0.0, 0
        self._kept_alive = False

    def _read_seen(self, now_s: float) -> None:
        """Pumping: a read was handed on; the wait for the next one starts now. The wait for this
        one counts on when it brought only keep-alives (`_kept_alive` then stays set for the next wait)."""
        if self._kept_alive:
            if self._wait_start_s is not None:
                self._quiet_s += now_s - self._wait_start_s
        else:
            self._quiet_s, self._quiet_bytes = 0.0, 0
        self._wait_start_s = now_s

    def _take(self) -> bytes:
        c = self._conn
        if c.body:
            data = c.body.popleft() if len(c.body) == 1 else b"".join(c.body)
            c.body.clear()
            c.body_bytes = 0
            if c.paused and not c.decode_held:
                c.paused = False
                c.transport.resume_reading()
            return data
        if c.error is not None:
            raise c.error
        return b""                                    # complete: the end of the body

    async def read(self) -> bytes:
        """The body bytes that have arrived (waiting for some if none have); b"" at its end."""
        c = self._conn
        while c.decode_held and not c.body and c.error is None:
            c.decode_held_slice()
        if c.body or c.complete or c.error is not None:
            return self._take()
        if c.paused:                       # a pump paused it for its receiver: reading again now
            c.paused = False
            c.transport.resume_reading()
        self._settle_quiet()
        self._wait_start_s = now_s = self._loop.time()
        if self._watchdog is None:
            self._arm(now_s)
        try:
            while not (c.body or c.complete or c.error is not None):
                c.waiter = self._loop.create_future()
                await c.waiter
        finally:
            c.waiter = None
            self._quiet_s += self._loop.time() - now_s
            self._wait_start_s = None
        return self._take()

    async def pump(self, on_data, write, done) -> str:
        """Push the body to the caller instead of being read: each piece as it arrives becomes
        `on_data(piece)` (bytes to send, maybe b""), handed to `write`, which returns False when its
        receiver takes no more for now. Returns "full" (reading is paused until the next pump or
        read), or "end" when `done()` or the body is complete (then `read()` gives b""). An upstream
        fault, the idle timeout or an exception from `on_data` is raised. Bytes that arrived before
        go first."""
        c = self._conn
        loop = self._loop
        while True:
            if c.decode_held and not c.body and c.error is None:
                c.decode_held_slice()                # what was held while the receiver was full
                continue
            if c.body:
                self._kept_alive = False
                out = on_data(self._take())
                if out and not write(out):
                    c._pause()
                    return "full"
                if done():
                    return "end"
                continue
            if c.error is not None:
                raise c.error
            if c.complete:
                return "end"
            if c.paused:
                c.paused = False
                c.transport.resume_reading()
            fut = loop.create_future()
            c.sink = (on_data, write, done, fut, self)
            self._settle_quiet()
            self._wait_start_s = now_s = loop.time()
            if self._watchdog is None:
                self._arm(now_s)
            try:
                verdict = await fut
            finally:
                c.sink = None
                self._wait_start_s = None
            if verdict != "wake":
                return verdict

    async def read_all(self, max_bytes: int = MAX_REPLY_BYTES) -> bytes:
        """The whole body, at most `max_bytes` (more is an upstream failure, read no further)."""
        length = self.headers.get("Content-Length", "")
        return await read_bounded(self.read, int(length) if length.isdigit() else None, max_bytes, self._idle_s)

    def _stalled(self, exc: UpstreamTimeout) -> None:
        self._conn._fail(exc)

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        c, self._conn = self._conn, None
        if c is None:
            return
        if c.closed or c.error is not None or not c.keep_alive or c.close_delimited or c.decode_held:
            c.close()
        elif c.complete:
            self._pool.release(self._key, c)
        elif not c.body and c.sink is None:
            # done before the body's end (a stream stops at `[DONE]`; the chunked body's last
            # `0\r\n\r\n` often comes in a segment of its own): keep it if the end follows soon
            c.linger = (self._pool, self._key, self._loop.call_later(LINGER_S, c.close))
            self._pool.lingering.add(c)
            if c.paused:
                c.paused = False
                c.transport.resume_reading()
        else:
            c.close()

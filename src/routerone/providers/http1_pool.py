"""The pool of the lean HTTP/1.1 client (http1.py): keep-alive connections per (host, port), and
the request head it writes."""
from __future__ import annotations

import asyncio

from yarl import URL

from ..errors import UpstreamTimeout, UpstreamUnavailable
from .http1 import _Conn
from .http1_stream import Http1Stream

__all__ = ["Http1Pool"]

POOL_IDLE_S = 60.0                # an idle pooled connection older than this is closed, not reused


class Http1Pool:
    """Keep-alive connections per (host, port), no limit on their number (as the aiohttp pool it
    stands beside, `limit=0`); an idle one past POOL_IDLE_S, or one the upstream closed, is dropped:
    when a request reaches it, or by the sweep that runs while any are idle (the newest are reused
    first, so a burst's others would otherwise stay open for ever on an upstream that keeps them)."""

    def __init__(self) -> None:
        self._idle: dict[tuple, list[_Conn]] = {}      # oldest first
        self.lingering: set[_Conn] = set()      # waiting for their body's end (Http1Stream.close)
        self._sweep: asyncio.TimerHandle | None = None

    async def open(self, url: str, headers, body: bytes, *, connect_s: float, idle_s: float) -> Http1Stream:
        """Send the request, wait for the response head. The caller bounds the whole wait (first byte).

        A request that fails on a reused connection before any byte of a response came is sent
        again, once, on a fresh connection: the server had closed that idle connection (uvicorn,
        under vLLM, does after 5 s idle) and its FIN or reset crossed the request. Safe, as the
        server produced no response byte: nothing was relayed or billed, and what Router One sends
        (completions, messages, embeddings) changes no state upstream; the router's own retries
        (max_retries) would send it again anyway, after a back-off and a health failure against a
        healthy upstream. Go's net/http and urllib3 retry such a failure for idempotent requests
        only (Go also for any request of which nothing was written): a POST in general may not be."""
        u = URL(url)
        key = (u.raw_host or "", u.port or 80)
        request = _request_head(u, headers, len(body)) + body
        conn = self._reuse(key)
        if conn is not None:
            try:
                return await self._send(conn, key, request, idle_s)
            except UpstreamUnavailable:
                if not conn.closed_unanswered:
                    raise
        conn = await self._connect(key, connect_s)
        return await self._send(conn, key, request, idle_s)

    @staticmethod
    async def _connect(key: tuple, connect_s: float) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_s):
                _, conn = await loop.create_connection(lambda: _Conn(loop), *key)
        except TimeoutError:
            raise UpstreamTimeout(f"cannot connect within {connect_s:g}s") from None
        except OSError:
            raise UpstreamUnavailable("cannot connect") from None
        return conn

    async def _send(self, conn: _Conn, key: tuple, request: bytes, idle_s: float) -> Http1Stream:
        conn._reset()
        conn.head_done = conn.loop.create_future()
        conn.transport.write(request)
        try:
            await conn.head_done
        except BaseException:
            conn.close()
            raise
        return Http1Stream(conn, self, key, idle_s)

    def _reuse(self, key: tuple) -> _Conn | None:
        """An idle connection to `key`, never one the upstream has closed: `closed` is set by
        connection_lost, a loop iteration after the FIN (eof_received) has closed the transport."""
        idle = self._idle.get(key)
        now_s = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if not (conn.closed or conn.transport.is_closing()) and now_s - conn.idle_since_s < POOL_IDLE_S:
                return conn
            conn.close()
        return None

    def release(self, key: tuple, conn: _Conn) -> None:
        conn.head_done = None          # bytes arriving now are not asked for: the connection closes
        if conn.paused:                # a pump paused it, then the body ended: an idle one reads
            conn.paused = False
            conn.transport.resume_reading()
        conn.idle_since_s = conn.loop.time()
        self._idle.setdefault(key, []).append(conn)
        if self._sweep is None:
            self._sweep = conn.loop.call_later(POOL_IDLE_S, self._close_stale)

    def _close_stale(self) -> None:
        """Close the idle connections past POOL_IDLE_S (or closed by the upstream); again later while
        any are left."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        now_s = loop.time()
        for key, idle in list(self._idle.items()):
            fresh = []
            for conn in idle:
                if conn.closed or conn.transport.is_closing() or now_s - conn.idle_since_s >= POOL_IDLE_S:
                    conn.close()
                else:
                    fresh.append(conn)
            if fresh:
                self._idle[key] = fresh
            else:
                del self._idle[key]
        if self._idle:
            oldest_s = min(c.idle_since_s for idle in self._idle.values() for c in idle)
            self._sweep = loop.call_at(oldest_s + POOL_IDLE_S, self._close_stale)

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conn in [*self.lingering, *(c for conns in self._idle.values() for c in conns)]:
            conn.close()
        self._idle.clear()


def _request_head(u: URL, headers, body_bytes: int) -> bytes:
    host = u.raw_host or ""
    if ":" in host:
        host = f"[{host}]"                 # an IPv6 literal, as in the URL
    if u.port is not None and u.port != 80:
        host = f"{host}:{u.port}"
    lines = [f"POST {u.raw_path_qs or '/'} HTTP/1.1", "", f"Content-Length: {body_bytes}", "Accept-Encoding: identity"]
    for name, value in headers.items():
        if any(ch in name or ch in value for ch in "\r\n\0") or not name or ":" in name:
            raise UpstreamUnavailable("a configured upstream header is not valid HTTP")
        lower = name.lower()
        if lower == "host":
            host = value                   # the operator's (a proxy that routes by name), as aiohttp sends it
        elif lower not in ("content-length", "accept-encoding", "transfer-encoding", "connection"):
            lines.append(f"{name}: {value}")
    lines[1] = f"Host: {host}"
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")   # as aiohttp encodes them

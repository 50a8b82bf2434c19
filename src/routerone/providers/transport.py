"""The only network code for providers, with connect / first-byte / idle-between-chunks timeouts
and an overall one for the whole reply (`stream_timeout_s`):
plain-http upstreams through a lean keep-alive HTTP/1.1 client (http1.py, the cheaper path for
streams), https ones through one pooled aiohttp client. Failures become `UpstreamError`s the router
can act on.

Redirects are never followed: the request carries the provider's key (`x-api-key`, `api-key`,
`x-goog-api-key` and an operator's own `headers`, which aiohttp would send on to any host) and the
caller's prompt. A 3xx is an upstream failure (502, logged with where it pointed, for the operator
to fix `base_url`), on both clients."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Mapping

import aiohttp

import logging

from ..errors import UpstreamNoResponse, UpstreamTimeout, UpstreamUnavailable
from .base import UpstreamRequest
from .decode import ACCEPT_ENCODING, BodyDecoder, codings_of
from .demo import DemoStream, is_demo_url, open_demo
from .http1 import YIELD_AFTER_BYTES
from .http1_stream import Http1Stream
from .http1_pool import Http1Pool
from .idle import MAX_REPLY_BYTES, NO_DEADLINE_S, IdleWatchdog, read_bounded

__all__ = ["Transport", "Timeouts", "UpstreamResponse", "UpstreamStream", "redirect_target"]
log = logging.getLogger("routerone.providers")


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 10.0
    first_byte_s: float = 120.0
    idle_s: float = 120.0
    stream_s: float = 3600.0      # the whole reply, from the request sent (settings.stream_timeout_s)


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes




class UpstreamStream(IdleWatchdog):
    """An open upstream response body. `read()` it piece by piece; always `close()`.

    The idle timeout covers only the time spent waiting in `read()` (a slow client does not trip
    it). It is one watchdog timer per stream, not one per read: a read just notes when it started
    waiting; the watchdog, when due, fails a read that has waited `idle_s` or re-arms itself.

    Keep-alives do not reset it: a caller that finds a read brought nothing but keep-alives (SSE
    comments such as OpenRouter's `: OPENROUTER PROCESSING`, Anthropic `ping` events) says so with
    `kept_alive()`, and the time waited for such reads adds up. A stream is failed once it has
    waited `idle_s` in all since its last real event, however many keep-alives came in between
    (before, an upstream sending only comments held the stream and its hold open for ever). Nor may
    they come in bulk: more than idle.MAX_KEEPALIVE_BYTES of them between two events is an upstream
    failure (a flood of blank lines costs the decoder ~0.3 s of CPU per MiB and the client sees
    nothing; compressed, 100 MiB of them is a 100 KB reply).

    A compressed body is decoded here (decode.py), not by aiohttp, whose decoder takes a gzip body
    that ends before its compressed stream does as complete.
    """

    __slots__ = ("status", "headers", "_resp", "_content", "_decoder", "_idle_s", "_loop", "_wait_start_s",
                 "_watchdog", "_quiet_s", "_quiet_bytes", "_kept_alive", "_read_since_yield", "_deadline_s", "_limit_s")

    def __init__(self, resp: aiohttp.ClientResponse, idle_s: float, decoder: BodyDecoder | None = None) -> None:
        self._resp = resp
        self._content = resp.content
        self._decoder = decoder
        self._idle_s = idle_s
        self._loop = asyncio.get_running_loop()
        self._wait_start_s: float | None = None      # loop time when the current read began waiting
        self._watchdog: asyncio.TimerHandle | None = None
        self._quiet_s = 0.0          # time waited in reads that brought only keep-alives, since a real event
        self._kept_alive = False     # the last read brought only keep-alives (the caller said so)
        self._quiet_bytes = 0        # bytes of keep-alives since a real event
        self._read_since_yield = 0   # bytes handed over since this stream last let the loop run others
        self._deadline_s, self._limit_s = NO_DEADLINE_S, NO_DEADLINE_S    # limit_until
        self.status = resp.status
        self.headers = resp.headers

    async def read_all(self, max_bytes: int = MAX_REPLY_BYTES) -> bytes:
        """The whole body (a reply that is not streamed, or an error), at most `max_bytes`: an
        upstream that sends more is an upstream failure, read no further (memory stays bounded)."""
        return await read_bounded(self._next, self._resp.content_length, max_bytes, self._idle_s)

    async def read(self) -> bytes:
        """The body bytes that have arrived (waiting for some if none have); b"" at its end.
        Cancelling a waiting read loses nothing: the bytes stay for the next read."""
        if not self._kept_alive:
            self._quiet_s, self._quiet_bytes = 0.0, 0
        self._kept_alive = False
        if self._read_since_yield >= YIELD_AFTER_BYTES:
            # aiohttp's readany returns buffered bytes without suspending: a fast upstream's
            # megabytes would be relayed in one run while every other client waits (as http1.py's
            # `_maybe_yield`, one turn of the loop every YIELD_AFTER_BYTES)
            self._read_since_yield = 0
            await asyncio.sleep(0)
        self._wait_start_s = now_s = self._loop.time()
        if self._watchdog is None:
            self._arm(now_s)
        try:
            data = await (self._content.readany() if self._decoder is None else self._next())
            self._read_since_yield += len(data)
            return data
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamUnavailable(f"The upstream connection failed mid-stream ({type(exc).__name__})") from None
        finally:
            self._quiet_s += self._loop.time() - now_s
            self._wait_start_s = None

    async def _next(self) -> bytes:
        """The next piece of the body, decoded (at most decode.DECODE_SLICE_BYTES of it); b"" at its end."""
        decoder = self._decoder
        if decoder is None:
            return await self._content.readany()
        while True:
            if decoder.pending:
                out = decoder.decode(b"")
            elif data := await self._content.readany():
                out = decoder.decode(data)
            else:
                return decoder.end()     # the compressed stream must have ended (else UpstreamUnavailable)
            if out:
                return out

    def _stalled(self, exc: UpstreamTimeout) -> None:
        self._content.set_exception(exc)

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._resp.release() if self._content.at_eof() else self._resp.close()


def redirect_target(headers: Mapping[str, str], sent: Mapping[str, str]) -> str:
    """Where a 3xx pointed, for a log line: printable, at most 200 characters, and without the
    credentials of the request (`sent`, its headers) should the upstream have echoed them there."""
    where = headers.get("Location", "")[:200]
    for value in sent.values():
        for secret in (value, value.partition(" ")[2]):
            if len(secret) >= 8:
                where = where.replace(secret, "[redacted]")
    return "".join(c if c.isprintable() else "?" for c in where) or "(no Location)"


def _refuse_redirect(provider: str, status: int, headers: Mapping[str, str], req: UpstreamRequest) -> None:
    log.warning("%s: upstream answered HTTP %d, a redirect to %s; not followed (it would take the "
                "provider key and the prompt elsewhere): set the provider's base_url to the final URL",
                provider, status, redirect_target(headers, req.headers))
    raise UpstreamUnavailable(f"{provider}: the upstream answered with a redirect (HTTP {status}), "
                              "which Router One does not follow", provider=provider)


async def _on_reuse(session, ctx: SimpleNamespace, params) -> None:
    ctx.trace_request_ctx.reused = True      # a pooled connection carries this request (Transport._post)


def _reuse_trace() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_connection_reuseconn.append(_on_reuse)
    return trace


class Transport:
    def __init__(self, timeouts: Timeouts | None = None, *, limit: int = 0,
                 per_provider: Mapping[str, Timeouts] | None = None, http1: bool = True) -> None:
        self.timeouts = timeouts or Timeouts()
        self._per_provider = dict(per_provider or {})     # a provider's own timeouts (settings)
        self._session: aiohttp.ClientSession | None = None
        self._http1 = Http1Pool()
        self._http1_scheme = "http://" if http1 else None   # plain-http URLs through http1.py (settings.upstream_http1)
        self._connect_timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect_s,
                                                      connect=self.timeouts.connect_s)
        self._connect_timeouts = {name: aiohttp.ClientTimeout(total=None, sock_connect=t.connect_s, connect=t.connect_s)
                                  for name, t in self._per_provider.items()}
        self._limit = limit

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=60, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(   # bodies decoded by UpstreamStream (decode.py)
                connector=connector, auto_decompress=False, headers={"Accept-Encoding": ACCEPT_ENCODING},
                skip_auto_headers=("User-Agent",), json_serialize=None,
                trace_configs=[_reuse_trace()])  # type: ignore[arg-type]
        return self._session

    async def open(self, req: UpstreamRequest, *, provider: str = "") -> UpstreamStream | Http1Stream | DemoStream:
        """Send the request and wait for the status line and headers (the first byte). A `demo://`
        URL is answered in process by the demo provider: it never reaches the network."""
        if is_demo_url(req.url):
            return open_demo(req.url, req.body)
        t = self._per_provider.get(provider, self.timeouts)
        deadline_s = asyncio.get_running_loop().time() + t.stream_s     # the whole reply, from now
        if self._http1_scheme is not None and req.url.startswith(self._http1_scheme):
            stream = await self._open_http1(req, provider, t)
            if 300 <= stream.status < 400:
                stream.close()
                _refuse_redirect(provider, stream.status, stream.headers, req)
            stream.limit_until(deadline_s, t.stream_s)
            return stream
        try:
            async with asyncio.timeout(t.first_byte_s):
                resp = await self._post(req, provider)
        except asyncio.TimeoutError:
            raise UpstreamNoResponse(f"{provider}: no response within {t.first_byte_s:g}s", provider=provider) from None
        except aiohttp.ClientConnectorError:
            raise UpstreamUnavailable(f"{provider}: cannot connect", provider=provider) from None
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            raise UpstreamUnavailable(f"{provider}: connection failed ({type(exc).__name__})",
                                      provider=provider) from None
        if 300 <= resp.status < 400:
            resp.close()
            _refuse_redirect(provider, resp.status, resp.headers, req)
        try:
            decoder = BodyDecoder.for_coding(codings_of(resp.headers))
        except UpstreamUnavailable as exc:
            resp.close()
            raise UpstreamUnavailable(f"{provider}: {exc.message}", provider=provider) from None
        stream = UpstreamStream(resp, t.idle_s, decoder)
        stream.limit_until(deadline_s, t.stream_s)
        return stream

    async def _post(self, req: UpstreamRequest, provider: str) -> aiohttp.ClientResponse:
        """aiohttp's POST, sent again once when it failed on a reused connection before the response
        head (the server had closed it idle; see Http1Pool.open for why that is safe). aiohttp does
        this itself for idempotent methods only; whether the connection was reused, its tracing says."""
        timeout = self._connect_timeouts.get(provider, self._connect_timeout)
        conn = SimpleNamespace(reused=False)
        try:
            return await self._client().post(req.url, data=req.body, headers=req.headers, allow_redirects=False,
                                             timeout=timeout, trace_request_ctx=conn)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            if not conn.reused or isinstance(exc, aiohttp.ClientConnectorError):
                raise
        return await self._client().post(req.url, data=req.body, headers=req.headers, allow_redirects=False,
                                         timeout=timeout, trace_request_ctx=SimpleNamespace(reused=False))

    async def _open_http1(self, req: UpstreamRequest, provider: str, t: Timeouts) -> Http1Stream:
        try:
            async with asyncio.timeout(t.first_byte_s):
                return await self._http1.open(req.url, req.headers, req.body, connect_s=t.connect_s, idle_s=t.idle_s)
        except TimeoutError:
            raise UpstreamNoResponse(f"{provider}: no response within {t.first_byte_s:g}s", provider=provider) from None
        except UpstreamTimeout as exc:
            raise UpstreamTimeout(f"{provider}: {exc.message}", provider=provider) from None
        except UpstreamUnavailable as exc:
            what = "cannot connect" if exc.message == "cannot connect" else f"connection failed ({exc.message})"
            raise UpstreamUnavailable(f"{provider}: {what}", provider=provider) from None

    async def send(self, req: UpstreamRequest, *, provider: str = "") -> UpstreamResponse:
        stream = await self.open(req, provider=provider)
        try:
            body = await stream.read_all()
        except asyncio.TimeoutError:
            raise UpstreamTimeout(f"{provider}: response body stalled", provider=provider) from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamUnavailable(f"{provider}: connection failed ({type(exc).__name__})",
                                      provider=provider) from None
        finally:
            stream.close()
        return UpstreamResponse(stream.status, stream.headers, body)

    async def close(self) -> None:
        self._http1.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

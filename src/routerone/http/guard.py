"""Guards between the network and the routes: timeouts, the in-flight cap, quiet and redacted logs.

| what                         | how                                                              | setting                        |
|------------------------------|------------------------------------------------------------------|--------------------------------|
| request head (slowloris)     | aiohttp closes a connection whose head is not complete this long after it opened or after its previous response (also the idle keep-alive time) | `client_header_timeout_s` |
| request body                 | a deadline from the head's arrival: a read still waiting then fails with 408 and the connection closes | `client_body_timeout_s` |
| response writes              | a non-streamed body, and each stream write (routes.py; relay.py for /v1/messages and /v1/responses), under a deadline; past it the connection is closed | `client_write_timeout_s` |
| in-flight requests           | 503 `server_busy` + Retry-After beyond the cap (/healthz, /readyz, /metrics exempt) | `max_in_flight_requests` |
| request bodies held at once  | a body of 1 MiB or more that would take the bytes held past the budget: 503 `server_busy` + Retry-After, before it is read (`BodyBudget`) | `max_body_bytes_in_flight` |
| head size                    | request line and each header at most 16 KiB, at most 100 headers (aiohttp parser) | - |

Open connections are bounded by the header timeout (a connection that sends nothing useful is closed
after `client_header_timeout_s`) and, as a hard cap, by the OS file-descriptor limit or a front proxy.

aiohttp's own logging of malformed requests (a traceback at ERROR, with the offending header line,
API key included) becomes one short line without header values, at most one per
`MALFORMED_LOG_INTERVAL_S` (the rest counted). The error page aiohttp answers them with (text/plain,
quoting the offending header line, an `Authorization` value included) becomes the documented JSON
error, which names no header value; so does its answer to an `Expect` other than 100-continue (417,
and the connection closed). Responses say `Server: routerone`, no versions.
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web, web_protocol, web_response, web_urldispatcher
from aiohttp.http import HttpVersion11

from ..errors import InvalidRequest, RouterOneError, ServiceUnavailable
from ..services.auth import CLIENT_ADDRESS
from ..settings import Settings
from .forwarded import LOOPBACK, TrustedProxies, forwarded_address
from .render import error_response

__all__ = ["SERVER_NAME", "handler_args", "guard_middleware", "quiet_aiohttp", "MalformedRequestFilter",
           "client_address", "BodyTimeout", "BodyBudget", "BODY_BUDGET"]

SERVER_NAME = "routerone"
MAX_HEAD_FIELD_BYTES = 16384
MAX_HEADERS = 100
MALFORMED_LOG_INTERVAL_S = 10.0
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_WRITE_DEADLINE_MIN_BYTES = 65536    # smaller bodies fit the socket buffers: they never block
_LOOPBACK_ONLY = TrustedProxies(LOOPBACK)


class BodyTimeout(InvalidRequest):
    status = 408
    code = "request_timeout"


class BodyBudget:
    """The bytes of request bodies held in memory, all requests of this process together.

    Every body counts from the moment it is read (its declared length at once, else chunk by chunk)
    until its request ends, since the parsed request lives that long. A body of `ALWAYS_BYTES` or
    more that would take the total past `limit_bytes` is refused with 503 `server_busy` before the
    rest of it is read; smaller bodies always pass (their number is capped by
    `max_in_flight_requests`), so one client's huge prompts cannot starve everyone's small ones.
    Without it, `max_in_flight_requests` bodies of `max_body_bytes` each could be held at once
    (4,096 x 20 MiB: the process is killed for memory long before)."""

    ALWAYS_BYTES = 1 << 20

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.held_bytes = 0

    def take(self, request: web.Request, n_bytes: int, body_bytes: int) -> None:
        """Count `n_bytes` more of `request`'s body, whose size so far (with them) is `body_bytes`."""
        if (body_bytes >= self.ALWAYS_BYTES and self.held_bytes + n_bytes > self.limit_bytes):
            raise ServiceUnavailable("Router One is holding as many request bodies as it may "
                                     "(max_body_bytes_in_flight); retry shortly", code="server_busy")
        self.held_bytes += n_bytes
        request[_HELD] = request.get(_HELD, 0) + n_bytes

    def release(self, request: web.Request) -> None:
        self.held_bytes -= request.pop(_HELD, 0)


_HELD = web.RequestKey("body_bytes_held", int)
BODY_BUDGET: web.AppKey[BodyBudget] = web.AppKey("routerone_body_budget", BodyBudget)


def handler_args(settings: Settings) -> dict:
    """Connection-level knobs of aiohttp's request handler (passed as `web.Application(handler_args=...)`)."""
    return {"keepalive_timeout": settings.client_header_timeout_s, "max_line_size": MAX_HEAD_FIELD_BYTES,
            "max_field_size": MAX_HEAD_FIELD_BYTES, "max_headers": MAX_HEADERS, "lingering_time": 2.0}


def client_address(request: web.Request, header: str | None, proxies: TrustedProxies | None = None) -> str | None:
    """The client's address: the peer, or behind a proxy in `proxies` (default: loopback) the
    rightmost entry of `header` (the one the proxy itself appended; entries further left are
    whatever the client claimed; a port the proxy added is left out: `forwarded_address`). Any
    other peer's `header` is not read: it is the client's own."""
    if header and (_LOOPBACK_ONLY if proxies is None else proxies).trusts(request.remote):
        value = request.headers.get(header)
        if value:
            return forwarded_address(value) or request.remote
    return request.remote


def guard_middleware(settings: Settings):
    """The in-flight cap, the body deadline, the write deadline and the release of a request's
    share of the body budget (`guard.body_budget`; bodies are counted as they are read), as one
    aiohttp middleware."""
    cap = settings.max_in_flight_requests
    budget = BodyBudget(settings.max_body_bytes_in_flight)
    body_s, write_s = settings.client_body_timeout_s, settings.client_write_timeout_s
    ip_header = settings.client_ip_header
    proxies = TrustedProxies(settings.trusted_proxies)
    in_flight = 0

    @web.middleware
    async def guard(request: web.Request, handler):
        nonlocal in_flight
        CLIENT_ADDRESS.set(client_address(request, ip_header, proxies))
        if request.path in EXEMPT_PATHS:
            return await handler(request)
        if in_flight >= cap:
            resp = error_response(ServiceUnavailable("Router One is at its limit of requests in flight; retry shortly",
                                                     code="server_busy"))
            return resp
        in_flight += 1
        deadline = None
        if request.body_exists and not request.content.is_eof():
            deadline = asyncio.get_running_loop().call_later(body_s, _body_late, request, body_s)
        try:
            resp = await handler(request)
            body = getattr(resp, "body", None)
            if (not resp.prepared and isinstance(body, (bytes, bytearray))
                    and len(body) >= _WRITE_DEADLINE_MIN_BYTES):
                await send_with_deadline(request, resp, write_s)
            return resp
        finally:
            in_flight -= 1
            budget.release(request)
            if deadline is not None:
                deadline.cancel()

    guard.in_flight = lambda: in_flight    # type: ignore[attr-defined]  (for metrics and tests)
    guard.body_budget = budget             # type: ignore[attr-defined]
    return guard


def _body_late(request: web.Request, body_s: float) -> None:
    """The body deadline passed: a read still waiting fails with 408 (the handler answers it, and
    aiohttp closes a connection whose body was not read to its end)."""
    if not request.content.is_eof():
        request.content.set_exception(BodyTimeout(f"The request body did not arrive within {body_s:g}s"))


async def send_with_deadline(request: web.Request, resp: web.StreamResponse, timeout_s: float) -> None:
    """Send a whole response now; a client that does not read it within `timeout_s` loses the
    connection (aiohttp's own final prepare/write_eof then find it done)."""
    try:
        async with asyncio.timeout(timeout_s):
            await resp.prepare(request)
            await resp.write_eof()
    except (TimeoutError, ConnectionError):
        abort(request)


def abort(request: web.Request) -> None:
    """Drop the client's connection now (a stalled writer's buffered bytes are discarded)."""
    request.protocol.force_close()
    transport = request.transport
    if transport is not None:
        transport.abort()


class MalformedRequestFilter(logging.Filter):
    """aiohttp.server's 'Error handling request' records: one short line, no header values, no
    traceback, at most one per interval (the number dropped is said in the next line)."""

    def __init__(self, interval_s: float = MALFORMED_LOG_INTERVAL_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._next_s = 0.0
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None and "Error handling request" not in str(record.msg):
            return True
        now = time.monotonic()
        if now < self._next_s:
            self.suppressed += 1
            return False
        self._next_s = now + self.interval_s
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        status = getattr(exc, "code", None) or getattr(exc, "status", None) or ""
        extra = f" ({self.suppressed} more since the last line)" if self.suppressed else ""
        self.suppressed = 0
        record.msg = "malformed or aborted HTTP request from %s: %s %s%s"
        record.args = (peer, type(exc).__name__ if exc else "error", status, extra)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_AIOHTTP_HANDLE_ERROR = web_protocol.RequestHandler.handle_error


def _json_handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                       message: str | None = None) -> web.StreamResponse:
    """aiohttp's answer to a request it could not parse (or a failure outside every route), as the
    documented JSON error: the status aiohttp chose, a message naming the kind of fault only."""
    resp = _AIOHTTP_HANDLE_ERROR(self, request, status, exc, message)   # logs; refuses after output
    if status < 500:
        err: RouterOneError = InvalidRequest(
            f"Malformed HTTP request ({type(exc).__name__ if exc else 'bad request'}): a request line or "
            f"header that is not valid HTTP, or over {MAX_HEAD_FIELD_BYTES} bytes, or more than "
            f"{MAX_HEADERS} headers", code="invalid_http")
        err.status = resp.status
    else:
        err = RouterOneError()
        err.status = resp.status
    out = web.Response(status=resp.status, body=err.body(), content_type="application/json")
    out.force_close()
    return out


_AIOHTTP_EXPECT_HANDLER = web_urldispatcher._default_expect_handler


async def _json_expect_handler(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue` as aiohttp answers it; any other expectation (HTTP/1.1) is the
    documented JSON error, 417 `expectation_failed`, naming no header value, and the connection is
    closed: the body was not read, and on a kept-alive connection it would be read as the next
    request (aiohttp's own text/plain 417 quoted the header and kept the connection)."""
    if request.version != HttpVersion11 or request.headers.get("Expect", "").lower() == "100-continue":
        return await _AIOHTTP_EXPECT_HANDLER(request)
    err = InvalidRequest("Unsupported Expect header: only 100-continue is supported", param="Expect",
                         code="expectation_failed")
    err.status = 417
    resp = web.Response(status=417, body=err.body(), content_type="application/json")
    resp.force_close()
    return resp


def quiet_aiohttp() -> None:
    """Install the log filter (once), take the versions out of the `Server` header and answer
    malformed requests in JSON. aiohttp sets that header from a module constant, also on the error
    pages it writes itself (malformed requests, before any route runs), so the constant is what must
    change; those pages come from RequestHandler.handle_error, replaced here the same way."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
    web_response.SERVER_SOFTWARE = SERVER_NAME     # type: ignore[attr-defined]
    web_protocol.RequestHandler.handle_error = _json_handle_error    # type: ignore[method-assign]
    # every route (and the 404/405 ones aiohttp makes per request) takes this default when it is made
    web_urldispatcher._default_expect_handler = _json_expect_handler   # type: ignore[assignment]

"""Public endpoints: chat completions (JSON and SSE), the caller's account, health (models: models.py)."""
from __future__ import annotations

import asyncio
import itertools
import logging
import secrets

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ..errors import InvalidRequest, PayloadTooLarge, RouterOneError, echo
from ..observability.metrics import CONTENT_TYPE_LATEST
from ..offload import run_heavy
from ..wire.chat import ChatRequest, json_values_bound, parse_chat_request, raise_if_too_complex
from .guard import BODY_BUDGET, abort
from .relay import authenticate
from .render import error_response, json_response, unreadable_body
from .routing_headers import routing_headers
from .runtime import RUNTIME
from .sink import ChunkedSink

__all__ = ["add_routes", "new_request_id", "client_request_id", "REQUEST_IDS"]

log = logging.getLogger("routerone.http")
_CLIENT_GONE = (ConnectionResetError, ConnectionError)
CHECK_COMPLEXITY_FROM_BYTES = 1 << 20     # smaller bodies parse in a few ms whatever their shape
WRITE_NEVER_WAITS_BYTES = 32 * 1024       # below the transport's high-water mark (64 KiB): a write cannot pause
_ID_PREFIX = f"req_{secrets.token_hex(6)}"   # unique per process; a counter makes ids cheap and unique
_ID_COUNTER = itertools.count(1)
# (internal id, echoed id), set on every request by app.json_errors: the internal id is unique and
# keys billing; the echoed one is what x-request-id says (the caller's own when it sent one).
REQUEST_IDS = web.RequestKey("request_ids", tuple)


class _HeadersWithFirstChunk(web.StreamResponse):
    """Status line and headers go out with the first chunk, in one write (aiohttp buffers them
    until then, as it does for a plain Response), not in a write of their own at prepare()."""
    _send_headers_immediately = False


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


def client_request_id(request: web.Request) -> str | None:
    """The caller's own x-request-id, echoed back; it is never used as a key (it may repeat)."""
    rid = request.headers.get("x-request-id", "")
    return rid if rid and len(rid) <= 128 and rid.isascii() and rid.isprintable() else None


async def read_json_body(request: web.Request, max_json_values: int | None = None) -> bytes:
    """The whole body, bounded by `client_max_size` and counted against the process's body budget
    (guard.BodyBudget: the declared length before any of it is read, then what arrives beyond it).
    With `max_json_values`, the body is counted chunk by chunk as it arrives (see
    wire.chat.json_values_bound) and refused as soon as it is over, before it is all read and long
    before it is parsed."""
    if request.content_type != "application/json":
        raise InvalidRequest(f"Content-Type must be application/json, got '{echo(request.content_type) or 'none'}'",
                             code="invalid_content_type")
    limit_bytes = request.client_max_size
    declared = request.content_length       # refused before any of it is read (it was read up to the limit first)
    if declared is not None and declared > limit_bytes:
        raise PayloadTooLarge(f"The request body is larger than the limit of {limit_bytes} bytes")
    budget = request.app.get(BODY_BUDGET)
    counted = 0
    if budget is not None and declared:
        budget.take(request, declared, declared)
        counted = declared
    body, values = bytearray(), 0
    try:
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > limit_bytes:
                raise PayloadTooLarge(f"The request body is larger than the limit of {limit_bytes} bytes")
            if budget is not None and len(body) > counted:      # chunked, or inflated by Content-Encoding
                budget.take(request, len(body) - counted, len(body))
                counted = len(body)
            if max_json_values is not None:
                values += json_values_bound(chunk)
                if values > max_json_values and len(body) >= CHECK_COMPLEXITY_FROM_BYTES:
                    raise_if_too_complex(values, max_json_values)
        return bytes(body)
    except RequestPayloadError as exc:      # e.g. Content-Encoding: gzip on a body that is not gzip
        raise unreadable_body(exc) from None


async def parse_chat_body(raw: bytes, settings) -> ChatRequest:
    """Validate a chat body (already counted by read_json_body); a big one is parsed off the
    event loop (offload.run_heavy) so that the loop can serve others while it is validated."""
    limits = {"max_messages": settings.max_messages, "max_content_parts": settings.max_content_parts,
              "max_json_values": None}
    return await run_heavy(len(raw), parse_chat_request, raw, **limits)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    internal_id, rid = request[REQUEST_IDS]
    auth = None
    try:
        auth = await rt.auth.authenticate(request.headers.get("Authorization"))
        routing = routing_headers(request.headers)
        raw = await read_json_body(request, rt.settings.max_json_values)
        parsed = await parse_chat_body(raw, rt.settings)
    except RouterOneError as exc:
        rt.chat.refused(exc, request_id=internal_id, echo_id=rid, auth=auth)
        return error_response(exc, rid)
    try:     # complete() counts and logs its own refusals and failures
        reply = await rt.chat.complete(parsed, auth=auth, request_id=internal_id, echo_id=rid,
                                       strategy_header=routing.strategy, wtp_header=routing.wtp,
                                       body_bytes=len(raw))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a documented error body
        return error_response(exc, rid)
    if reply.stream is None:
        return web.Response(body=reply.body, headers=reply.headers, content_type="application/json")
    return await _relay(request, reply, rt.settings.client_write_timeout_s)


async def _relay(request: web.Request, reply, write_timeout_s: float) -> web.StreamResponse:
    """Relay a stream. A write that the client does not take within `write_timeout_s` (it stopped
    reading) ends it: the upstream is closed, what was relayed is settled, the connection dropped."""
    stream = reply.stream
    # with chunks already held, the first write follows at once; else the headers go out now
    response_class = _HeadersWithFirstChunk if stream.has_held_chunks else web.StreamResponse
    resp = response_class(headers={**reply.headers, "Content-Type": "text/event-stream",
                                   "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    transport = request.transport
    try:
        async with asyncio.timeout(write_timeout_s):
            await resp.prepare(request)
        if transport is not None and resp.headers.get("Transfer-Encoding") == "chunked":   # HTTP/1.1, body framed
            stream.push_to(ChunkedSink(transport, write_timeout_s))
        async for data in stream:
            if stream.ended:            # the last bytes, sent with the end of the chunked body
                async with asyncio.timeout(write_timeout_s):
                    await resp.write_eof(data)
            elif transport is not None and transport.get_write_buffer_size() + len(data) < WRITE_NEVER_WAITS_BYTES:
                await resp.write(data)  # the socket buffer takes it: no deadline (and no timer) needed
            else:
                async with asyncio.timeout(write_timeout_s):
                    await resp.write(data)
    except _CLIENT_GONE:
        stream.abandon()
        return resp
    except TimeoutError:
        log.warning("stream %s: the client stopped reading for %gs; closing it", request[REQUEST_IDS][0],
                    write_timeout_s)
        abort(request)
        await stream.close()
        return resp
    except BaseException:
        await stream.close()
        raise
    await stream.close()
    return resp


async def account(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        auth = await rt.auth.authenticate(request.headers.get("Authorization"))
        acc = await rt.accounts.account(auth.account.id)
        k = await rt.accounts.store.get_key(auth.key.id) or auth.key   # current spend, not the cached one
    except RouterOneError as exc:
        return error_response(exc)
    return json_response({"data": {
        "account_id": acc.id, "key_id": k.id, "label": k.name, "key_prefix": k.prefix,
        "balance_micros": acc.balance_micros, "balance": acc.balance_micros / 1e6,
        "available_micros": acc.available_micros, "spent_micros": acc.spent_micros,
        "key_spent_micros": k.spent_micros, "spend_cap_micros": k.spend_cap_micros,
        "expires_at": k.expires_at, "allowed_models": list(k.allowed_models),
        "limits": {"rpm": k.limits.rpm, "tpm": k.limits.tpm, "concurrency": k.limits.concurrency},
        "is_admin": k.role == "admin"}})


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.Response(body=rt.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/account", account)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)

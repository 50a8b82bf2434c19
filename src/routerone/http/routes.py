"""Public endpoints: chat completions (JSON and SSE), models, the caller's account, health."""
from __future__ import annotations

import itertools
import secrets

from aiohttp import web

from ..catalog import AUTO_MODEL
from ..errors import InvalidRequest, PayloadTooLarge, RouterOneError
from ..observability.metrics import CONTENT_TYPE_LATEST
from .render import error_response, json_response
from .runtime import RUNTIME

__all__ = ["add_routes", "new_request_id", "client_request_id", "REQUEST_IDS"]

_CLIENT_GONE = (ConnectionResetError, ConnectionError)
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


async def read_json_body(request: web.Request) -> bytes:
    if request.content_type != "application/json":
        raise InvalidRequest(f"Content-Type must be application/json, got '{request.content_type or 'none'}'",
                             code="invalid_content_type")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"The request body is larger than the limit of {request.client_max_size} bytes") from None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    internal_id, rid = request[REQUEST_IDS]
    try:
        auth = await rt.auth.authenticate(request.headers.get("Authorization"))
        raw = await read_json_body(request)
    except RouterOneError as exc:
        rt.chat.refused(exc, request_id=internal_id, echo_id=rid)
        return error_response(exc, rid)
    try:     # complete() counts and logs its own refusals and failures
        reply = await rt.chat.complete(raw, auth=auth, request_id=internal_id, echo_id=rid,
                                       strategy_header=request.headers.get("x-routerone-strategy"),
                                       wtp_header=request.headers.get("x-routerone-willingness-to-pay"))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a documented error body
        return error_response(exc, rid)
    if reply.stream is None:
        return web.Response(body=reply.body, headers=reply.headers, content_type="application/json")
    stream = reply.stream
    # with chunks already held, the first write follows at once; else the headers go out now
    response_class = _HeadersWithFirstChunk if stream.has_held_chunks else web.StreamResponse
    resp = response_class(headers={**reply.headers, "Content-Type": "text/event-stream",
                                   "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    try:
        await resp.prepare(request)
        async for data in stream:
            if stream.ended:            # the last bytes, sent with the end of the chunked body
                await resp.write_eof(data)
            else:
                await resp.write(data)
    except _CLIENT_GONE:
        stream.abandon()
        return resp
    except BaseException:
        await stream.close()
        raise
    await stream.close()
    return resp


async def list_models(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        await rt.auth.authenticate(request.headers.get("Authorization"))
    except RouterOneError as exc:
        return error_response(exc)
    data = [{"id": AUTO_MODEL, "object": "model", "created": 0, "owned_by": "routerone"}]
    data += [{"id": m.id, "object": "model", "created": 0, "owned_by": m.provider} for m in rt.catalog.available()]
    return json_response({"object": "list", "data": data})


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
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/account", account)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)

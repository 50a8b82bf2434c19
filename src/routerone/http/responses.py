"""`POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}` (OpenAI's Responses API; errors in
the seed's shape, which is OpenAI's)."""
from __future__ import annotations

from aiohttp import web

from ..errors import NotFound, RouterOneError
from ..services.responses import ResponsesService
from .guard import BODY_BUDGET
from .relay import authenticate, relay_stream
from .render import error_response
from .routes import REQUEST_IDS, read_json_body
from .routing_headers import routing_headers
from .runtime import RUNTIME

__all__ = ["add_responses_routes", "RESPONSES"]

RESPONSES: web.AppKey[ResponsesService] = web.AppKey("routerone_responses", ResponsesService)


async def create(request: web.Request) -> web.StreamResponse:
    rt, svc = request.app[RUNTIME], request.app[RESPONSES]
    internal_id, rid = request[REQUEST_IDS]
    try:
        auth = await authenticate(request)
        routing = routing_headers(request.headers)
        raw = await read_json_body(request, rt.settings.max_json_values)
    except RouterOneError as exc:
        rt.chat.refused(exc, request_id=internal_id, echo_id=rid, route="responses")
        return error_response(exc, rid)
    try:
        budget = request.app.get(BODY_BUDGET)
        out = await svc.create(raw, auth=auth, request_id=internal_id, echo_id=rid,
                               strategy_header=routing.strategy, wtp_header=routing.wtp,
                               hold_bytes=None if budget is None else lambda n: budget.take(request, n, n))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a documented error body
        return error_response(exc, rid)
    if out.encoder is None:
        return web.Response(body=out.body, headers=out.reply.headers, content_type="application/json")
    return await relay_stream(request, out.reply, out.encoder.feed, before_last=out.finish_stream)


async def _by_id(request: web.Request, method: str) -> web.Response:
    svc = request.app[RESPONSES]
    _, rid = request[REQUEST_IDS]
    try:
        auth = await authenticate(request)
        if method == "get":
            stream = request.query.get("stream", "").lower() in ("true", "1")
            budget = request.app.get(BODY_BUDGET)
            body = await svc.get(request.match_info["id"], auth, stream=stream,
                                 hold_bytes=None if budget is None else lambda n: budget.take(request, n, n))
        else:
            body = await svc.delete(request.match_info["id"], auth)
    except Exception as exc:  # noqa: BLE001
        return error_response(exc, rid)
    return web.Response(body=body, content_type="application/json", headers={"x-request-id": rid})


async def get(request: web.Request) -> web.Response:
    return await _by_id(request, "get")


async def delete(request: web.Request) -> web.Response:
    return await _by_id(request, "delete")


async def not_supported(request: web.Request) -> web.Response:
    """`POST /v1/responses/compact`, `/input_tokens` (the SDK's compact and input_tokens.count): a
    404 saying so, not the 405 that `GET /v1/responses/{id}` would otherwise imply."""
    _, rid = request[REQUEST_IDS]
    try:
        await authenticate(request)
        raise NotFound(f"POST {request.path} is not supported by Router One", code="not_supported")
    except Exception as exc:  # noqa: BLE001
        return error_response(exc, rid)


def add_responses_routes(app: web.Application) -> None:
    rt = app[RUNTIME]
    app[RESPONSES] = ResponsesService(rt.chat, rt.accounts.store, max_chain_bytes=rt.settings.max_body_bytes)
    app.router.add_post("/v1/responses", create)
    app.router.add_get("/v1/responses/{id}", get)
    app.router.add_delete("/v1/responses/{id}", delete)
    app.router.add_post("/v1/responses/{id}", not_supported)

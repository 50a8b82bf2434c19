"""OpenAI's Responses API: `POST /v1/responses`, `POST /v1/responses/input_tokens`, `GET` and
`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`, `POST /v1/responses/{id}/cancel`
(errors in the seed's shape, which is OpenAI's). Each parses, calls one ResponsesService method,
renders."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ..errors import NotFound, RouterOneError, echo
from ..services.auth import AuthContext
from ..services.responses import ResponsesService
from ..wire.responses_items import parse_items_query
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
        out = await svc.create(raw, auth=auth, request_id=internal_id, echo_id=rid,
                               strategy_header=routing.strategy, wtp_header=routing.wtp, hold_bytes=_hold(request))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a documented error body
        return error_response(exc, rid)
    if out.encoder is None:
        return web.Response(body=out.body, headers=out.reply.headers, content_type="application/json")
    return await relay_stream(request, out.reply, out.encoder.feed, before_last=out.finish_stream)


async def _answer(request: web.Request, call: Callable[[ResponsesService, AuthContext], Awaitable[bytes]]
                  ) -> web.Response:
    """Authenticate, run one service call, answer its JSON (or the error it raised)."""
    svc = request.app[RESPONSES]
    _, rid = request[REQUEST_IDS]
    try:
        body = await call(svc, await authenticate(request))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a documented error body
        return error_response(exc, rid)
    return web.Response(body=body, content_type="application/json", headers={"x-request-id": rid})


def _hold(request: web.Request):
    """A stored response or chain read for this request counts as body bytes held (503 server_busy
    past max_body_bytes_in_flight), as a body does."""
    budget = request.app.get(BODY_BUDGET)
    return None if budget is None else lambda n: budget.take(request, n, n)


async def get(request: web.Request) -> web.Response:
    stream = request.query.get("stream", "").lower() in ("true", "1")
    return await _answer(request, lambda svc, auth: svc.get(request.match_info["id"], auth, stream=stream,
                                                            hold_bytes=_hold(request)))


async def delete(request: web.Request) -> web.Response:
    return await _answer(request, lambda svc, auth: svc.delete(request.match_info["id"], auth))


async def input_items(request: web.Request) -> web.Response:
    """`GET /v1/responses/{id}/input_items?after=&before=&limit=&order=&include=` (the SDK sends
    `include[]=`)."""
    async def call(svc: ResponsesService, auth: AuthContext) -> bytes:
        q = request.query
        query = parse_items_query(q, [*q.getall("include", ()), *q.getall("include[]", ())])
        return await svc.input_items(request.match_info["id"], auth, query, hold_bytes=_hold(request))
    return await _answer(request, call)


async def cancel(request: web.Request) -> web.Response:
    return await _answer(request, lambda svc, auth: svc.cancel(request.match_info["id"], auth))


async def input_tokens(request: web.Request) -> web.Response:
    async def call(svc: ResponsesService, auth: AuthContext) -> bytes:
        raw = await read_json_body(request, request.app[RUNTIME].settings.max_json_values)
        return await svc.count_input_tokens(raw, auth, hold_bytes=_hold(request))
    return await _answer(request, call)


async def not_supported(request: web.Request) -> web.Response:
    """`POST /v1/responses/compact` (the SDK's compact) and any other POST to `/v1/responses/{id}`:
    a 404 saying so, not the 405 that `GET /v1/responses/{id}` would otherwise imply."""
    _, rid = request[REQUEST_IDS]
    try:
        await authenticate(request)
        raise NotFound(f"POST {echo(request.path)} is not supported by Router One", code="not_supported")
    except Exception as exc:  # noqa: BLE001
        return error_response(exc, rid)


def add_responses_routes(app: web.Application) -> None:
    rt = app[RUNTIME]
    app[RESPONSES] = ResponsesService(rt.chat, rt.accounts.store, rt.catalog,
                                      max_chain_bytes=rt.settings.max_body_bytes,
                                      retention_days=rt.settings.responses_retention_days,
                                      store_responses=rt.settings.responses_store)
    app.router.add_post("/v1/responses", create)
    app.router.add_post("/v1/responses/input_tokens", input_tokens)      # before /v1/responses/{id}
    app.router.add_get("/v1/responses/{id}", get)
    app.router.add_delete("/v1/responses/{id}", delete)
    app.router.add_post("/v1/responses/{id}", not_supported)
    app.router.add_get("/v1/responses/{id}/input_items", input_items)
    app.router.add_post("/v1/responses/{id}/cancel", cancel)

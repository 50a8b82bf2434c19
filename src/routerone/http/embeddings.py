"""`POST /v1/embeddings` (OpenAI's shape; errors in the seed's shape)."""
from __future__ import annotations

from aiohttp import web

from ..embedding_catalog import load_embedding_models
from ..errors import RouterOneError
from ..services.embeddings import EmbeddingsService
from .relay import authenticate
from .render import error_response
from .routes import REQUEST_IDS, read_json_body
from .runtime import RUNTIME

__all__ = ["add_embeddings_routes", "EMBEDDINGS"]

EMBEDDINGS: web.AppKey[EmbeddingsService] = web.AppKey("routerone_embeddings", EmbeddingsService)


async def embeddings(request: web.Request) -> web.Response:
    rt, svc = request.app[RUNTIME], request.app[EMBEDDINGS]
    internal_id, rid = request[REQUEST_IDS]
    try:
        auth = await authenticate(request)
        raw = await read_json_body(request)
    except RouterOneError as exc:
        rt.chat.refused(exc, request_id=internal_id, echo_id=rid, route="embeddings")
        return error_response(exc, rid)
    try:
        reply = await svc.embed(raw, auth=auth, request_id=internal_id, echo_id=rid)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a documented error body
        return error_response(exc, rid)
    return web.Response(body=reply.body, headers=reply.headers, content_type="application/json")


def add_embeddings_routes(app: web.Application) -> None:
    rt = app[RUNTIME]
    app[EMBEDDINGS] = EmbeddingsService(rt.chat, load_embedding_models(rt.catalog))
    app.router.add_post("/v1/embeddings", embeddings)

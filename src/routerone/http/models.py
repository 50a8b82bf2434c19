"""`GET /v1/models` and `GET /v1/models/{id}`, shared by OpenAI and Anthropic clients: the key in
Bearer or (Anthropic's) `x-api-key`; a client that sends `anthropic-version` gets Anthropic's shapes
(a cursor page of `ModelInfo`, wire/anthropic_models.py) and errors, any other the seed's (OpenAI's
list, no pagination)."""
from __future__ import annotations

from aiohttp import web

from ..catalog import AUTO_MODEL
from ..errors import ModelNotFound, RouterOneError, echo
from ..wire.anthropic_models import model_info, models_page
from .relay import authenticate
from .render import error_response_for, json_response
from .routes import REQUEST_IDS
from .runtime import RUNTIME

__all__ = ["add_model_routes"]


def _anthropic_client(request: web.Request) -> bool:
    return "anthropic-version" in request.headers


def _entry(request: web.Request, model_id: str, provider: str, model=None) -> dict:
    """One model in the caller's protocol's shape (`model`: its catalog ModelInfo; None for auto)."""
    if _anthropic_client(request):
        return model_info(model_id, model.context_window if model else None, model.output_cap if model else None)
    return {"id": model_id, "object": "model", "created": 0, "owned_by": provider}


def _usable_models(request: web.Request, rt, allowlist) -> list[dict]:
    """What this key may call: the configured models on its allowlist (all when it has none),
    and `auto` (which routes among exactly those) when there is at least one."""
    data = [_entry(request, m.id, m.provider, m) for m in rt.catalog.available() if rt.catalog.allows(allowlist, m)]
    return [_entry(request, AUTO_MODEL, "routerone"), *data] if data else []


async def list_models(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        auth = await authenticate(request, x_api_key=True)
        data = _usable_models(request, rt, auth.key.allowed_models)
        if _anthropic_client(request):
            return json_response(models_page(data, request.query))
    except RouterOneError as exc:
        return error_response_for(request, exc, request[REQUEST_IDS][1])
    return json_response({"object": "list", "data": data})


async def retrieve_model(request: web.Request) -> web.Response:
    """`GET /v1/models/{id}` (the SDK's models.retrieve): 404 model_not_found for an id that is
    unknown, not configured, or not allowed for this key (the same answer: no probing)."""
    rt = request.app[RUNTIME]
    name = request.match_info["model"]
    try:
        auth = await authenticate(request, x_api_key=True)
        allow = auth.key.allowed_models
        not_found = ModelNotFound(f"The model '{echo(name)}' does not exist or is not available to this key",
                                  param="model")
        if name == AUTO_MODEL:
            if not _usable_models(request, rt, allow):
                raise not_found
            return json_response(_entry(request, AUTO_MODEL, "routerone"))
        try:
            m = rt.catalog.resolve(name)
        except ModelNotFound:
            raise not_found from None
        if not rt.catalog.allows(allow, m):
            raise not_found
    except RouterOneError as exc:
        return error_response_for(request, exc, request[REQUEST_IDS][1])
    return json_response(_entry(request, name, m.provider, m))


def add_model_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", retrieve_model)

"""`POST /v1/messages` and `/v1/messages/count_tokens`: Anthropic's Messages API over the chat
pipeline (wire/messages.py translates; an Anthropic upstream gets the body as sent). Errors are
Anthropic-shaped; `x-api-key` or Bearer carry the Router One key."""
from __future__ import annotations

import asyncio
import functools
import time

import orjson
from aiohttp import web

from ..catalog import AUTO_MODEL
from ..errors import InvalidRequest, PermissionDenied, RouterOneError
from ..offload import run_heavy
from ..services.overhead import add_overhead
from ..tokens import count_message_tokens, load_tokenizer
from ..wire.chat import raise_if_too_deep, validate_body
from ..wire.messages import completion_to_message, messages_to_chat, parse_messages_request
from ..wire.messages_stream import MessagesStreamEncoder
from .relay import authenticate, relay_stream
from .render import anthropic_error
from .routes import REQUEST_IDS, read_json_body
from .routing_headers import routing_headers
from .runtime import RUNTIME

__all__ = ["add_messages_routes"]

IMAGE_TOKENS = 1000   # as the chat pipeline estimates an image
PING = b'event: ping\ndata: {"type": "ping"}\n\n'
PING_INTERVAL_S = 15.0   # during upstream silences after message_start (Claude Code gives up after 300 s)


async def messages(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    internal_id, rid = request[REQUEST_IDS]
    try:
        auth = await authenticate(request, x_api_key=True)
        routing = routing_headers(request.headers)
        raw = await read_json_body(request, rt.settings.max_json_values)
    except RouterOneError as exc:
        rt.chat.refused(exc, request_id=internal_id, echo_id=rid, route="messages")
        return anthropic_error(exc, rid)
    parse = functools.partial(parse_messages_request, headers=request.headers)
    try:
        reply = await rt.chat.complete(raw, auth=auth, request_id=internal_id, echo_id=rid, parse=parse,
                                       protocol="messages",
                                       strategy_header=routing.strategy, wtp_header=routing.wtp)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a documented error body
        return anthropic_error(exc, rid)
    if reply.stream is None:
        t0 = time.perf_counter()
        body = orjson.dumps(completion_to_message(orjson.loads(reply.body)))
        add_overhead(reply.headers, t0)
        return web.Response(body=body, headers=reply.headers, content_type="application/json")
    encoder = MessagesStreamEncoder()
    return await relay_stream(request, reply, encoder.feed, ping=lambda: PING if encoder.started else b"",
                              ping_interval_s=PING_INTERVAL_S)


async def count_tokens(request: web.Request) -> web.Response:
    """Router One's own count (o200k tokens of the prompt's text, tools included, plus per-message
    framing and a flat estimate per image), with no upstream call: an estimate, as Claude Code
    treats it, not the routed model's exact tokenizer."""
    rt = request.app[RUNTIME]
    _, rid = request[REQUEST_IDS]
    try:
        auth = await authenticate(request, x_api_key=True)
        raw = await read_json_body(request, rt.settings.max_json_values)
        req = await run_heavy(len(raw), _count_request, raw)      # a large body: off the event loop
        if req.model != AUTO_MODEL:
            model = rt.catalog.resolve(req.model)
            if not rt.catalog.allows(auth.key.allowed_models, model):
                raise PermissionDenied(f"This API key may not use the model '{model.id}'", param="model",
                                       code="model_not_allowed")
        text = req.prompt_text()
        if text and load_tokenizer.cache_info().currsize == 0:
            await asyncio.to_thread(load_tokenizer)      # ~1 s, once: never on the event loop
        n = await run_heavy(len(raw), _count_tokens, req, text)
    except orjson.JSONDecodeError as exc:
        return anthropic_error(InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json"), rid)
    except Exception as exc:  # noqa: BLE001
        return anthropic_error(exc, rid)
    return web.Response(body=orjson.dumps({"input_tokens": n}), content_type="application/json",
                        headers={"x-request-id": rid})


def _count_request(raw: bytes):
    """A count_tokens body as a validated chat request (its `max_tokens` is not needed here)."""
    body = orjson.loads(raw)
    raise_if_too_deep(raw, body)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    return validate_body(messages_to_chat({"max_tokens": 1, **body}))


def _count_tokens(req, text: str) -> int:
    return count_message_tokens(text, len(req.messages)) + (IMAGE_TOKENS if req.has_images else 0)


async def _name_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: Anthropic's API names every response's id in `request-id` (its SDKs read
    it: `message._request_id`, `with_raw_response`), errors and successes, streamed or not; Router
    One's is its x-request-id. For /v1/messages* and any client that sends `anthropic-version`."""
    if "request-id" in response.headers:
        return
    if request.path.startswith("/v1/messages") or "anthropic-version" in request.headers:
        rid = response.headers.get("x-request-id") or request.get(REQUEST_IDS, ("", ""))[1]
        if rid:
            response.headers["request-id"] = rid


def add_messages_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.on_response_prepare.append(_name_request_id)

"""Playground: a prompt sent to `auto` or a chosen model, answered through the same chat pipeline
as any API request (limits, reservation, settle, usage row), so it is billed and logged like one.

How it calls the pipeline: in-process, with `ChatService.complete`, as the account's "Console
playground" key. That key is an ordinary key row whose secret was never kept (made with a random
secret that is discarded), so it cannot be used from outside and no secret ever reaches the page;
its spend shows on the Keys page and its requests in Logs. Chosen over a loopback HTTP call with a
short-lived key, which would need a secret held in server memory and a second socket per prompt.
"""
from __future__ import annotations

import time

import orjson
from aiohttp import web

from ..catalog import AUTO_MODEL
from ..errors import InvalidRequest, RouterOneError
from ..http.routes import new_request_id
from ..services.auth import AuthContext
from ..store.base import ApiKey
from . import forms
from .pages_user import PLAYGROUND_KEY_NAME
from .users import Viewer
from .web import BASE, Console, page, render

__all__ = ["add_playground_routes"]

MAX_PROMPT_CHARS = 20_000
MAX_TOKENS = 1024


async def _playground_key(c: Console, account_id: int) -> ApiKey:
    if (key := await c.store.key_named(account_id, PLAYGROUND_KEY_NAME)) is not None:
        return key
    issued = await c.accounts.create_key(account_id, name=PLAYGROUND_KEY_NAME)   # secret dropped here
    return issued.record


async def _auth(c: Console, viewer: Viewer) -> AuthContext:
    key = await _playground_key(c, viewer.account_id)
    return AuthContext(key, await c.accounts.account(viewer.account_id))


def _body(form, stream: bool, known: set[str]) -> bytes:
    prompt = forms.text(form, "prompt", max_chars=MAX_PROMPT_CHARS)
    if not prompt:
        raise InvalidRequest("Write a prompt first", param="prompt")
    model = forms.text(form, "model") or AUTO_MODEL
    if model not in known:
        raise InvalidRequest(f"Unknown model {model!r}", param="model")
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": MAX_TOKENS,
            "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def _models(c: Console) -> list[str]:
    return [AUTO_MODEL] + [m.id for m in c.catalog.available()]


@page()
async def playground_get(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    return render(request, "playground.html", viewer=viewer, models=_models(c), result=None, error="",
                  form={"model": AUTO_MODEL, "prompt": ""})


@page()
async def playground_post(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    """Without JavaScript: the whole answer at once, rendered on the page."""
    form = await forms.read_form(request)
    started = time.perf_counter()
    try:
        raw = _body(form, False, set(_models(c)))
        reply = await c.chat.complete(raw, auth=await _auth(c, viewer), request_id=new_request_id())
    except RouterOneError as exc:
        return render(request, "playground.html", status=exc.status, viewer=viewer, models=_models(c),
                      result=None, error=exc.message, form=form)
    doc = orjson.loads(reply.body or b"{}")
    usage = doc.get("usage") or {}
    result = {"answer": (doc.get("choices") or [{}])[0].get("message", {}).get("content") or "",
              "model": reply.headers.get("x-routerone-model", doc.get("model", "")),
              "reason": reply.headers.get("x-routerone-reason", ""),
              "fallbacks": reply.headers.get("x-routerone-fallbacks", ""),
              "cost": usage.get("cost"), "tokens": usage.get("total_tokens"),
              "latency_ms": (time.perf_counter() - started) * 1000}
    return render(request, "playground.html", viewer=viewer, models=_models(c), result=result, error="", form=form)


@page()
async def playground_stream(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    """For console.js: the chat pipeline's own SSE bytes, with its x-routerone-* headers."""
    form = await forms.read_form(request)
    try:
        raw = _body(form, True, set(_models(c)))
        reply = await c.chat.complete(raw, auth=await _auth(c, viewer), request_id=new_request_id())
    except RouterOneError as exc:
        return web.Response(body=exc.body(), status=exc.status, content_type="application/json")
    if reply.stream is None:       # never for stream=True; kept total
        return web.Response(body=reply.body, headers=reply.headers, content_type="application/json")
    stream = reply.stream
    resp = web.StreamResponse(headers={**{k: v for k, v in reply.headers.items() if k.startswith("x-")},
                                       "Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    try:
        await resp.prepare(request)
        async for data in stream:
            await resp.write(data)
        await resp.write_eof()
    except (ConnectionResetError, ConnectionError):
        stream.abandon()
        return resp
    except BaseException:
        await stream.close()
        raise
    await stream.close()
    return resp


def add_playground_routes(app: web.Application) -> None:
    app.router.add_get(f"{BASE}/playground", playground_get)
    app.router.add_post(f"{BASE}/playground", playground_post)
    app.router.add_post(f"{BASE}/playground/stream", playground_stream)

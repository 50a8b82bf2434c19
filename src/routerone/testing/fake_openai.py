"""A fake OpenAI-compatible upstream (real socket), for the tests only: Router One never mounts it
(the offline demo is `routerone.providers.demo`, in process).

Behaviour is scriptable three ways:
- options given to `make_app(...)` (latency, chunk pacing, default reply length);
- directives in the last user message: `[[error:429]]`, `[[error:500]]`, `[[sleep:250]]` (ms before
  the first byte), `[[cut:3]]` (drop the connection after 3 content chunks), `[[stream_error:2]]`
  (an error event after 2 chunks), `[[tools:2]]` (call 2 tools in parallel), `[[words:20]]`,
  `[[quota:1]]` (with `[[error:429]]`: code `insufficient_quota`), `[[overcount:500]]` (usage
  reports 500 completion tokens more than were sent: a misbehaving upstream, to test what billing
  does when usage exceeds the reservation), `[[hold:5000]]` (wait before the first byte until
  `POST /_control/release`, at most 5000 ms), `[[nousage:1]]` (a non-streamed reply without
  `usage`, as some upstreams send);
- `POST /_control/release`: every request held by `[[hold:ms]]` goes on now; the reply says how
  many were held (`{"released": n}`), so a test can prove those requests were still in flight;
- `POST /_control/faults` with `{"faults": [{"status": 429, "retry_after": 1}, ...]}`: the next
  requests fail in that order (status, or `"cut": n`), then behaviour returns to normal.

Token accounting is exact and deterministic: one content chunk per completion token, and when the
caller gives `max_tokens`/`max_completion_tokens` the reply is exactly that long (finish_reason
`length`). Prompt tokens are counted with o200k.
"""
from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass

import orjson
from aiohttp import web

from ..tokens import count_text_tokens
from . import fake_embeddings

__all__ = ["FakeOptions", "make_app"]

_DIRECTIVE = re.compile(r"\[\[(\w+):(\d+)\]\]")
_WORDS = ("Hello", "!", " This", " is", " a", " reply", " from", " the", " fake", " upstream", ".", " Ask",
          " me", " anything", " else", ".")


@dataclass
class FakeOptions:
    latency_ms: float = 0.0          # before the response starts
    chunk_interval_ms: float = 0.0   # between stream chunks (paced streams)
    reply_tokens: int = 12           # completion length when the caller sets no max_tokens
    api_key: str | None = None       # when set, requests must carry it as a bearer token
    natural_length: bool = False     # the reply is reply_tokens long, max_tokens only cuts it (as a model)


def _last_user_text(messages: list) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return ""


def _prompt_tokens(messages: list) -> int:
    text = []
    for m in messages:
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, str):
            text.append(c)
        elif isinstance(c, list):
            text.extend(p.get("text", "") for p in c if isinstance(p, dict))
    return max(1, count_text_tokens("\n".join(text)))


def _tool_args(tool: dict) -> str:
    params = (tool.get("function") or {}).get("parameters") or {}
    props = params.get("properties") or {}
    args = {}
    for name, schema in props.items():
        t = schema.get("type") if isinstance(schema, dict) else None
        args[name] = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(t, "Paris")
    return orjson.dumps(args).decode()


class _Fake:
    def __init__(self, opts: FakeOptions) -> None:
        self.opts = opts
        self.faults: list[dict] = []
        self.requests: list[dict] = []   # the bodies received, for assertions in tests
        self.keep_requests = True
        self.held: set[asyncio.Future] = set()   # requests waiting in [[hold:ms]] for /_control/release

    async def hold(self, max_ms: int) -> None:
        """Wait until released (POST /_control/release) or max_ms have passed."""
        gate = asyncio.get_running_loop().create_future()
        self.held.add(gate)
        try:
            await asyncio.wait_for(gate, max_ms / 1000)
        except asyncio.TimeoutError:
            pass
        finally:
            self.held.discard(gate)

    def release(self) -> int:
        released = 0
        for gate in self.held:
            if not gate.done():
                gate.set_result(None)
                released += 1
        self.held.clear()
        return released

    def plan(self, body: dict) -> dict:
        text = _last_user_text(body.get("messages") or [])
        d = {k: int(v) for k, v in _DIRECTIVE.findall(text)}
        if self.faults:
            d.update(self.faults.pop(0))
        return d

    def tokens(self, body: dict, d: dict) -> tuple[list[str], str]:
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        n = int(limit) if limit else d.get("words", self.opts.reply_tokens)
        if self.opts.natural_length and limit:
            natural = d.get("words", self.opts.reply_tokens)
            n, limit = min(n, natural), (limit if int(limit) < natural else None)
        words = [_WORDS[i % len(_WORDS)] for i in range(n)]
        rf = body.get("response_format") or {}
        if rf.get("type") in ("json_object", "json_schema") and not limit:
            words = ['{"answer"', ': "fake"}']
        return words, ("length" if limit else "stop")

    def tool_calls(self, body: dict, d: dict) -> list[dict]:
        tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
        msgs = body.get("messages") or []
        if not tools or body.get("tool_choice") == "none" or (msgs and msgs[-1].get("role") == "tool"):
            return []
        want = d.get("tools", 1) if body.get("parallel_tool_calls", True) else 1
        tc = body.get("tool_choice")
        if isinstance(tc, dict) and tc.get("function"):
            tools = [t for t in tools if t["function"]["name"] == tc["function"]["name"]] or tools
        return [{"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                 "function": {"name": tools[i % len(tools)]["function"]["name"],
                              "arguments": _tool_args(tools[i % len(tools)])}} for i in range(want)]

    def authorized(self, request: web.Request) -> bool:
        return not self.opts.api_key or request.headers.get("Authorization") == f"Bearer {self.opts.api_key}"


def _error(status: int, retry_after: int | str | None = None, quota: bool = False) -> web.Response:
    kinds = {429: ("rate_limit_exceeded", "requests"), 401: ("invalid_api_key", "invalid_request_error"),
             400: ("invalid_value", "invalid_request_error")}
    code, typ = kinds.get(status, ("server_error", "server_error"))
    if quota:     # OpenAI's "You exceeded your current quota" (a 429 that waiting does not cure)
        code = typ = "insufficient_quota"
    body = {"error": {"message": f"fake upstream error {status}", "type": typ, "param": None, "code": code}}
    headers = {"Retry-After": str(retry_after)} if retry_after else None   # may be any text: "nan", "inf"
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


async def _chat(request: web.Request) -> web.StreamResponse:
    fake: _Fake = request.app["fake"]
    if not fake.authorized(request):
        return _error(401)
    body = orjson.loads(await request.read())
    if fake.keep_requests:
        fake.requests.append(body)
    d = fake.plan(body)
    delay_ms = d.get("sleep", 0) + fake.opts.latency_ms
    if delay_ms:
        await asyncio.sleep(delay_ms / 1000)
    if "hold" in d:
        await fake.hold(d["hold"])
    if "error" in d or "status" in d:
        return _error(d.get("error") or d["status"], d.get("retry_after"), bool(d.get("quota")))
    if "cut" in d and not body.get("stream"):
        request.transport.close()   # connection dropped before any response
        return web.Response()
    calls = fake.tool_calls(body, d)
    words, finish = fake.tokens(body, d)
    if calls:
        words, finish = [], "tool_calls"
    usage = {"prompt_tokens": _prompt_tokens(body.get("messages") or []),
             "completion_tokens": (len(words) if not calls else 5 * len(calls)) + d.get("overcount", 0)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    cid, created, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), body.get("model", "fake")
    if not body.get("stream"):
        msg = {"role": "assistant", "content": None if calls else "".join(words), "refusal": None}
        if calls:
            msg["tool_calls"] = calls
        reply = {"id": cid, "object": "chat.completion", "created": created, "model": model,
                 "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
                 "usage": usage}
        if d.get("nousage"):
            del reply["usage"]
        return web.json_response(reply, dumps=lambda o: orjson.dumps(o).decode())
    return await _stream(request, fake, body, d, words, calls, finish, usage, (cid, created, model))


async def _stream(request, fake, body, d, words, calls, finish, usage, ids) -> web.StreamResponse:
    cid, created, model = ids
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    pace = fake.opts.chunk_interval_ms / 1000

    def chunk(delta: dict, finish_reason=None) -> bytes:
        c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
        return b"data: " + orjson.dumps(c) + b"\n\n"

    await resp.write(chunk({"role": "assistant", "content": ""}))
    for i, w in enumerate(words):
        if "cut" in d and i == d["cut"]:
            await asyncio.sleep(0.05)   # let what was sent arrive, then drop the connection, no terminator
            request.transport.close()
            return resp
        if "stream_error" in d and i == d["stream_error"]:
            err = {"error": {"message": "fake upstream failed mid-stream", "type": "server_error",
                             "param": None, "code": "server_error"}}
            await resp.write(b"data: " + orjson.dumps(err) + b"\n\n")
            return resp
        if pace:
            await asyncio.sleep(pace)
        await resp.write(chunk({"content": w}))
    for k, call in enumerate(calls):
        await resp.write(chunk({"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                                "function": {"name": call["function"]["name"], "arguments": ""}}]}))
        args = call["function"]["arguments"]
        half = len(args) // 2
        for part in (args[:half], args[half:]):
            await resp.write(chunk({"tool_calls": [{"index": k, "function": {"arguments": part}}]}))
    await resp.write(chunk({}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        u = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
             "choices": [], "usage": usage}
        await resp.write(b"data: " + orjson.dumps(u) + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def _faults(request: web.Request) -> web.Response:
    fake: _Fake = request.app["fake"]
    fake.faults.extend((await request.json()).get("faults", []))
    return web.json_response({"queued": len(fake.faults)})


async def _release(request: web.Request) -> web.Response:
    return web.json_response({"released": request.app["fake"].release()})


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [
        {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]})


def add_routes(app: web.Application, prefix: str, opts: FakeOptions) -> None:
    """Mount the fake under `prefix` (e.g. "/v1")."""
    app["fake"] = _Fake(opts)
    app.router.add_post(prefix + "/chat/completions", _chat)
    app.router.add_post(prefix + "/embeddings", fake_embeddings.openai_embeddings)
    app.router.add_get(prefix + "/models", _models)
    control = "/_control" if prefix == "/v1" else prefix + "/_control"
    app.router.add_post(control + "/faults", _faults)
    app.router.add_post(control + "/release", _release)


def make_app(**options) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    add_routes(app, "/v1", FakeOptions(**options))
    return app

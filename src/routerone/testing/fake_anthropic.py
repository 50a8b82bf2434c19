"""A fake Anthropic Messages upstream (`POST /v1/messages`, real socket) for end-to-end tests.

Quick use (sync tests, a background thread on 127.0.0.1, ephemeral port):

    with serve_fake_anthropic(api_key="k") as fake:
        client = anthropic.Anthropic(base_url=fake.url, api_key="k")   # fake.url has no /v1
        ...; fake.requests[-1]          # the bodies received, for assertions

or `make_app(**options)` for an aiohttp test server. Options (`FakeAnthropicOptions`):
  api_key            when set, `x-api-key` (or `Authorization: Bearer`) must equal it; a missing key
                     is always 401 `authentication_error`. A missing `anthropic-version` is a 400,
                     as on the real API.
  reply_text         the text answer (default: `reply_tokens` canned words)
  reply_tokens       length of the canned answer in tokens (one `text_delta` per token)
  tool_calls         parallel `tool_use` blocks when the request has tools (1 if parallel is disabled)
  tool_preamble      text block sent before the tool calls when tool_choice is auto ("" for none)
  cache_read_input_tokens / cache_creation_input_tokens   reported in usage
  latency_ms, chunk_interval_ms   delay before the response / between stream events
  ping               send a `ping` event after `message_start`

Extended thinking (`thinking: {type: enabled|adaptive}`), as the real API: the answer opens with a
`thinking` block (text + signature; streamed as thinking_delta events then one signature_delta),
whose tokens are in `output_tokens` and in `output_tokens_details.thinking_tokens`. Its rules are
400s: budget_tokens >= 1024 and < max_tokens, temperature only 1, top_p >= 0.95, no top_k, no
forced tool_choice, and in a tool loop the last assistant turn must start with its thinking block
(signatures are not checked: tests compare what came back with what was given).

Behaviour: with tools (and tool_choice not none) the answer is tool calls, unless the last user turn
carries `tool_result` blocks, which gets a text answer. A forced tool (`tool_choice: tool`) gets exactly
one call. `stop_sequences` cut the text (`stop_reason: stop_sequence`); an answer longer than
`max_tokens` is cut (`stop_reason: max_tokens`). Unknown top-level fields are a 400, like Anthropic.

Faults, as in `fake_openai`: directives in the last user text — `[[error:429]]` (any status: 429 has
`retry-after`, 529 is `overloaded_error`, 500 `api_error`), `[[sleep:250]]`, `[[stream_error:2]]`
(an `event: error` overloaded_error after 2 text deltas), `[[tools:3]]`, `[[words:20]]` — or queued
with `POST /_control/faults {"faults": [{"status": 529}, {"stream_error": 1}]}` / `fake.queue_faults`.
"""
from __future__ import annotations

import asyncio
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import orjson
from aiohttp import web

from ..tokens import count_text_tokens
from .threaded import ThreadedServer

__all__ = ["FakeAnthropicOptions", "FakeAnthropicServer", "make_app", "serve_fake_anthropic", "ERROR_TYPES"]

_DIRECTIVE = re.compile(r"\[\[(\w+):(\d+)\]\]")
_WORDS = ("Hello", "!", " This", " is", " a", " reply", " from", " the", " fake", " Claude", ".", " Ask",
          " me", " anything", " else", ".")
_PARAMS = {"model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p", "top_k",
           "stream", "tools", "tool_choice", "thinking", "output_config", "metadata", "service_tier",
           "cache_control", "container", "inference_geo"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error"}


@dataclass
class FakeAnthropicOptions:
    api_key: str | None = None
    reply_text: str | None = None
    reply_tokens: int = 12
    tool_calls: int = 1
    tool_preamble: str = "Let me check."
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    latency_ms: float = 0.0
    chunk_interval_ms: float = 0.0
    ping: bool = True


@dataclass
class _Answer:
    blocks: list[dict]            # final content blocks
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int
    pieces: dict[int, list[str]]   # block index -> the deltas to stream
    thinking_tokens: int = 0


class _Fake:
    def __init__(self, opts: FakeAnthropicOptions) -> None:
        self.opts = opts
        self.faults: list[dict] = []
        self.requests: list[dict] = []

    def queue_faults(self, *faults: dict) -> None:
        self.faults.extend(faults)


FAKE = web.AppKey("fake_anthropic", _Fake)


def _error(status: int, message: str | None = None, retry_after_s: int | None = None) -> web.Response:
    err_type = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    request_id = f"req_fake{uuid.uuid4().hex[:20]}"
    body = {"type": "error", "error": {"type": err_type, "message": message or err_type.replace("_", " ")},
            "request_id": request_id}
    headers = {"request-id": request_id}
    if status == 429:
        headers["retry-after"] = str(retry_after_s or 1)
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def _texts(content) -> list[str]:
    if isinstance(content, str):
        return [content]
    out = []
    for b in content or ():
        if isinstance(b, dict):
            if b.get("type") == "text":
                out.append(str(b.get("text", "")))
            elif b.get("type") == "tool_result":
                out.extend(_texts(b.get("content")))
    return out


def _validate(body: object) -> str | None:
    if not isinstance(body, dict):
        return "body: must be an object"
    for key in body:
        if key not in _PARAMS:
            return f"{key}: Extra inputs are not permitted"
    for key in ("model", "messages", "max_tokens"):
        if key not in body:
            return f"{key}: Field required"
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 0:
        return "max_tokens: Input should be a valid integer >= 0"
    if not isinstance(body["messages"], list) or not body["messages"]:
        return "messages: at least one message is required"
    temperature = body.get("temperature", 0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1:
        return "temperature: Input should be a number between 0 and 1"
    return None


def _thinking_on(body: dict) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _thinking_problem(body: dict) -> str | None:
    """What the real API refuses with thinking on (its error texts, shortened)."""
    thinking = body["thinking"]
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
    if body.get("temperature", 1) != 1:
        return "`temperature` may only be set to 1 when thinking is enabled"
    if body.get("top_p", 1) < 0.95:
        return "`top_p` must be greater than or equal to 0.95 when thinking is enabled"
    if "top_k" in body:
        return "`top_k` is not supported when thinking is enabled"
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        return "Thinking may not be enabled when tool_choice forces tool use."
    msgs = body["messages"]
    last, before = msgs[-1], msgs[-2] if len(msgs) > 1 else {}
    if isinstance(last.get("content"), list) and any(isinstance(b, dict) and b.get("type") == "tool_result"
                                                     for b in last["content"]):
        content = before.get("content")
        first = content[0] if isinstance(content, list) and content else {"type": "text"}
        if first.get("type") not in ("thinking", "redacted_thinking"):
            return (f"messages.{len(msgs) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
                    f"found `{first.get('type')}`. When `thinking` is enabled, a final `assistant` message must "
                    "start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` "
                    "blocks). We recommend you include thinking blocks from previous turns. To avoid this "
                    "requirement, disable `thinking`.")
    return None


_THOUGHT = ("Let", " me", " think", " this", " through", " step", " by", " step", ".")


def _with_thinking(answer: _Answer) -> _Answer:
    block = {"type": "thinking", "thinking": "".join(_THOUGHT), "signature": f"Eq{uuid.uuid4().hex}"}
    pieces = {0: list(_THOUGHT), **{i + 1: p for i, p in answer.pieces.items()}}
    return _Answer([block, *answer.blocks], answer.stop_reason, answer.stop_sequence,
                   answer.output_tokens + len(_THOUGHT), pieces, thinking_tokens=len(_THOUGHT))


def _placeholder(schema: dict) -> object:
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {k: _placeholder(v) for k, v in (schema.get("properties") or {}).items() if isinstance(v, dict)}
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "null": None}.get(kind, "Paris")


def _tokens(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+$", text)


def _text_answer(fake: _Fake, body: dict, d: dict) -> _Answer:
    o = fake.opts
    n = d.get("words", o.reply_tokens)
    pieces = _tokens(o.reply_text) if o.reply_text is not None else [_WORDS[i % len(_WORDS)] for i in range(n)]
    stop_reason, matched = "end_turn", None
    full = "".join(pieces)
    hits = [(full.find(s), s) for s in body.get("stop_sequences") or () if s and s in full]
    if hits:
        cut, matched = min(hits)
        pieces, stop_reason = _tokens(full[:cut]), "stop_sequence"
    if len(pieces) > body["max_tokens"]:
        pieces, stop_reason, matched = pieces[:body["max_tokens"]], "max_tokens", None
    block = {"type": "text", "text": "".join(pieces), "citations": None}
    return _Answer([block], stop_reason, matched, max(1, len(pieces)), {0: pieces})


def _tool_answer(fake: _Fake, body: dict, d: dict) -> _Answer | None:
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and "input_schema" in t]
    choice = body.get("tool_choice") or {"type": "auto"}
    last = body["messages"][-1]
    answered = isinstance(last.get("content"), list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"])
    if not tools or choice.get("type") == "none" or answered:
        return None
    n = 1 if choice.get("disable_parallel_tool_use") else d.get("tools", fake.opts.tool_calls)
    if choice.get("type") == "tool":
        tools, n = [t for t in tools if t["name"] == choice.get("name")] or tools, 1
    blocks, pieces = [], {}
    if choice.get("type") == "auto" and fake.opts.tool_preamble:
        blocks.append({"type": "text", "text": fake.opts.tool_preamble, "citations": None})
        pieces[0] = _tokens(fake.opts.tool_preamble)
    for i in range(max(1, n)):
        tool = tools[i % len(tools)]
        args = orjson.dumps(_placeholder(tool["input_schema"])).decode()
        pieces[len(blocks)] = [args[: len(args) // 2], args[len(args) // 2:]]
        blocks.append({"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": tool["name"],
                       "input": orjson.loads(args), "caller": {"type": "direct"}})
    out = sum(len(p) for p in pieces.values()) * 4
    return _Answer(blocks, "tool_use", None, out, pieces)


def _usage(fake: _Fake, body: dict, output_tokens: int, thinking_tokens: int = 0) -> dict:
    texts = _texts(body.get("system")) + [t for m in body["messages"] if isinstance(m, dict)
                                           for t in _texts(m.get("content"))]
    o = fake.opts
    write = o.cache_creation_input_tokens
    return {"input_tokens": max(1, count_text_tokens("\n".join(texts))),
            "cache_creation_input_tokens": write, "cache_read_input_tokens": o.cache_read_input_tokens,
            "cache_creation": {"ephemeral_5m_input_tokens": write, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"thinking_tokens": thinking_tokens} if thinking_tokens else None, "server_tool_use": None,
            "service_tier": "standard", "inference_geo": None}


def _message(body: dict, answer: _Answer, usage: dict) -> dict:
    return {"id": f"msg_fake{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant",
            "model": body["model"], "content": answer.blocks, "stop_reason": answer.stop_reason,
            "stop_sequence": answer.stop_sequence, "stop_details": None, "usage": usage, "container": None}


async def _messages(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE]
    key = request.headers.get("x-api-key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not key or (fake.opts.api_key and key != fake.opts.api_key):
        return _error(401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return _error(400, "anthropic-version: header is required")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(400, "request body is not valid JSON")
    problem = _validate(body) or (_thinking_problem(body) if _thinking_on(body) else None)
    if problem:
        return _error(400, problem)
    fake.requests.append(body)
    last = body["messages"][-1]
    d = {k: int(v) for k, v in _DIRECTIVE.findall(" ".join(_texts(last.get("content"))))}
    if fake.faults:
        d.update(fake.faults.pop(0))
    delay_ms = d.get("sleep", 0) + fake.opts.latency_ms
    if delay_ms:
        await asyncio.sleep(delay_ms / 1000)
    if "error" in d or "status" in d:
        return _error(d.get("error") or d["status"], d.get("message"), d.get("retry_after"))
    answer = _tool_answer(fake, body, d) or _text_answer(fake, body, d)
    if _thinking_on(body):
        answer = _with_thinking(answer)
    msg = _message(body, answer, _usage(fake, body, answer.output_tokens, answer.thinking_tokens))
    if not body.get("stream"):
        return web.Response(body=orjson.dumps(msg), content_type="application/json",
                            headers={"request-id": f"req_fake{uuid.uuid4().hex[:20]}"})
    return await _stream(request, fake, msg, answer, d)


# how each block type starts (its streamed fields empty) and which delta carries its pieces
_EMPTY = {"text": {"text": ""}, "tool_use": {"input": {}}, "thinking": {"thinking": "", "signature": ""}}
_DELTA = {"text": ("text_delta", "text"), "tool_use": ("input_json_delta", "partial_json"),
          "thinking": ("thinking_delta", "thinking")}


async def _stream(request: web.Request, fake: _Fake, msg: dict, answer: _Answer, d: dict) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "request-id": f"req_fake{uuid.uuid4().hex[:20]}"})
    await resp.prepare(request)
    pace, deltas_sent = fake.opts.chunk_interval_ms / 1000, 0

    async def send(data: dict) -> None:
        if pace:
            await asyncio.sleep(pace)
        await resp.write(b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")

    usage = msg["usage"]
    await send({"type": "message_start", "message": {**msg, "content": [], "stop_reason": None,
                                                      "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}})
    if fake.opts.ping:
        await send({"type": "ping"})
    for index, block in enumerate(answer.blocks):
        kind = block["type"]
        start = {**block, **_EMPTY[kind]}
        await send({"type": "content_block_start", "index": index, "content_block": start})
        for piece in answer.pieces.get(index, ()):
            if "stream_error" in d and deltas_sent == d["stream_error"]:
                await send({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                            "request_id": f"req_fake{uuid.uuid4().hex[:20]}"})
                return resp
            delta_type, field = _DELTA[kind]
            await send({"type": "content_block_delta", "index": index, "delta": {"type": delta_type, field: piece}})
            deltas_sent += 1
        if kind == "thinking":
            await send({"type": "content_block_delta", "index": index,
                        "delta": {"type": "signature_delta", "signature": block["signature"]}})
        await send({"type": "content_block_stop", "index": index})
    await send({"type": "message_delta",
                "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": msg["stop_sequence"],
                          "stop_details": None, "container": None},
                "usage": {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens",
                                                "cache_read_input_tokens", "output_tokens",
                                                "output_tokens_details", "server_tool_use")}})
    await send({"type": "message_stop"})
    return resp


async def _faults(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    fake.queue_faults(*(await request.json()).get("faults", []))
    return web.json_response({"queued": len(fake.faults)})


def make_app(**options) -> web.Application:
    """`options` are `FakeAnthropicOptions` fields (an unknown name is a TypeError)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[FAKE] = _Fake(FakeAnthropicOptions(**options))
    app.router.add_post("/v1/messages", _messages)
    app.router.add_post("/_control/faults", _faults)
    return app


@dataclass
class FakeAnthropicServer:
    """A running fake: `url` is the base URL without `/v1` (as Anthropic's SDK and vendors.toml use)."""
    url: str
    fake: _Fake

    @property
    def requests(self) -> list[dict]:
        return self.fake.requests

    def queue_faults(self, *faults: dict) -> None:
        self.fake.queue_faults(*faults)


@contextmanager
def serve_fake_anthropic(**options) -> Iterator[FakeAnthropicServer]:
    """Run `make_app(**options)` on 127.0.0.1 (ephemeral port) in a background thread."""
    with ThreadedServer(lambda: make_app(**options)) as srv:
        assert srv.app is not None
        yield FakeAnthropicServer(srv.url, srv.app[FAKE])

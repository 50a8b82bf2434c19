"""The offline demo provider, in process: canned OpenAI-protocol replies with no network listener.

The demo vendor's `base_url` is `demo://local/v1`; `Transport` hands every request to such a URL to
`open_demo` instead of the network, so the whole pipeline (adapter, limits, billing, streaming)
runs as for a real provider while nothing outside the process can reach the demo. Replies are
short and bounded whatever the caller asks (`DEMO_MAX_REPLY_TOKENS`), labelled as canned, and the
demo has no fault-injection surface.

`demo_state(settings)` decides whether the demo is on: `demo = "on"` always, `"off"` never,
`"auto"` (default) only while no provider at all is configured (a keyless self-hosted provider
such as `[providers.vllm] base_url = ...` counts).
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Iterator, Sequence

import orjson

from ..settings import Settings
from ..tokens import count_text_tokens

__all__ = ["DEMO_BASE_URL", "DEMO_SCHEME", "DEMO_NOTICE", "DEMO_MAX_REPLY_TOKENS", "DemoStream",
           "demo_state", "is_demo_url", "open_demo"]

DEMO_SCHEME = "demo://"
DEMO_BASE_URL = "demo://local/v1"
DEMO_NOTICE = "[demo provider: canned reply, not a real model]"
DEMO_MAX_REPLY_TOKENS = 64          # whatever max_tokens asks for, a demo reply is at most this long
_COUNT_EXACT_CHARS = 20_000         # longer prompts are estimated (chars / 4), not tokenised on the loop
_WORDS = (" Hello", "!", " This", " is", " Router", " One", "'s", " offline", " demo", ".", " Configure",
          " a", " provider", " for", " real", " answers", ".")
_HEADERS = {"Content-Type": "application/json"}
_SSE_HEADERS = {"Content-Type": "text/event-stream"}


def demo_state(settings: Settings, usable: Sequence[str] | None = None) -> tuple[bool, str]:
    """(on, why): whether the demo provider serves requests, and a sentence saying why. `usable`
    names the real providers that can serve (credentials from the config or the environment, or
    keyless self-hosted ones); without it, the provider tables of the config."""
    if usable is None:
        usable = [name for name, p in settings.providers.items() if name != "demo" and getattr(p, "enabled", True)]
    configured = sorted(n for n in usable if n != "demo")
    if settings.demo == "on":
        return True, "demo provider on (demo = \"on\")"
    if settings.demo == "off":
        return False, "demo provider off (demo = \"off\")"
    if configured:
        return False, f"demo provider off: provider(s) configured ({', '.join(configured)})"
    return True, ("demo provider on: no provider is configured (models demo-small, demo-large give canned "
                  "replies, not real answers; configure any provider or set demo = \"off\" to turn it off)")


def is_demo_url(url: str) -> bool:
    return url.startswith(DEMO_SCHEME)


def _prompt_tokens(messages: Any) -> int:
    texts: list[str] = []
    for m in messages if isinstance(messages, list) else ():
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, str):
            texts.append(c)
        elif isinstance(c, list):
            texts.extend(p["text"] for p in c if isinstance(p, dict) and isinstance(p.get("text"), str))
    text = "\n".join(texts)
    if len(text) > _COUNT_EXACT_CHARS:
        return len(text) // 4 + 1
    return max(1, count_text_tokens(text))


def _tool_call(body: dict) -> dict | None:
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]
    msgs = body.get("messages") or []
    if not tools or body.get("tool_choice") == "none" or (msgs and isinstance(msgs[-1], dict)
                                                           and msgs[-1].get("role") == "tool"):
        return None
    fn = tools[0].get("function") or {}
    props = (fn.get("parameters") or {}).get("properties") or {}
    args = {k: {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(
        v.get("type") if isinstance(v, dict) else None, "demo") for k, v in props.items()}
    return {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
            "function": {"name": str(fn.get("name", "tool")), "arguments": orjson.dumps(args).decode()}}


def _reply(body: dict) -> tuple[list[str], str, dict | None]:
    """(content pieces, finish_reason, tool call): at most DEMO_MAX_REPLY_TOKENS pieces."""
    call = _tool_call(body)
    if call is not None:
        return [], "tool_calls", call
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    limit = limit if isinstance(limit, int) and limit > 0 else None
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema") and not limit:
        return ['{"answer"', ': "demo"}'], "stop", None
    n = min(limit or len(_WORDS) + 1, DEMO_MAX_REPLY_TOKENS)
    words = [" " + DEMO_NOTICE] + [_WORDS[i % len(_WORDS)] for i in range(n - 1)]
    return words[:n], ("length" if limit is not None and n == limit else "stop"), None


class DemoStream:
    """The same interface as `transport.UpstreamStream`, over bytes made in memory."""

    __slots__ = ("status", "headers", "_parts")

    def __init__(self, status: int, headers: dict[str, str], parts: Iterator[bytes]) -> None:
        self.status = status
        self.headers = headers
        self._parts = parts

    async def read(self) -> bytes:
        return next(self._parts, b"")

    async def read_all(self) -> bytes:
        return b"".join(self._parts)

    def kept_alive(self, nbytes: int) -> None:
        pass

    def close(self) -> None:
        self._parts = iter(())


def _error(status: int, message: str) -> DemoStream:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return DemoStream(status, dict(_HEADERS), iter((orjson.dumps(body),)))


def open_demo(url: str, body: bytes) -> DemoStream:
    """Answer one OpenAI-protocol chat request (the bytes Router One's adapter built)."""
    if not url.split("?", 1)[0].endswith("/chat/completions"):
        return _error(404, "the demo provider only serves chat completions")
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _error(400, "the demo provider received a body that is not JSON")
    if not isinstance(req, dict):
        return _error(400, "the demo provider received a body that is not a JSON object")
    words, finish, call = _reply(req)
    prompt = _prompt_tokens(req.get("messages"))
    completion = 5 if call else len(words)
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    cid, created, model = f"chatcmpl-demo{uuid.uuid4().hex[:20]}", int(time.time()), str(req.get("model", "demo"))
    if not req.get("stream"):
        msg: dict[str, Any] = {"role": "assistant", "content": None if call else "".join(words), "refusal": None}
        if call:
            msg["tool_calls"] = [call]
        return DemoStream(200, dict(_HEADERS), iter((orjson.dumps({
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
            "usage": usage}),)))
    return DemoStream(200, dict(_SSE_HEADERS), _sse(req, words, finish, call, usage, (cid, created, model)))


def _sse(req: dict, words: list[str], finish: str, call: dict | None, usage: dict,
         ids: tuple[str, int, str]) -> Iterator[bytes]:
    cid, created, model = ids

    def chunk(delta: dict, finish_reason: str | None = None, **extra: Any) -> bytes:
        c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}], **extra}
        return b"data: " + orjson.dumps(c) + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for w in words:
        yield chunk({"content": w})
    if call is not None:
        yield chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"], "arguments": ""}}]})
        yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": call["function"]["arguments"]}}]})
    end = chunk({}, finish)
    if isinstance(req.get("stream_options"), dict) and req["stream_options"].get("include_usage"):
        u = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
             "choices": [], "usage": usage}
        end += b"data: " + orjson.dumps(u) + b"\n\n"
    yield end + b"data: [DONE]\n\n"

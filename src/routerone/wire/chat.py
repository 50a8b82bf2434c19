"""Parse and validate an OpenAI chat-completions request body.

The seed's rules are checked exactly (model required; messages >= 1 valid items; temperature 0..2;
top_p 0..1; max_tokens >= 1; stream_options only with stream: true). Every other OpenAI field is
type-checked when present and passed through untouched, as are unknown extra fields. Each failure
raises `InvalidRequest` with `param` naming the field. The number of messages and of content parts
is capped (checked before any per-message work, so a huge body costs little to refuse).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import InvalidRequest, UnsupportedParameter

__all__ = ["ChatRequest", "parse_chat_request", "validate_body", "check_complexity", "json_values_bound",
           "raise_if_too_complex", "raise_if_too_deep", "could_be_too_deep", "MAX_MESSAGES",
           "MAX_CONTENT_PARTS", "MAX_JSON_VALUES"]

MAX_MESSAGES = 10_000          # defaults of the settings max_messages / max_content_parts / max_json_values
MAX_CONTENT_PARTS = 10_000
MAX_JSON_VALUES = 250_000
_ESTIMATE_FROM_BYTES = 1 << 20   # smaller bodies parse in a few ms whatever their shape

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_USER_PARTS = {"text", "image_url", "input_audio", "file"}
_NUMBER = (int, float)


@dataclass(slots=True)
class ChatRequest:
    """A validated request. `body` is the OpenAI wire JSON as received (passed through upstream)."""
    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None           # max_completion_tokens or max_tokens, whichever is given
    fallback_models: list[str] = field(default_factory=list)   # OpenRouter-style `models: [...]`
    strategy: str | None = None             # per-request routing strategy (`route` body field)
    # the client protocol this request arrived in (chat | messages | responses), and, for a protocol
    # an upstream speaks natively (Anthropic messages), the caller's original body for pass-through
    protocol: str = "chat"
    native: dict[str, Any] | None = None
    # (param, what) the caller asked for that only an upstream speaking its protocol natively can
    # honour (an Anthropic server tool on /v1/messages): a translating adapter refuses the request
    native_only: list[tuple[str, str]] = field(default_factory=list)
    willingness_to_pay: float | None = None  # `route.willingness_to_pay`, 0..1
    # routing's per-request results computed ahead, off the event loop for a large body
    # (Planner.prepare): the conversation key, the strategy's view of the prompt
    memo: dict[Any, Any] = field(default_factory=dict)

    def refuse_native_only(self, upstream: str) -> None:
        """Raise `UnsupportedParameter` for the first thing a translation to `upstream` would lose."""
        if self.native_only:
            param, what = self.native_only[0]
            raise UnsupportedParameter(f"'{param}' ({what}) is not supported by {upstream} models: only an "
                                       "upstream speaking this API natively can honour it", param=param)

    @property
    def has_tools(self) -> bool:
        return bool(self.body.get("tools"))

    @property
    def has_images(self) -> bool:
        for m in self.messages:
            c = m.get("content")
            if isinstance(c, list) and any(isinstance(p, dict) and p.get("type") == "image_url" for p in c):
                return True
        return False

    @property
    def wants_json_schema(self) -> bool:
        rf = self.body.get("response_format")
        return isinstance(rf, dict) and rf.get("type") == "json_schema"

    def prompt_text(self) -> str:
        """All text the caller sent, concatenated (for token estimates and routing)."""
        parts: list[str] = []
        for m in self.messages:
            c = m.get("content")
            if isinstance(c, str):
                parts.append(c)
            elif isinstance(c, list):
                parts.extend(p.get("text", "") for p in c if isinstance(p, dict) and p.get("type") == "text")
            for tc in m.get("tool_calls") or ():
                fn = tc.get("function") if isinstance(tc, dict) else None
                if isinstance(fn, dict):
                    parts.append(str(fn.get("name", "")) + str(fn.get("arguments", "")))
        if self.body.get("tools"):
            parts.append(orjson.dumps(self.body["tools"]).decode())
        return "\n".join(parts)

    def last_user_text(self) -> str:
        for m in reversed(self.messages):
            if m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, str):
                    return c
                if isinstance(c, list):
                    return "\n".join(p.get("text", "") for p in c if isinstance(p, dict) and p.get("type") == "text")
        return ""


def _fail(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _type_name(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _number(body: dict, key: str, lo: float | None, hi: float | None) -> None:
    v = body.get(key)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, _NUMBER):
        raise _fail(key, f"'{key}' must be a number, got {_type_name(v)}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise _fail(key, f"'{key}' must be between {lo:g} and {hi:g}, got {v}" if hi is not None
                    else f"'{key}' must be >= {lo:g}, got {v}")


def _integer(body: dict, key: str, lo: int | None = None, hi: int | None = None) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise _fail(key, f"'{key}' must be an integer, got {_type_name(v)}")
    if lo is not None and v < lo:
        raise _fail(key, f"'{key}' must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise _fail(key, f"'{key}' must be <= {hi}, got {v}")
    return v


def _typed(body: dict, key: str, types: tuple, what: str) -> None:
    v = body.get(key)
    if v is not None and (not isinstance(v, types) or (bool not in types and isinstance(v, bool))):
        raise _fail(key, f"'{key}' must be {what}, got {_type_name(v)}")


def _text_parts(parts: list, param: str, allow_refusal: bool = False) -> None:
    for j, p in enumerate(parts):
        pp = f"{param}[{j}]"
        if not isinstance(p, dict):
            raise _fail(pp, f"'{pp}' must be an object, got {_type_name(p)}")
        t = p.get("type")
        if t == "text" and isinstance(p.get("text"), str):
            continue
        if allow_refusal and t == "refusal" and isinstance(p.get("refusal"), str):
            continue
        raise _fail(pp, f"'{pp}' must be a text part {{'type': 'text', 'text': ...}}")


def _user_parts(parts: list, param: str) -> None:
    for j, p in enumerate(parts):
        pp = f"{param}[{j}]"
        if not isinstance(p, dict):
            raise _fail(pp, f"'{pp}' must be an object, got {_type_name(p)}")
        t = p.get("type")
        if not isinstance(t, str) or t not in _USER_PARTS:
            raise _fail(f"{pp}.type", f"'{pp}.type' must be one of {', '.join(sorted(_USER_PARTS))}, got {t!r}")
        if t == "text" and not isinstance(p.get("text"), str):
            raise _fail(f"{pp}.text", f"'{pp}.text' must be a string")
        if t == "image_url":
            iu = p.get("image_url")
            if not isinstance(iu, dict) or not isinstance(iu.get("url"), str) or not iu["url"]:
                raise _fail(f"{pp}.image_url.url", f"'{pp}.image_url.url' must be a non-empty string")


def _content(m: dict, i: int, role: str) -> None:
    param = f"messages[{i}].content"
    c = m.get("content")
    if role == "assistant" and c is None:
        if not (m.get("tool_calls") or m.get("function_call")):
            raise _fail(param, f"'{param}' is required unless the assistant message has 'tool_calls'")
        return
    if role == "function" and c is None:
        return
    if "content" not in m:
        raise _fail(param, f"'{param}' is required for a '{role}' message")
    if isinstance(c, str):
        return
    if not isinstance(c, list):
        raise _fail(param, f"'{param}' must be a string or an array of content parts, got {_type_name(c)}")
    if not c and role != "assistant":
        raise _fail(param, f"'{param}' must not be an empty array")
    if role == "user":
        _user_parts(c, param)
    else:
        _text_parts(c, param, allow_refusal=role == "assistant")


def _tool_calls(m: dict, i: int) -> None:
    tcs = m.get("tool_calls")
    if tcs is None:
        return
    param = f"messages[{i}].tool_calls"
    if not isinstance(tcs, list):
        raise _fail(param, f"'{param}' must be an array")
    for j, tc in enumerate(tcs):
        pp = f"{param}[{j}]"
        if not isinstance(tc, dict) or not isinstance(tc.get("id"), str):
            raise _fail(pp, f"'{pp}' must be an object with a string 'id'")
        fn = tc.get("function")
        if tc.get("type", "function") == "function" and (
                not isinstance(fn, dict) or not isinstance(fn.get("name"), str)
                or not isinstance(fn.get("arguments"), str)):
            raise _fail(f"{pp}.function", f"'{pp}.function' must have string 'name' and 'arguments'")


def _messages(body: dict, max_messages: int, max_parts: int) -> list[dict]:
    if "messages" not in body or body["messages"] is None:
        raise _fail("messages", "'messages' is required")
    msgs = body["messages"]
    if not isinstance(msgs, list):
        raise _fail("messages", f"'messages' must be an array, got {_type_name(msgs)}")
    if not msgs:
        raise _fail("messages", "'messages' must contain at least 1 message")
    if len(msgs) > max_messages:
        raise InvalidRequest(f"'messages' has {len(msgs)} messages; the limit is {max_messages}",
                             param="messages", code="too_many_messages")
    parts = sum(len(m["content"]) for m in msgs if isinstance(m, dict) and isinstance(m.get("content"), list))
    if parts > max_parts:
        raise InvalidRequest(f"the messages have {parts} content parts together; the limit is {max_parts}",
                             param="messages", code="too_many_content_parts")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise _fail(f"messages[{i}]", f"'messages[{i}]' must be an object, got {_type_name(m)}")
        role = m.get("role")
        if role not in _ROLES:
            raise _fail(f"messages[{i}].role",
                        f"'messages[{i}].role' must be one of {', '.join(_ROLES)}, got {role!r}")
        _content(m, i, role)
        if role == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise _fail(f"messages[{i}].tool_call_id", f"'messages[{i}].tool_call_id' is required for a tool message")
        _tool_calls(m, i)     # only assistants send them, but any role's must be well formed
        if m.get("name") is not None and not isinstance(m["name"], str):
            raise _fail(f"messages[{i}].name", f"'messages[{i}].name' must be a string")
    return msgs


def _tools(body: dict) -> None:
    tools = body.get("tools")
    tc = body.get("tool_choice")
    if tc is not None and not (tc in ("none", "auto", "required") or isinstance(tc, dict)):
        raise _fail("tool_choice", "'tool_choice' must be 'none', 'auto', 'required' or an object naming a tool")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _fail("tools", f"'tools' must be an array, got {_type_name(tools)}")
    for j, t in enumerate(tools):
        if not isinstance(t, dict) or t.get("type") not in ("function", "custom"):
            raise _fail(f"tools[{j}]", f"'tools[{j}]' must be an object with type 'function' or 'custom'")
        if t["type"] == "function":
            fn = t.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise _fail(f"tools[{j}].function.name", f"'tools[{j}].function.name' is required")
            if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
                raise _fail(f"tools[{j}].function.parameters", f"'tools[{j}].function.parameters' must be an object")


def _stop(body: dict) -> None:
    s = body.get("stop")
    if s is None or isinstance(s, str):
        return
    if not isinstance(s, list) or not all(isinstance(x, str) for x in s) or not 1 <= len(s) <= 4:
        raise _fail("stop", "'stop' must be a string or an array of 1 to 4 strings")


def _stream(body: dict) -> tuple[bool, bool]:
    _typed(body, "stream", (bool,), "a boolean")
    stream = bool(body.get("stream"))
    so = body.get("stream_options")
    if so is None:
        return stream, False
    if not stream:
        raise _fail("stream_options", "'stream_options' is only allowed when 'stream' is true")
    if not isinstance(so, dict):
        raise _fail("stream_options", f"'stream_options' must be an object, got {_type_name(so)}")
    iu = so.get("include_usage")
    if iu is not None and not isinstance(iu, bool):
        raise _fail("stream_options.include_usage", "'stream_options.include_usage' must be a boolean")
    return stream, bool(iu)


def validate_body(body: Any, *, max_messages: int = MAX_MESSAGES, max_content_parts: int = MAX_CONTENT_PARTS) -> ChatRequest:
    if not isinstance(body, dict):
        raise _fail(None, f"The request body must be a JSON object, got {_type_name(body)}")  # type: ignore[arg-type]
    model = body.get("model")
    if model is None or model == "":
        raise _fail("model", "'model' is required")
    if not isinstance(model, str):
        raise _fail("model", f"'model' must be a string, got {_type_name(model)}")
    messages = _messages(body, max_messages, max_content_parts)
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "frequency_penalty", -2, 2)
    _number(body, "presence_penalty", -2, 2)
    max_tokens = _integer(body, "max_tokens", lo=1)
    max_completion = _integer(body, "max_completion_tokens", lo=1)
    _integer(body, "n", lo=1, hi=128)
    _integer(body, "seed")
    _integer(body, "top_logprobs", lo=0, hi=20)
    stream, include_usage = _stream(body)
    for key in ("logprobs", "parallel_tool_calls", "store"):
        _typed(body, key, (bool,), "a boolean")
    for key in ("user", "reasoning_effort", "service_tier", "safety_identifier", "prompt_cache_key"):
        _typed(body, key, (str,), "a string")
    for key in ("logit_bias", "metadata", "response_format", "prediction", "audio", "web_search_options"):
        _typed(body, key, (dict,), "an object")
    rf = body.get("response_format")
    if rf is not None and rf.get("type") not in ("text", "json_object", "json_schema"):
        raise _fail("response_format.type", "'response_format.type' must be 'text', 'json_object' or 'json_schema'")
    _stop(body)
    _tools(body)
    fallbacks = body.get("models")
    if fallbacks is not None and (not isinstance(fallbacks, list) or not all(isinstance(x, str) for x in fallbacks)):
        raise _fail("models", "'models' must be an array of model names")
    route, wtp = _route(body.get("route"))
    return ChatRequest(body=body, model=model, messages=messages, stream=stream,
                       include_usage=include_usage,
                       max_tokens=max_completion if max_completion is not None else max_tokens,
                       fallback_models=list(fallbacks or ()), strategy=route, willingness_to_pay=wtp)


def _route(route: Any) -> tuple[str | None, float | None]:
    """`route`: a strategy name, or {"strategy": name, "willingness_to_pay": 0..1} (both optional)."""
    if route is None or isinstance(route, str):
        return route, None
    if not isinstance(route, dict):
        raise _fail("route", "'route' must be a strategy name or an object with 'strategy' and/or "
                             "'willingness_to_pay'")
    unknown = sorted(set(route) - {"strategy", "willingness_to_pay"})
    if unknown:
        raise _fail(f"route.{unknown[0]}", f"'route.{unknown[0]}' is not a known field "
                                           "(known: strategy, willingness_to_pay)")
    strategy = route.get("strategy")
    if strategy is not None and not isinstance(strategy, str):
        raise _fail("route.strategy", "'route.strategy' must be a string naming a routing strategy")
    from ..routing.wtp import parse_willingness_to_pay
    wtp = parse_willingness_to_pay(route.get("willingness_to_pay"), "route.willingness_to_pay")
    return strategy, wtp


def json_values_bound(chunk: bytes) -> int:
    """An upper bound on the JSON values that `chunk` adds to a body (its commas: every value after
    the first in a container follows one; nesting without commas is capped by the parser's depth
    limit). Counted in C; a body may be counted chunk by chunk as it arrives."""
    return chunk.count(b",")


def check_complexity(raw: bytes, max_values: int = MAX_JSON_VALUES) -> None:
    """Refuse a body with too many JSON values before parsing it: parsing holds the interpreter
    for ~1 ms per 2,000 values (400k messages: ~300 ms), and no thread makes that cheaper. Commas
    inside strings count too, so prose or code is refused only past ~7 MB of it, more than any
    model's context window holds."""
    if len(raw) < _ESTIMATE_FROM_BYTES:
        return
    raise_if_too_complex(json_values_bound(raw), max_values)


def raise_if_too_complex(estimate: int, max_values: int) -> None:
    if estimate > max_values:
        raise InvalidRequest(f"The request body has too many JSON values (more than {max_values})",
                             code="json_too_complex")


_DEPTH_MARGIN = 16        # levels a translation may add (a tool schema one level deeper in another protocol)


def could_be_too_deep(raw: bytes) -> bool:
    """Whether JSON text has enough brackets to nest, with a translation's margin, deeper than orjson
    writes (254 levels; it reads 1024). Counted in C: nothing is tried for the usual body."""
    return raw.count(b"[") + raw.count(b"{") >= 254 - _DEPTH_MARGIN


def raise_if_too_deep(raw: bytes, body: Any) -> None:
    """Refuse a parsed body that Router One could not write again for the upstream: orjson reads
    JSON nested up to 1024 levels but writes at most 254 (a TypeError, which was a 500 after the
    hold). Only a body with enough brackets to be that deep is tried."""
    if not could_be_too_deep(raw):
        return
    wrapped: Any = body
    for _ in range(_DEPTH_MARGIN):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except TypeError:
        raise InvalidRequest(f"The request body is nested too deeply (more than {254 - _DEPTH_MARGIN} levels)",
                             code="json_too_deep") from None


def parse_chat_request(raw: bytes, *, max_messages: int = MAX_MESSAGES, max_content_parts: int = MAX_CONTENT_PARTS,
                       max_json_values: int | None = MAX_JSON_VALUES) -> ChatRequest:
    """`max_json_values=None`: the caller already counted (see `json_values_bound`)."""
    if max_json_values is not None:
        check_complexity(raw, max_json_values)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    raise_if_too_deep(raw, body)
    return validate_body(body, max_messages=max_messages, max_content_parts=max_content_parts)

"""Anthropic Messages (`POST /v1/messages`) <-> the internal chat pipeline. Pure data in, data out.

Inbound, a `CreateMessageParams` body becomes a `ChatRequest` (OpenAI chat shape, `protocol:
"messages"`) that the chat pipeline plans, limits, bills and sends to any upstream; the original
body rides along in `ChatRequest.native`, so an Anthropic upstream receives it as sent (model
replaced) and nothing the translation cannot carry is lost (`cache_control`, thinking blocks and
their signatures, server tools, beta fields).

The translation (the reverse of providers/anthropic_request.py):

| Messages                                   | chat                                                  |
|--------------------------------------------|-------------------------------------------------------|
| `system` string / text blocks              | one leading `system` message (blocks as text parts)   |
| text block                                 | text part                                             |
| image block, base64 / url source           | `image_url` part (data URL / the URL)                 |
| document block, base64 PDF / plain text    | `file` part with `file_data` / text part              |
| assistant `tool_use` blocks                | `tool_calls` (`arguments` = compact JSON of `input`)  |
| user `tool_result` blocks                  | one `tool` message each, before the turn's other parts|
| thinking / redacted_thinking blocks        | dropped (no chat equivalent; kept by pass-through)    |
| server tools, `mcp_servers`, other user blocks | refused, naming it, by a non-Anthropic upstream  |
| `tools` (custom) / `tool_choice`           | function tools / auto, required, named, none          |
| `disable_parallel_tool_use`                | `parallel_tool_calls: false`                          |
| `stop_sequences` (<= 4)                    | `stop`                                                |
| `metadata.user_id`                         | `user`                                                |
| `output_config.format` json_schema         | `response_format` json_schema                         |
| `top_k`                                    | `top_k` (Gemini topK; OpenAI servers get it as sent)  |
| `thinking`, `service_tier`, ...            | dropped (not every chat model accepts reasoning knobs)|
| `models`, `route` (Router One's own)       | the same fields: fallback models, routing strategy    |

Outbound, `completion_to_message` turns the pipeline's chat completion into a `Message`
(stop -> end_turn, length -> max_tokens, tool_calls -> tool_use, content_filter -> refusal; usage
split back into uncached input, cache reads and cache writes, plus `usage.cost` in USD), and
`error_body` renders Router One's errors in Anthropic's `ErrorResponse` shape.
"""
from __future__ import annotations

import secrets
from typing import Any, Mapping

import orjson

from ..errors import InvalidRequest, RouterOneError
from .chat import ChatRequest, raise_if_too_deep, validate_body
from .types import plausible_count

__all__ = ["parse_messages_request", "messages_to_chat", "completion_to_message", "anthropic_usage",
           "error_body", "ERROR_TYPES", "STOP_REASONS", "FORWARDED_HEADERS", "ROUTER_FIELDS", "start_usage",
           "MESSAGE_DEFAULTS"]

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "content_filter": "refusal", "function_call": "tool_use"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 503: "overloaded_error", 504: "timeout_error",
               529: "overloaded_error"}
# Router One's request fields (as on chat completions), never sent upstream
ROUTER_FIELDS = ("models", "route")
# request headers an Anthropic upstream must see as the client sent them
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


def _fail(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _text(block: dict, param: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _fail(f"{param}.text", f"'{param}.text' must be a string")
    return text


def _image_part(block: dict, param: str) -> dict:
    src = block.get("source")
    if not isinstance(src, dict):
        raise _fail(f"{param}.source", f"'{param}.source' must be an object")
    if src.get("type") == "base64" and isinstance(src.get("data"), str) and isinstance(src.get("media_type"), str):
        return {"type": "image_url", "image_url": {"url": f"data:{src['media_type']};base64,{src['data']}"}}
    if src.get("type") == "url" and isinstance(src.get("url"), str) and src["url"]:
        return {"type": "image_url", "image_url": {"url": src["url"]}}
    raise _fail(f"{param}.source", f"'{param}.source' must be a base64 or url image source")


def _document_part(block: dict, param: str) -> dict:
    src = block.get("source")
    src = src if isinstance(src, dict) else {}
    if src.get("type") == "text" and isinstance(src.get("data"), str):
        return {"type": "text", "text": src["data"]}
    if src.get("type") == "base64" and isinstance(src.get("data"), str):
        media = src.get("media_type") if isinstance(src.get("media_type"), str) else "application/pdf"
        file: dict = {"file_data": f"data:{media};base64,{src['data']}"}
        if isinstance(block.get("title"), str):
            file["filename"] = block["title"]
        return {"type": "file", "file": file}
    raise _fail(f"{param}.source", f"'{param}.source': only base64 and text documents can be translated")


def _tool_result_text(block: dict, param: str) -> tuple[str, list[dict]]:
    """-> (the result's text, image parts it carried)."""
    content = block.get("content")
    texts, images = [], []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for j, b in enumerate(content):
            kind = b.get("type") if isinstance(b, dict) else None
            if kind == "text":
                texts.append(_text(b, f"{param}.content[{j}]"))
            elif kind == "image":
                images.append(_image_part(b, f"{param}.content[{j}]"))
    elif content is not None:
        raise _fail(f"{param}.content", f"'{param}.content' must be a string or an array of blocks")
    text = "\n".join(texts)
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"
    return text, images


def _tool_call(block: dict, param: str) -> dict:
    if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
        raise _fail(param, f"'{param}' must have string 'id' and 'name'")
    args = block.get("input")
    if not isinstance(args, dict):
        raise _fail(f"{param}.input", f"'{param}.input' must be an object")
    return {"id": block["id"], "type": "function",
            "function": {"name": block["name"], "arguments": orjson.dumps(args).decode()}}


def _user_turn(content: list, param: str) -> list[dict]:
    """A user turn -> tool messages (for its tool_result blocks), then one user message."""
    tools: list[dict] = []
    parts: list[dict] = []
    for j, block in enumerate(content):
        pp = f"{param}[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, pp)})
        elif kind == "image":
            parts.append(_image_part(block, pp))
        elif kind == "document":
            parts.append(_document_part(block, pp))
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise _fail(f"{pp}.tool_use_id", f"'{pp}.tool_use_id' must be a string")
            text, images = _tool_result_text(block, pp)
            tools.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
            parts.extend(images)
        elif kind is None:
            raise _fail(pp, f"'{pp}' must be a content block object with a 'type'")
        # search results, container uploads, ...: no chat equivalent (native_only() refuses them)
    return tools + ([{"role": "user", "content": parts}] if parts else [])


def _assistant_turn(content: list, param: str) -> list[dict]:
    texts, calls = [], []
    for j, block in enumerate(content):
        pp = f"{param}[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_text(block, pp))
        elif kind == "tool_use":
            calls.append(_tool_call(block, pp))
        elif kind is None:
            raise _fail(pp, f"'{pp}' must be a content block object with a 'type'")
        # thinking, redacted_thinking, server tool blocks: dropped
    msg: dict = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        msg["tool_calls"] = calls
    return [msg] if texts or calls else []


def _messages(body: dict) -> list[dict]:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise _fail("messages", "'messages' must be a non-empty array")
    out: list[dict] = []
    system = body.get("system")
    if isinstance(system, str):
        if system:
            out.append({"role": "system", "content": system})
    elif isinstance(system, list):
        parts = [{"type": "text", "text": _text(b, f"system[{j}]")} for j, b in enumerate(system)
                 if isinstance(b, dict) and b.get("type") == "text"]
        if parts:
            out.append({"role": "system", "content": parts})
    elif system is not None:
        raise _fail("system", "'system' must be a string or an array of text blocks")
    for i, m in enumerate(msgs):
        param = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _fail(param, f"'{param}' must be an object")
        role, content = m.get("role"), m.get("content")
        if role not in ("user", "assistant", "system"):
            raise _fail(f"{param}.role", f"'{param}.role' must be 'user' or 'assistant', got {role!r}")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise _fail(f"{param}.content", f"'{param}.content' must be a string or an array of content blocks")
        if role == "assistant":
            out.extend(_assistant_turn(content, f"{param}.content"))
        elif role == "system":
            out.append({"role": "system", "content": [{"type": "text", "text": _text(b, f"{param}.content[{j}]")}
                                                      for j, b in enumerate(content)
                                                      if isinstance(b, dict) and b.get("type") == "text"] or ""})
        else:
            out.extend(_user_turn(content, f"{param}.content"))
    if not any(m["role"] in ("user", "tool") for m in out):
        raise _fail("messages", "'messages' must contain a user message")
    return out


def _tools(body: dict, chat: dict) -> None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _fail("tools", "'tools' must be an array")
    out = []
    for j, t in enumerate(tools or ()):
        if not isinstance(t, dict):
            raise _fail(f"tools[{j}]", f"'tools[{j}]' must be an object")
        if t.get("type") not in (None, "custom"):
            continue       # versioned server/client tools (bash_..., web_search_...): native_only()
        if not isinstance(t.get("name"), str) or not t["name"]:
            raise _fail(f"tools[{j}].name", f"'tools[{j}].name' is required")
        schema = t.get("input_schema")
        if not isinstance(schema, dict):
            raise _fail(f"tools[{j}].input_schema", f"'tools[{j}].input_schema' must be an object")
        fn: dict = {"name": t["name"], "parameters": schema}
        if isinstance(t.get("description"), str):
            fn["description"] = t["description"]
        out.append({"type": "function", "function": fn})
    if out:
        chat["tools"] = out
    tc = body.get("tool_choice")
    if tc is None:
        return
    if not isinstance(tc, dict):
        raise _fail("tool_choice", "'tool_choice' must be an object")
    kind = tc.get("type")
    if kind == "tool":
        if not isinstance(tc.get("name"), str):
            raise _fail("tool_choice.name", "'tool_choice.name' is required for type 'tool'")
        chat["tool_choice"] = {"type": "function", "function": {"name": tc["name"]}}
    elif kind in ("auto", "any", "none"):
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    else:
        raise _fail("tool_choice.type", "'tool_choice.type' must be auto, any, tool or none")
    if tc.get("disable_parallel_tool_use") and out:
        chat["parallel_tool_calls"] = False
    if not out:
        chat.pop("tool_choice", None)


def _sampling(body: dict, chat: dict) -> None:
    mt = body.get("max_tokens")
    if isinstance(mt, bool) or not isinstance(mt, int):
        raise _fail("max_tokens", "'max_tokens' is required and must be an integer")
    if mt < 1:
        raise _fail("max_tokens", "'max_tokens' must be >= 1 (0, cache warming only, is not supported)")
    chat["max_tokens"] = mt
    for key in ("temperature", "top_p"):
        v = body.get(key)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise _fail(key, f"'{key}' must be a number between 0 and 1")
            chat[key] = v
    top_k = body.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise _fail("top_k", "'top_k' must be an integer >= 0")
        chat["top_k"] = top_k      # chat's `top_k` extension: Gemini's topK, passed to OpenAI-protocol servers
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _fail("stop_sequences", "'stop_sequences' must be an array of strings")
        if len(stops) > 4:
            raise _fail("stop_sequences", "at most 4 'stop_sequences' can be translated for this model")
        if stops:
            chat["stop"] = stops
    meta = body.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("user_id"), str):
        chat["user"] = meta["user_id"]
    fmt = (body.get("output_config") or {}).get("format") if isinstance(body.get("output_config"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        chat["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "response", "schema": fmt["schema"]}}
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _fail("stream", "'stream' must be a boolean")
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}


def messages_to_chat(body: Any) -> dict:
    """A `CreateMessageParams` body -> an OpenAI chat-completions body. Raises InvalidRequest."""
    if not isinstance(body, dict):
        raise _fail("body", "The request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("model", "'model' is required and must be a string")
    chat: dict = {"model": model, "messages": _messages(body)}
    _sampling(body, chat)
    _tools(body, chat)
    for key in ROUTER_FIELDS:        # Router One's own: fallback models, routing strategy
        if key in body:
            chat[key] = body[key]
    return chat


def native_only(body: dict) -> list[tuple[str, str]]:
    """What in `body` only an Anthropic upstream can honour: server and versioned client tools (web
    search, code execution, bash, ...), MCP servers. Dropping them would answer a different question."""
    out = [(f"tools[{j}]", f"Anthropic tool type {t.get('type')!r}") for j, t in enumerate(body.get("tools") or ())
           if isinstance(t, dict) and t.get("type") not in (None, "custom")]
    if body.get("mcp_servers"):
        out.append(("mcp_servers", "Anthropic's MCP connector"))
    for i, m in enumerate(body.get("messages") or ()):
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), list):
            out += _untranslated_blocks(m["content"], f"messages[{i}].content", _USER_BLOCKS)
    return out


_USER_BLOCKS = ("text", "image", "document", "tool_result")     # what _user_turn translates


def _untranslated_blocks(blocks: list, param: str, known: tuple) -> list[tuple[str, str]]:
    """User content (search results, container uploads, ...) that the translation would leave out."""
    out = []
    for j, b in enumerate(blocks):
        kind = b.get("type") if isinstance(b, dict) else None
        if kind not in known:
            out.append((f"{param}[{j}]", f"content block type {kind!r}"))
        elif kind == "tool_result" and isinstance(b.get("content"), list):
            out += _untranslated_blocks(b["content"], f"{param}[{j}].content", ("text", "image"))
    return out


def parse_messages_request(raw: bytes, headers: Mapping[str, str] | None = None) -> ChatRequest:
    """The pipeline's `parse` for /v1/messages; `headers` are the client's, of which
    FORWARDED_HEADERS go to an Anthropic upstream with the original body."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    raise_if_too_deep(raw, body)
    req = validate_body(messages_to_chat(body))
    req.protocol = "messages"
    req.native_only = native_only(body)
    fwd = {h: headers[h] for h in FORWARDED_HEADERS if headers and headers.get(h)}
    req.native = {"body": body, "headers": fwd}
    return req


# -- outbound -------------------------------------------------------------------------------

def anthropic_usage(usage: Mapping[str, Any] | None) -> dict:
    """OpenAI usage (+ Router One's `cost`) -> Anthropic `Usage`: input_tokens is the uncached part."""
    u = usage or {}
    details = u.get("prompt_tokens_details") or {}
    cached, written = int(details.get("cached_tokens") or 0), int(details.get("cache_write_tokens") or 0)
    out = {"input_tokens": max(0, int(u.get("prompt_tokens") or 0) - cached - written),
           "output_tokens": int(u.get("completion_tokens") or 0),
           "cache_creation_input_tokens": written, "cache_read_input_tokens": cached,
           "cache_creation": None, "inference_geo": None, "output_tokens_details": None,
           "server_tool_use": None, "service_tier": "standard"}
    if "cost" in u:
        out["cost"] = u["cost"]
    return out


_COUNTS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


# the fields of Anthropic's Usage that are an object or null, or text or null (others pass as sent);
# MessageDeltaUsage (a stream's message_delta) has no cache_creation, inference_geo or service_tier
_TYPED = {"cache_creation": dict, "output_tokens_details": dict, "server_tool_use": dict,
          "service_tier": str, "inference_geo": str}
_NOT_IN_DELTA = ("cache_creation", "inference_geo", "service_tier")


def billed_usage(upstream: Any, usage: Mapping[str, Any] | None, *, delta: bool = False) -> dict:
    """An Anthropic upstream's own `usage` (pass-through) with the token counts Router One billed
    (`usage`, the pipeline's OpenAI usage with `cost`), and the cost: an upstream's
    negative, absurd or unreadable counts (or a `usage` that is not an object) reach the client as
    what was charged, never as sent. Every field Anthropic's Usage requires is there (a usage
    without `server_tool_use`, or none at all, was relayed so), and one of the wrong type
    (`cache_creation: []`) is Router One's own (null; service_tier "standard"). `delta`: for a
    message_delta (MessageDeltaUsage)."""
    billed = anthropic_usage(usage)
    out = {k: v for k, v in billed.items() if not (delta and k in _NOT_IN_DELTA)}
    for k, v in (upstream.items() if isinstance(upstream, dict) else ()):
        if k in _COUNTS or k == "cost" or (k in _TYPED and v is not None and v.__class__ is not _TYPED[k]):
            continue      # a count or the cost: the billed one; a field of the wrong type: Router One's
        if not (delta and k in _NOT_IN_DELTA):
            out[k] = v
    return out


def start_usage(upstream: Any) -> dict:
    """A relayed message_start's `usage`, before anything is billed: the upstream's counts so far
    where plausible (an integer in range; else 0: null, "12", -5 were relayed as sent) with every
    field Anthropic's Usage requires, those of the wrong type Router One's (as `billed_usage`)."""
    out = anthropic_usage(None)
    for k, v in (upstream.items() if isinstance(upstream, dict) else ()):
        if k.endswith("_tokens"):
            out[k] = int(v) if plausible_count(v) else 0
        elif k == "cost" or (k in _TYPED and v is not None and v.__class__ is not _TYPED[k]):
            continue
        else:
            out[k] = v
    return out


def _tool_use(call: dict) -> dict:
    fn = call.get("function") or {}
    try:
        args = orjson.loads(fn.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        args = None
    # a call without an id (some OpenAI-compatible servers send none) gets one, as in a stream: the
    # client answers it with a tool_result naming that id, and an empty one was an invalid block
    return {"type": "tool_use", "id": call.get("id") or f"toolu_{secrets.token_hex(12)}",
            "name": fn.get("name") or "", "input": args if isinstance(args, dict) else {}, "caller": {"type": "direct"}}


def message_id(chat_id: str) -> str:
    return chat_id if chat_id.startswith("msg_") else "msg_" + chat_id.removeprefix("chatcmpl-")


# fields of Anthropic's Message an upstream (an older API version, a proxy) may leave out: null
MESSAGE_DEFAULTS = {"stop_sequence": None, "stop_details": None, "container": None}


def completion_to_message(resp: dict) -> dict:
    """The pipeline's chat completion -> an Anthropic `Message`. An Anthropic upstream's own message
    (kept by pass-through in `_native`) is returned as it came, with the public model id and cost."""
    native = resp.get("_native")
    if isinstance(native, dict):
        msg = {**MESSAGE_DEFAULTS, **native}
        msg["model"] = resp.get("model") or msg.get("model")
        msg["usage"] = billed_usage(msg.get("usage"), resp.get("usage"))
        return msg
    choice = (resp.get("choices") or [{}])[0]
    m = choice.get("message") or {}
    content: list[dict] = []
    if m.get("content"):
        content.append({"type": "text", "text": m["content"], "citations": None})
    elif m.get("refusal"):
        content.append({"type": "text", "text": m["refusal"], "citations": None})
    content += [_tool_use(c) for c in m.get("tool_calls") or ()]
    finish = choice.get("finish_reason")
    return {"id": message_id(str(resp.get("id") or "")), "type": "message", "role": "assistant",
            "model": resp.get("model") or "", "content": content,
            "stop_reason": STOP_REASONS.get(finish or "stop", "end_turn"), "stop_sequence": None,
            "stop_details": None, "usage": anthropic_usage(resp.get("usage")), "container": None}


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_body(exc: RouterOneError, request_id: str | None) -> bytes:
    """Anthropic's `ErrorResponse` for a Router One error: the type follows the HTTP status (so
    402 is billing_error, 403 permission_error, 429 rate_limit_error, 503 overloaded_error); the
    message keeps Router One's text and code."""
    message = f"{exc.message} ({exc.code})" if exc.code else exc.message
    return orjson.dumps({"type": "error", "error": {"type": error_type(exc.status), "message": message},
                         "request_id": request_id})

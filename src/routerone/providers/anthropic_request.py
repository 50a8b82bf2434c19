"""OpenAI chat request -> Anthropic Messages request body. Pure data in, data out.

Every OpenAI request field has exactly one policy (a test walks OpenAI's spec to keep it so):

* mapped        - translated (see `build_messages_body` and the helpers below);
* dropped       - hints with no observable contract (`seed`, `store`, `metadata`, prompt-cache
                  hints, `prediction`, router-only `models`/`route`): ignored;
* neutral-only  - accepted only at the value that asks for nothing (`n: 1`, `logprobs: false`,
                  `presence_penalty: 0`, `modalities: ["text"]`, ...); any other value is a 400
                  `UnsupportedParameter` naming the field, because the caller expects data or
                  behaviour Anthropic cannot give (`n>1`, `logprobs`, `logit_bias`, `audio`, ...);
* passthrough   - keys that are not OpenAI's but are Anthropic request fields (`top_k`,
                  `thinking`, `cache_control`, `output_config`, `container`, `inference_geo`)
                  are forwarded as-is; any other unknown key is a 400 naming it (Anthropic has
                  `additionalProperties: false` and would reject it less clearly).

Rules where OpenAI and Anthropic differ:
* `temperature` is clamped to Anthropic's 0..1 (values above 1 become 1.0, as Anthropic's own
  OpenAI compatibility layer does); below 1 it is unchanged, never rescaled.
* `max_tokens` is required upstream: `req.max_tokens` (max_completion_tokens ?? max_tokens; the
  chat service may pre-set it from the catalog's `default_max_tokens`), else `default_max_tokens`.
* `response_format` json_schema / json_object becomes a forced tool named
  `JSON_TOOL_PREFIX + schema name` whose `input_schema` is the schema; the response side turns
  that tool's input back into `message.content` JSON text (works on every Claude model, unlike
  `output_config.format`). With caller tools too, the answer tool is added beside them and an auto
  tool_choice becomes `any` (call a tool or answer); a named tool_choice is kept. `strict: true`
  (on the json_schema or on a function tool) becomes the Anthropic tool's `strict: true`, which
  guarantees the input matches the schema.
* `reasoning_effort` becomes `thinking: {type: enabled, budget_tokens}` by the table and rules in
  `anthropic_thinking` ("none" sends nothing).
* system/developer messages are hoisted, in order, into top-level `system` (joined by a blank
  line); consecutive same-role turns are merged; tool messages become `tool_result` blocks at the
  start of one user turn.
"""
from __future__ import annotations

import re
from typing import Any

import orjson

from ..errors import InvalidRequest, UnsupportedParameter
from ..wire.chat import ChatRequest
from .anthropic_thinking import thinking_blocks_of, thinking_for, without_thinking

__all__ = ["build_messages_body", "DEFAULT_MAX_TOKENS", "JSON_TOOL_PREFIX", "MAPPED_PARAMS",
           "DROPPED_PARAMS", "NEUTRAL_VALUES", "ANTHROPIC_PASSTHROUGH", "sanitize_tool_id"]

DEFAULT_MAX_TOKENS = 4096
JSON_TOOL_PREFIX = "json_response__"
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")

MAPPED_PARAMS = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "stream", "stream_options",
    "temperature", "top_p", "stop", "tools", "tool_choice", "parallel_tool_calls",
    "response_format", "user", "safety_identifier", "service_tier", "reasoning_effort"})
DROPPED_PARAMS = frozenset({"seed", "store", "metadata", "prompt_cache_key", "prompt_cache_retention",
                            "prompt_cache_options", "prediction", "models", "route"})
# Accepted (and dropped) only when null or one of these values; anything else is a 400.
NEUTRAL_VALUES: dict[str, tuple] = {
    "n": (1,), "logprobs": (False,), "top_logprobs": (0,), "logit_bias": ({},),
    "presence_penalty": (0,), "frequency_penalty": (0,), "modalities": (["text"],),
    "verbosity": ("medium",), "audio": (),
    "web_search_options": (), "moderation": (), "functions": (), "function_call": ()}
ANTHROPIC_PASSTHROUGH = frozenset({"top_k", "thinking", "cache_control", "output_config", "container",
                                   "inference_geo"})
_SERVICE_TIERS = {"auto": "auto", "default": "standard_only"}
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,(.*)$", re.S)
_BAD_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def sanitize_tool_id(tool_call_id: str) -> str:
    """Anthropic ids must match ^[a-zA-Z0-9_-]+$; the same rewrite on both sides keeps pairs matched."""
    return _BAD_ID_CHARS.sub("_", tool_call_id) or "call"


def _unsupported(param: str, why: str) -> UnsupportedParameter:
    return UnsupportedParameter(f"'{param}' is not supported by Anthropic models: {why}", param=param)


def _is_neutral(value: Any, neutral: tuple) -> bool:
    return any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in neutral)


def _check_params(body: dict[str, Any]) -> None:
    for key, value in body.items():
        if key in MAPPED_PARAMS or key in DROPPED_PARAMS or key in ANTHROPIC_PASSTHROUGH or value is None:
            continue
        if key not in NEUTRAL_VALUES:
            raise _unsupported(key, "unknown parameter (only OpenAI parameters and Anthropic request "
                                    "fields are accepted)")
        if not _is_neutral(value, NEUTRAL_VALUES[key]):
            raise _unsupported(key, "the Messages API has no equivalent")


def _cache(part: dict, block: dict) -> dict:
    if part.get("prompt_cache_breakpoint"):
        block["cache_control"] = {"type": "ephemeral"}
    return block


def _text_blocks(content: Any, param: str) -> list[dict]:
    """System/developer/assistant/tool content: a string or text (and refusal) parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out = []
    for j, part in enumerate(content):
        text = part.get("text") if part.get("type") == "text" else part.get("refusal")
        if not isinstance(text, str):
            raise InvalidRequest(f"'{param}[{j}]' must be a text part", param=f"{param}[{j}]")
        if text:
            out.append(_cache(part, {"type": "text", "text": text}))
    return out


def _image(url: str, param: str) -> dict:
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    m = _DATA_URL.match(url)
    if not m:
        raise InvalidRequest(f"'{param}' must be an http(s) URL or a base64 data URL", param=param)
    if m.group(1) not in IMAGE_MEDIA_TYPES:
        raise InvalidRequest(f"'{param}': image type {m.group(1)} is not supported by Anthropic "
                             f"(use {', '.join(IMAGE_MEDIA_TYPES)})", param=param)
    return {"type": "image", "source": {"type": "base64", "media_type": m.group(1), "data": m.group(2)}}


def _document(file: dict, param: str) -> dict:
    data = file.get("file_data")
    if not isinstance(data, str) or not data:
        raise _unsupported(param, "only inline 'file_data' can be sent; 'file_id' refers to OpenAI storage")
    m = _DATA_URL.match(data)
    media_type, b64 = (m.group(1), m.group(2)) if m else ("application/pdf", data)
    if media_type != "application/pdf":
        raise _unsupported(param, f"file type {media_type} (only application/pdf)")
    block: dict = {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": b64}}
    if file.get("filename"):
        block["title"] = file["filename"]
    return block


def _user_blocks(content: Any, param: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out = []
    for j, part in enumerate(content or ()):
        pp, kind = f"{param}[{j}]", part.get("type")
        if kind == "text":
            if not part["text"]:
                continue
            block = {"type": "text", "text": part["text"]}
        elif kind == "image_url":
            block = _image(part["image_url"]["url"], f"{pp}.image_url.url")   # `detail`: no equivalent
        elif kind == "file":
            block = _document(part.get("file") or {}, pp)
        else:
            raise _unsupported(pp, f"content part type {kind!r} has no Anthropic equivalent")
        out.append(_cache(part, block))
    return out


def _tool_use(call: dict, param: str) -> dict:
    if call.get("type", "function") != "function":
        raise _unsupported(param, "only function tool calls can be sent")
    fn = call["function"]
    raw = fn.get("arguments") or "{}"
    try:
        args = orjson.loads(raw)
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise InvalidRequest(f"'{param}.function.arguments' must be a JSON object encoded as a string",
                             param=f"{param}.function.arguments")
    return {"type": "tool_use", "id": sanitize_tool_id(call["id"]), "name": fn["name"], "input": args}


def _assistant_blocks(m: dict, param: str) -> list[dict]:
    """Its `thinking_blocks` (sent back signed, as a reply gave them: they open the turn), text, a
    refusal as text, tool calls; `reasoning_content` is not sent (the signed blocks carry it)."""
    blocks = thinking_blocks_of(m, param) + _text_blocks(m.get("content"), f"{param}.content")
    if isinstance(m.get("refusal"), str) and m["refusal"]:
        blocks.append({"type": "text", "text": m["refusal"]})
    blocks += [_tool_use(c, f"{param}.tool_calls[{j}]") for j, c in enumerate(m.get("tool_calls") or ())]
    return blocks


def _tool_result(m: dict, param: str) -> dict:
    text = "\n".join(b["text"] for b in _text_blocks(m.get("content"), f"{param}.content"))
    block: dict = {"type": "tool_result", "tool_use_id": sanitize_tool_id(m["tool_call_id"])}
    if text:
        block["content"] = text
    return block


def _system(system_blocks: list[dict]) -> str | list[dict] | None:
    if not system_blocks:
        return None
    if any("cache_control" in b for b in system_blocks):
        return system_blocks
    return "\n\n".join(b["text"] for b in system_blocks)


def _finish_turn(turn: dict) -> dict:
    blocks = turn["content"]
    if turn["role"] == "user":   # tool_result blocks must open the turn that answers the tool_use
        blocks.sort(key=lambda b: b["type"] != "tool_result")
    if len(blocks) == 1 and blocks[0]["type"] == "text" and set(blocks[0]) == {"type", "text"}:
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return turn


def convert_messages(messages: list[dict]) -> tuple[str | list[dict] | None, list[dict]]:
    """-> (top-level system, Anthropic messages)."""
    system: list[dict] = []
    turns: list[dict] = []
    for i, m in enumerate(messages):
        role, param = m["role"], f"messages[{i}]"
        if role in ("system", "developer"):
            system += _text_blocks(m.get("content"), f"{param}.content")
            continue
        if role == "user":
            blocks = _user_blocks(m.get("content"), f"{param}.content")
        elif role == "assistant":
            blocks = _assistant_blocks(m, param)
        elif role == "tool":
            role, blocks = "user", [_tool_result(m, param)]
        else:
            raise _unsupported(f"{param}.role", f"role {role!r} (deprecated; use 'tool')")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequest("'messages' must contain at least one user or assistant message with content",
                             param="messages")
    last = turns[-1]["content"][-1]
    if turns[-1]["role"] == "assistant" and last["type"] == "text":   # prefill may not end in whitespace
        last["text"] = last["text"].rstrip() or last["text"]
    return _system(system), [_finish_turn(t) for t in turns]


def _tools(body: dict) -> list[dict]:
    out = []
    for j, t in enumerate(body.get("tools") or ()):
        if t.get("type") != "function":
            raise _unsupported(f"tools[{j}]", "only function tools can be sent")
        fn = t["function"]
        if fn["name"].startswith(JSON_TOOL_PREFIX):
            raise InvalidRequest(f"'tools[{j}].function.name': names starting with '{JSON_TOOL_PREFIX}' are reserved",
                                 param=f"tools[{j}].function.name")
        schema = dict(fn.get("parameters") or {"type": "object", "properties": {}})
        if schema.setdefault("type", "object") != "object":
            raise InvalidRequest(f"'tools[{j}].function.parameters' must describe a JSON object",
                                 param=f"tools[{j}].function.parameters")
        tool = {"name": fn["name"], "input_schema": schema}
        if fn.get("description"):
            tool["description"] = fn["description"]
        if fn.get("strict") is True:
            tool["strict"] = True
        out.append(tool)
    return out


def _json_tool(rf: dict | None) -> dict | None:
    kind = (rf or {}).get("type")
    if kind == "json_object":
        return {"name": JSON_TOOL_PREFIX + "object", "description": "Give the answer as a JSON object.",
                "input_schema": {"type": "object"}}
    if kind != "json_schema":
        return None
    spec = rf.get("json_schema") or {}
    schema = dict(spec.get("schema") or {"type": "object"})
    if schema.setdefault("type", "object") != "object":
        raise _unsupported("response_format.json_schema.schema", "the schema's root must be an object")
    tool = {"name": JSON_TOOL_PREFIX + str(spec.get("name") or "response"),
            "description": spec.get("description") or "Give the answer as JSON matching this schema.",
            "input_schema": schema}
    if spec.get("strict") is True:
        tool["strict"] = True
    return tool


def _tool_choice(body: dict, tools: list[dict], json_tool: dict | None) -> dict | None:
    tc = body.get("tool_choice")
    names = {t["name"] for t in tools}
    if isinstance(tc, dict) and tc.get("type") == "allowed_tools":
        allowed = tc.get("allowed_tools") or {}
        keep = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()}
        tools[:] = [t for t in tools if t["name"] in keep]
        tc = "required" if allowed.get("mode") == "required" else "auto"
    if isinstance(tc, dict):
        if tc.get("type") != "function" or (tc.get("function") or {}).get("name") not in names:
            raise InvalidRequest("'tool_choice' must name one of the function tools in 'tools'",
                                 param="tool_choice")
        choice = {"type": "tool", "name": tc["function"]["name"]}
    elif json_tool is not None and (not tools or tc == "none"):
        choice = {"type": "tool", "name": json_tool["name"]}
    elif not tools or (tc is None and json_tool is None and body.get("parallel_tool_calls") is not False):
        return None   # Anthropic's default is auto
    else:
        kind = {"required": "any", "none": "none"}.get(tc or "auto", "auto")
        choice = {"type": "any" if json_tool is not None and kind == "auto" else kind}
    if body.get("parallel_tool_calls") is False and choice["type"] != "none":
        choice["disable_parallel_tool_use"] = True
    return choice


def _sampling(body: dict, out: dict) -> None:
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else list(stop)
        if any(not s.strip() for s in stops):
            raise _unsupported("stop", "whitespace-only stop sequences are not honoured")
        out["stop_sequences"] = stops
    user = body.get("safety_identifier") or body.get("user")
    if user:
        if len(user) > 512:
            raise InvalidRequest("'user' must be at most 512 characters for Anthropic", param="user")
        out["metadata"] = {"user_id": user}
    tier = body.get("service_tier")
    if tier is not None:
        if tier not in _SERVICE_TIERS:
            raise _unsupported("service_tier", f"{tier!r} (only 'auto' and 'default')")
        out["service_tier"] = _SERVICE_TIERS[tier]


def build_messages_body(req: ChatRequest, upstream_model: str, *, stream: bool,
                        default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict:
    """The `CreateMessageParams` JSON for `req`. Raises `InvalidRequest`/`UnsupportedParameter`."""
    body = req.body
    _check_params(body)
    system, messages = convert_messages(req.messages)
    out: dict = {"model": upstream_model, "max_tokens": req.max_tokens or default_max_tokens,
                 "messages": messages}
    if system is not None:
        out["system"] = system
    tools = _tools(body)
    json_tool = _json_tool(body.get("response_format"))
    choice = _tool_choice(body, tools, json_tool)
    if json_tool is not None:
        tools.append(json_tool)
    if tools:
        out["tools"] = tools
    if choice is not None:
        out["tool_choice"] = choice
    _sampling(body, out)
    for key in ANTHROPIC_PASSTHROUGH & body.keys():
        out[key] = body[key]
    thinking = thinking_for(body, out)
    if thinking is not None:
        out["thinking"] = thinking
    elif not (isinstance(out.get("thinking"), dict) and out["thinking"].get("type") in ("enabled", "adaptive")):
        out["messages"] = without_thinking(out["messages"])
    if stream:
        out["stream"] = True
    return out

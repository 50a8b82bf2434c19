"""Anthropic Messages response and error bodies -> OpenAI shapes (shared by the adapter and the stream).

* text blocks are concatenated into `message.content` (null when the answer is only tool calls);
* `tool_use` blocks become `tool_calls` in order (`arguments` = compact JSON text of `input`), except
  the forced response-format tool (`JSON_TOOL_PREFIX...`), whose input becomes `message.content`;
* thinking blocks' text becomes `message.reasoning_content` (the non-standard field LiteLLM and
  DeepSeek use; several blocks joined by a blank line; no key when there is no thinking text), never
  `content`; the signed thinking and redacted_thinking blocks themselves become
  `message.thinking_blocks` (LiteLLM's field; sent back, they keep thinking on in a tool loop: see
  anthropic_thinking); server-tool blocks are dropped.
  Thinking tokens are output tokens: in `completion_tokens`, and in
  `completion_tokens_details.reasoning_tokens` when Anthropic reports `output_tokens_details`
  (not estimated from the text: it may be a summary of the raw thinking);
* `stop_reason` -> `finish_reason` by `FINISH_REASONS`; a `tool_use` stop that only called the
  response-format tool is a plain `stop`;
* usage: prompt = input + cache_read + cache_creation; cached = cache_read; cache_write =
  cache_creation; completion = output.
"""
from __future__ import annotations

import re
import time
from typing import Any, Mapping

import orjson

from ..errors import UpstreamError
from ..wire.types import Usage, plausible_count
from .anthropic_request import JSON_TOOL_PREFIX
from .status import error_for_status

__all__ = ["FINISH_REASONS", "ERROR_TYPE_STATUS", "finish_reason", "usage_from_anthropic",
           "message_to_completion", "error_from_anthropic", "is_json_tool", "well_formed_message",
           "well_formed_block", "TYPE_NAME", "THOUGHT_SEPARATOR", "signed_block"]

FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}
# Anthropic `error.type` -> the HTTP status it travels with (used for mid-stream `error` events).
ERROR_TYPE_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
    "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529,
}
THOUGHT_SEPARATOR = "\n\n"        # between the texts of two thinking blocks of one reply
_CONTEXT_TOO_LONG = ("prompt is too long", "input length and `max_tokens` exceed context limit")
_CREDIT_TOO_LOW = "credit balance is too low"   # "Your credit balance is too low to access the Anthropic API..."


def is_json_tool(name: str | None) -> bool:
    return bool(name) and name.startswith(JSON_TOOL_PREFIX)   # type: ignore[union-attr]


def finish_reason(stop_reason: str | None, *, called_tools: bool) -> str:
    reason = FINISH_REASONS.get(stop_reason if isinstance(stop_reason, str) else "end_turn", "stop")
    return "stop" if reason == "tool_calls" and not called_tools else reason


def _count(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    return value if isinstance(value, int) and plausible_count(value) else 0


def usage_from_anthropic(raw: Mapping[str, Any] | None) -> Usage | None:
    if not isinstance(raw, Mapping):
        return None
    cache_read = _count(raw, "cache_read_input_tokens")
    cache_write = _count(raw, "cache_creation_input_tokens")
    details = raw.get("output_tokens_details") or {}
    # a count sent as something else ("12", null, true, -12, 10**30): Router One counts it (Usage.filled_from)
    unreadable = tuple(name for key, name in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens"))
                       if key in raw and not (isinstance(raw[key], int) and plausible_count(raw[key])))
    completion = _count(raw, "output_tokens")
    reasoning = _count(details, "thinking_tokens") if isinstance(details, Mapping) else 0
    if "completion_tokens" not in unreadable:
        reasoning = min(reasoning, completion)     # a part of the output tokens, never more
    return Usage(prompt_tokens=_count(raw, "input_tokens") + cache_read + cache_write,
                 completion_tokens=completion,
                 cached_tokens=cache_read, cache_write_tokens=cache_write,
                 reasoning_tokens=reasoning, unreadable=unreadable)


def _tool_call(block: dict) -> dict:
    return {"id": block["id"], "type": "function",
            "function": {"name": block["name"], "arguments": orjson.dumps(block.get("input") or {}).decode()}}


TYPE_NAME = re.compile(r"[a-z0-9_]{1,64}")     # a block's, delta's or event's type: a plain name
# the fields of a content block that Router One and the SDKs read, by block type (others pass as sent)
_BLOCK_FIELDS: dict[str, tuple[tuple[str, type], ...]] = {
    "text": (("text", str),), "thinking": (("thinking", str),),
    "tool_use": (("id", str), ("name", str), ("input", dict)),
    "server_tool_use": (("id", str), ("name", str), ("input", dict)),
}


def well_formed_block(block) -> bool:
    """A content block: an object with a type name (a type Router One does not know passes: Anthropic
    adds some), and the fields of its type (`_BLOCK_FIELDS`);
    a tool call's id is not empty (the client's tool_result names it)."""
    if block.__class__ is not dict or block.get("type").__class__ is not str or not TYPE_NAME.fullmatch(block["type"]):
        return False
    fields = _BLOCK_FIELDS.get(block["type"], ())
    if any(block.get(name).__class__ is not kind for name, kind in fields):
        return False
    return not (fields and "id" in block and not block["id"])


def well_formed_message(msg: dict) -> bool:
    """The parts of an Anthropic `Message` that Router One and its clients read have the protocol's
    types: an id (text), the assistant's role, well-formed content blocks, a stop_reason that is text
    or null. /v1/messages passes an Anthropic upstream's message on as it came (usage aside: the
    billed counts replace it), so one that is not is the upstream's failure (502), as a chat
    completion of the wrong shape is (guarded.well_formed_choices)."""
    if msg.get("id").__class__ is not str or not msg["id"] or msg.get("role") != "assistant":
        return False
    if msg.get("stop_reason").__class__ not in (str, type(None)):
        return False
    return all(well_formed_block(b) for b in msg.get("content") or ())


def signed_block(block: dict) -> dict | None:
    """A thinking block as `thinking_blocks` carries it (thinking and signature; redacted_thinking's
    data), or None when it lacks them (a client could not send it back)."""
    if block.get("type") == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block["data"]} if block.get("data").__class__ is str else None
    if block.get("thinking").__class__ is str and block.get("signature").__class__ is str and block["signature"]:
        return {"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]}
    return None


def message_to_completion(msg: dict) -> dict:
    """An Anthropic `Message` -> a complete OpenAI `chat.completion` object."""
    texts: list[str] = []
    json_answer: str | None = None
    tool_calls: list[dict] = []
    thoughts: list[str] = []
    blocks: list[dict] = []           # the signed thinking blocks, for the client to send back
    for block in msg.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind in ("thinking", "redacted_thinking"):
            signed = signed_block(block)
            if signed is not None:
                blocks.append(signed)
            if kind == "thinking" and block.get("thinking") and block["thinking"].__class__ is str:
                thoughts.append(block["thinking"])
        elif kind == "tool_use" and is_json_tool(block.get("name")):
            json_answer = orjson.dumps(block.get("input") or {}).decode()
        elif kind == "tool_use":
            tool_calls.append(_tool_call(block))
    content = json_answer if json_answer is not None else "".join(texts)
    message: dict = {"role": "assistant", "content": content or (None if tool_calls else ""),
                     "refusal": None}
    if thoughts:
        message["reasoning_content"] = THOUGHT_SEPARATOR.join(thoughts)
    if blocks:
        message["thinking_blocks"] = blocks
    if tool_calls:
        message["tool_calls"] = tool_calls
    out = {"id": msg.get("id") or "", "object": "chat.completion", "created": int(time.time()),
           "model": msg.get("model") or "",
           "choices": [{"index": 0, "message": message, "logprobs": None,
                        "finish_reason": finish_reason(msg.get("stop_reason"), called_tools=bool(tool_calls))}]}
    usage = usage_from_anthropic(msg.get("usage"))
    if usage is not None:
        out["usage"] = usage.to_openai()
    return out


def error_from_anthropic(status: int, error: Any, *, provider: str,
                         headers: Mapping[str, str]) -> UpstreamError:
    """`error` is the `error` object of Anthropic's `ErrorResponse` (or anything else upstream sent)."""
    err_type, message = None, ""
    if isinstance(error, dict):
        err_type, message = error.get("type"), str(error.get("message") or "")
        err_type = err_type if isinstance(err_type, str) else None
    elif error is not None:
        message = str(error)[:200]
    code = None
    if status == 400 and _CREDIT_TOO_LOW in message.lower():
        status = 402          # Anthropic says a drained account with a 400: the operator's, not the caller's
    if status == 400 and any(s in message for s in _CONTEXT_TOO_LONG):
        code = "context_length_exceeded"
    detail = f"{message} ({err_type})" if err_type and message else message or (err_type or "")
    return error_for_status(status, detail, provider=provider, headers=headers, upstream_code=code)

"""Gemini `GenerateContentResponse` -> OpenAI `chat.completion`, and the pieces the stream shares.

- `candidates[i]` -> `choices[i]` (index = `candidate.index`, which proto JSON omits when 0).
- non-thought `text` parts are concatenated into `message.content`; the text of `thought: true` parts
  (asked for with `includeThoughts` when `reasoning_effort` is set) into `message.reasoning_content`
  (LiteLLM's and DeepSeek's field, as for Anthropic's thinking), never into content; other part kinds (inline images, executable code) have no Chat Completions slot and are dropped.
- `functionCall` parts -> `tool_calls` (`arguments` = JSON text of `args`; `id` = `functionCall.id` or a
  synthesized `call_<hex>`). A `thoughtSignature` on the part rides along inside the id
  (`<id>~ts~<signature>`) so the next request can echo it (Gemini 3 rejects function-call turns whose
  signature is missing) without any server-side state; `split_call_id` undoes it.
- `finishReason` per `FINISH_REASONS`; `promptFeedback.blockReason` without candidates -> one choice with
  `content: null`, `finish_reason: "content_filter"`.
- usage: prompt = promptTokenCount + toolUsePromptTokenCount; completion = candidatesTokenCount +
  thoughtsTokenCount; reasoning = thoughtsTokenCount; cached = cachedContentTokenCount.
- `logprobsResult` -> `choice.logprobs.content` (token, logprob, UTF-8 bytes, top_logprobs).
"""
from __future__ import annotations

import time
import uuid

import orjson

from ..errors import UpstreamUnavailable
from ..wire.types import Usage, plausible_count
from .base import Deployment, ProviderResult

__all__ = ["FINISH_REASONS", "finish_reason", "usage_from", "split_call_id", "join_call_id",
           "split_parts", "logprobs_from", "candidate_index", "completion_id", "blocked_choice",
           "parse_response", "SIGNATURE_SEPARATOR"]

SIGNATURE_SEPARATOR = "~ts~"   # "~" is in neither base64 alphabet nor in Gemini/OpenAI call ids

_FILTERED = ("SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
             "IMAGE_PROHIBITED_CONTENT", "IMAGE_OTHER", "IMAGE_RECITATION", "ESCALATION")
# Tool-call and format failures end the turn without usable output; like LiteLLM we report `stop`
# (the caller sees an empty or partial answer) rather than turning a 200 into an error.
_STOPPED = ("STOP", "OTHER", "NO_IMAGE", "MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL",
            "TOO_MANY_TOOL_CALLS", "MISSING_THOUGHT_SIGNATURE", "MALFORMED_RESPONSE",
            "FINISH_REASON_UNSPECIFIED")
FINISH_REASONS: dict[str, str] = {"MAX_TOKENS": "length", **{r: "content_filter" for r in _FILTERED},
                                  **{r: "stop" for r in _STOPPED}}


def finish_reason(gemini_reason: str | None, has_tool_calls: bool) -> str:
    mapped = FINISH_REASONS.get(gemini_reason or "STOP", "stop")
    return "tool_calls" if mapped == "stop" and has_tool_calls else mapped


def usage_from(meta: object) -> Usage | None:
    if not isinstance(meta, dict):
        return None

    def n(key: str) -> int:
        v = meta.get(key)
        return v if isinstance(v, int) and plausible_count(v) else 0

    thoughts = n("thoughtsTokenCount")
    # a count sent as something else ("12", null, true, -3, 10**30): Router One counts it (Usage.filled_from);
    # the thoughts are a part of the completion (billed), the tool-use prompt of the prompt, so one of
    # those unreadable makes its total unreadable (it was taken as 0: the thinking billed for nothing)
    unreadable = tuple(dict.fromkeys(
        name for key, name in (("promptTokenCount", "prompt_tokens"), ("toolUsePromptTokenCount", "prompt_tokens"),
                               ("candidatesTokenCount", "completion_tokens"), ("thoughtsTokenCount", "completion_tokens"))
        if key in meta and not (isinstance(meta[key], int) and plausible_count(meta[key]))))
    return Usage(prompt_tokens=n("promptTokenCount") + n("toolUsePromptTokenCount"),
                 completion_tokens=n("candidatesTokenCount") + thoughts,
                 cached_tokens=n("cachedContentTokenCount"), reasoning_tokens=thoughts, unreadable=unreadable)


def join_call_id(call_id: str, signature: str | None) -> str:
    return f"{call_id}{SIGNATURE_SEPARATOR}{signature}" if signature else call_id


def split_call_id(call_id: str) -> tuple[str, str | None]:
    base, sep, signature = call_id.partition(SIGNATURE_SEPARATOR)
    return (base, signature) if sep and signature else (call_id, None)


def _tool_call(part: dict) -> dict:
    fc = part["functionCall"]
    call_id = fc.get("id") if isinstance(fc.get("id"), str) and fc["id"] else f"call_{uuid.uuid4().hex[:24]}"
    args = fc.get("args") if isinstance(fc.get("args"), dict) else {}
    return {"id": join_call_id(call_id, part.get("thoughtSignature")), "type": "function",
            "function": {"name": str(fc.get("name", "")), "arguments": orjson.dumps(args).decode()}}


def split_parts(candidate: dict) -> tuple[str | None, list[dict], str]:
    """The candidate's visible text (None if it has no text part), its tool calls and its thought
    text ("" if none)."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        if part.get("thought") is True:
            if isinstance(part.get("text"), str):
                thoughts.append(part["text"])
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("functionCall"), dict):
            calls.append(_tool_call(part))
    return ("".join(texts) if texts else None), calls, "".join(thoughts)


def _token_logprob(c: dict) -> dict:
    token = str(c.get("token", ""))
    return {"token": token, "logprob": float(c.get("logProbability", 0.0)), "bytes": list(token.encode())}


def logprobs_from(candidate: dict) -> dict | None:
    result = candidate.get("logprobsResult")
    if not isinstance(result, dict):
        return None
    chosen = result.get("chosenCandidates") or []
    tops = result.get("topCandidates") or []
    content = []
    for i, c in enumerate(chosen):
        top = tops[i].get("candidates") or [] if i < len(tops) and isinstance(tops[i], dict) else []
        content.append({**_token_logprob(c), "top_logprobs": [_token_logprob(t) for t in top]})
    return {"content": content, "refusal": None}


def candidate_index(candidate: dict) -> int:
    """proto3 JSON omits zero values, so a missing `index` is candidate 0."""
    idx = candidate.get("index")
    return idx if isinstance(idx, int) and not isinstance(idx, bool) else 0


def _choice(candidate: dict, index: int) -> dict:
    text, calls, thoughts = split_parts(candidate)
    message: dict = {"role": "assistant", "content": text, "refusal": None}
    if thoughts:
        message["reasoning_content"] = thoughts
    if calls:
        message["tool_calls"] = calls
    return {"index": index, "message": message,
            "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
            "logprobs": logprobs_from(candidate)}


def blocked_choice() -> dict:
    return {"index": 0, "message": {"role": "assistant", "content": None, "refusal": None},
            "finish_reason": "content_filter", "logprobs": None}


def completion_id(resp: dict) -> str:
    rid = resp.get("responseId")
    return f"chatcmpl-{rid}" if isinstance(rid, str) and rid else f"chatcmpl-{uuid.uuid4().hex[:24]}"


def parse_response(body: bytes, dep: Deployment) -> ProviderResult:
    provider = dep.vendor.name
    try:
        resp = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable("Gemini returned a body that is not JSON", provider=provider) from None
    if not isinstance(resp, dict):
        raise UpstreamUnavailable("Gemini returned an unexpected response", provider=provider)
    candidates = [c for c in resp.get("candidates") or () if isinstance(c, dict)]
    blocked = (resp.get("promptFeedback") or {}).get("blockReason")
    if candidates:
        indices = [candidate_index(c) for c in candidates]
        if len(set(indices)) < len(indices):   # not proto-conformant: fall back to positions
            indices = list(range(len(candidates)))
        choices = sorted((_choice(c, i) for c, i in zip(candidates, indices)), key=lambda ch: ch["index"])
    elif blocked:
        choices = [blocked_choice()]
    else:
        raise UpstreamUnavailable("Gemini returned no candidates", provider=provider)
    usage = usage_from(resp.get("usageMetadata"))
    out = {"id": completion_id(resp), "object": "chat.completion", "created": int(time.time()),
           "model": resp.get("modelVersion") or dep.upstream_model, "choices": choices}
    if usage is not None:
        out["usage"] = usage.to_openai()
    return ProviderResult(out, usage)

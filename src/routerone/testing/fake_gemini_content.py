"""What the fake Gemini answers: request checks, the reply plan, response events, Google error bodies.

Kept apart from `fake_gemini` (the HTTP shell) so the shapes can be read in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

__all__ = ["Plan", "check_request", "google_error", "last_user_text", "reply_plan", "response_events"]

_WORDS = ("Hello", "!", " This", " is", " a", " reply", " from", " the", " fake", " Gemini", " upstream", ".")
_REQUEST_FIELDS = {"contents", "systemInstruction", "tools", "toolConfig", "safetySettings", "generationConfig",
                   "cachedContent", "serviceTier", "store", "model"}
_GENERATION_FIELDS = {"_responseJsonSchema", "candidateCount", "enableAffectiveDialog", "enableEnhancedCivicAnswers",
                      "frequencyPenalty", "imageConfig", "logprobs", "maxOutputTokens", "mediaResolution",
                      "presencePenalty", "responseFormat", "responseJsonSchema", "responseLogprobs",
                      "responseMimeType", "responseModalities", "responseSchema", "seed", "speechConfig",
                      "stopSequences", "temperature", "thinkingConfig", "topK", "topP", "translationConfig"}
_PART_DATA = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
              "codeExecutionResult", "toolCall", "toolResponse"}
_PART_FIELDS = _PART_DATA | {"thought", "thoughtSignature", "videoMetadata", "mediaResolution", "partMetadata"}
_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    403: ("PERMISSION_DENIED", "The caller does not have permission."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report in "
                      "https://developers.generativeai.google/guide/troubleshooting"),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_FAKE_SIGNATURE = "ZmFrZS10aG91Z2h0LXNpZ25hdHVyZQ=="


def google_error(status: int, message: str | None = None, *, reason: str | None = None,
                 retry_delay_s: float | None = None) -> web.Response:
    rpc, default = _STATUS.get(status, ("UNKNOWN", "Unknown error."))
    err: dict[str, Any] = {"code": status, "message": message or default, "status": rpc}
    details: list[dict] = []
    if reason:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                        "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}})
    if status == 429:
        details.append({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
             "quotaId": "GenerateRequestsPerMinutePerProjectPerModel", "quotaValue": "10"}]})
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{retry_delay_s if retry_delay_s is not None else 1:g}s"})
    if details:
        err["details"] = details
    return web.Response(status=status, body=orjson.dumps({"error": err}), content_type="application/json")


def _text_of(content: Any) -> list[str]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p["text"] for p in parts or () if isinstance(p, dict) and isinstance(p.get("text"), str)]


def last_user_text(body: dict) -> str:
    for content in reversed(body.get("contents") or ()):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            return " ".join(_text_of(content))
    return ""


def _check_part(part: Any, where: str) -> str | None:
    if not isinstance(part, dict):
        return f"* {where}: must be an object"
    unknown = set(part) - _PART_FIELDS
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at \'{where}\': Cannot find field.'
    if len(set(part) & _PART_DATA) != 1:
        return f"* {where}.data: required oneof field 'data' must have one initialized field"
    fc, fr = part.get("functionCall"), part.get("functionResponse")
    if fc is not None and not (isinstance(fc, dict) and fc.get("name")):
        return f"* {where}.function_call.name: Name cannot be empty."
    if fr is not None and not (isinstance(fr, dict) and fr.get("name") and isinstance(fr.get("response"), dict)):
        return f"* {where}.function_response: name and an object response are required."
    return None


def check_request(body: Any) -> str | None:
    """Google's message for the first problem, or None."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received. Expected an object."
    unknown = set(body) - _REQUEST_FIELDS
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}": Cannot find field.'
    unknown = set(body.get("generationConfig") or {}) - _GENERATION_FIELDS
    if unknown:
        return (f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at \'generation_config\': '
                "Cannot find field.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for i, content in enumerate(contents):
        if not isinstance(content, dict) or content.get("role", "user") not in ("user", "model"):
            return "Please use a valid role: user, model."
        if not content.get("parts"):
            return f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
        for j, part in enumerate(content["parts"]):
            problem = _check_part(part, f"contents[{i}].parts[{j}]")
            if problem:
                return problem
    return None


def _sample(schema: Any) -> Any:
    """A value fitting a Gemini `Schema` (uppercase types) or a JSON Schema (lowercase)."""
    if not isinstance(schema, dict):
        return "fake"
    if schema.get("anyOf"):
        return _sample(schema["anyOf"][0])
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "")).upper()
    if kind == "OBJECT" or "properties" in schema:
        return {k: _sample(v) for k, v in (schema.get("properties") or {}).items()}
    if kind == "ARRAY":
        return [_sample(schema.get("items"))]
    return {"INTEGER": 1, "NUMBER": 1.5, "BOOLEAN": True, "NULL": None}.get(kind, "fake")


# the thought text (includeThoughts), as the real API sends it: a bolded heading, then prose; streamed
# as one `thought: true` part per piece, before any answer part
FAKE_THOUGHT_PIECES = ("**Thinking it through**\n", "The fake considers ", "the request.")
FAKE_THOUGHT = "".join(FAKE_THOUGHT_PIECES)


@dataclass
class Plan:
    candidates: int = 1
    pieces: list[str] = field(default_factory=list)    # text, one piece per token / SSE event
    calls: list[dict] = field(default_factory=list)    # functionCall parts
    finish: str = "STOP"
    blocked: bool = False
    thought: tuple[str, ...] = ()     # thought text pieces (one SSE event each)
    prompt_tokens: int = 1
    cached_tokens: int = 0
    thoughts_tokens: int = 0


def _prompt_tokens(body: dict) -> int:
    words = 0
    for content in [*(body.get("contents") or ()), body.get("systemInstruction") or {}]:
        parts = content.get("parts") if isinstance(content, dict) else None
        for p in parts or ():
            words += len(p["text"].split()) if isinstance(p, dict) and isinstance(p.get("text"), str) else 1
    return max(1, words)


def _calls(body: dict, want: int, opts: Any) -> list[dict]:
    decls = [d for t in body.get("tools") or () for d in t.get("functionDeclarations") or ()]
    fcc = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    last = (body.get("contents") or [{}])[-1]
    answered = any("functionResponse" in p for p in last.get("parts") or () if isinstance(p, dict))
    if not decls or fcc.get("mode") == "NONE" or answered:
        return []
    allowed = [d for d in decls if d["name"] in (fcc.get("allowedFunctionNames") or ())] or decls
    parts = []
    for k in range(want):
        d = allowed[k % len(allowed)]
        args = _sample(d.get("parameters") or d.get("parametersJsonSchema") or {"type": "OBJECT"})
        call = {"name": d["name"], "args": args if isinstance(args, dict) else {}}
        if opts.call_ids:
            call["id"] = f"fc_{k}_{d['name']}"
        part: dict = {"functionCall": call}
        if opts.thought_signatures:
            part["thoughtSignature"] = _FAKE_SIGNATURE
        parts.append(part)
    return parts


def _pieces(body: dict, d: dict, opts: Any) -> list[str]:
    config = body.get("generationConfig") or {}
    last = (body.get("contents") or [{}])[-1]
    replies = [p["functionResponse"] for p in last.get("parts") or () if isinstance(p, dict) and "functionResponse" in p]
    if replies:
        return [w + " " for w in ("Thanks!", "The", "tool", "said:")] + [orjson.dumps(replies[0]["response"]).decode()]
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseSchema") or config.get("responseJsonSchema") or config.get("_responseJsonSchema")
        text = orjson.dumps(_sample(schema) if schema else {"answer": "fake"}).decode()
        return [text[i:i + 8] for i in range(0, len(text), 8)]
    if config.get("responseMimeType") == "text/x.enum":
        return [str(_sample(config.get("responseSchema")))]
    n = d.get("words", opts.reply_words)
    return [_WORDS[i % len(_WORDS)] for i in range(n)]


def _apply_limits(pieces: list[str], config: dict) -> tuple[list[str], str]:
    stops = [s for s in config.get("stopSequences") or () if s]
    text, kept = "", []
    for piece in pieces:
        joined = text + piece
        cut = min((joined.find(s) for s in stops if s in joined), default=-1)
        if cut >= 0:
            if joined[len(text):cut]:
                kept.append(joined[len(text):cut])
            break
        kept.append(piece)
        text = joined
    limit = config.get("maxOutputTokens")
    if isinstance(limit, int) and len(kept) > limit:
        return kept[:limit], "MAX_TOKENS"
    return kept, "STOP"


def reply_plan(body: dict, d: dict, opts: Any) -> Plan:
    config = body.get("generationConfig") or {}
    prompt = _prompt_tokens(body)
    plan = Plan(candidates=max(1, int(config.get("candidateCount") or 1)), prompt_tokens=prompt,
                cached_tokens=min(prompt, d.get("cached", opts.cached_tokens)),
                thoughts_tokens=d.get("thoughts", opts.thoughts_tokens), blocked=bool(d.get("block")))
    thinking = config.get("thinkingConfig") or {}
    if thinking.get("thinkingBudget") == 0:       # thinking off: no thoughts, none counted (as Google)
        plan.thoughts_tokens = 0
    if plan.thoughts_tokens and thinking.get("includeThoughts"):
        plan.thought = FAKE_THOUGHT_PIECES
    if d.get("safety"):
        plan.finish = "SAFETY"
        return plan
    plan.calls = _calls(body, d.get("tools", opts.parallel_calls), opts)
    if not plan.calls:
        plan.pieces, plan.finish = _apply_limits(_pieces(body, d, opts), config)
    return plan


def _usage(plan: Plan, candidates_tokens: int) -> dict:
    u: dict[str, Any] = {"promptTokenCount": plan.prompt_tokens,
                         "promptTokensDetails": [{"modality": "TEXT", "tokenCount": plan.prompt_tokens}]}
    if candidates_tokens:
        u["candidatesTokenCount"] = candidates_tokens
    if plan.thoughts_tokens:
        u["thoughtsTokenCount"] = plan.thoughts_tokens
    if plan.cached_tokens:
        u["cachedContentTokenCount"] = plan.cached_tokens
        u["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.cached_tokens}]
    u["totalTokenCount"] = plan.prompt_tokens + candidates_tokens + plan.thoughts_tokens
    return u


def _candidates(plan: Plan, parts: list[dict], finished: bool) -> list[dict]:
    out = []
    for i in range(plan.candidates):
        cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}} if parts else {}
        if finished:
            cand["finishReason"] = plan.finish
            if plan.finish == "SAFETY":
                cand["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
                                          "blocked": True}]
        cand["index"] = i
        out.append(cand)
    return out


def response_events(plan: Plan, *, model_version: str, response_id: str, stream: bool) -> list[dict]:
    """The whole answer as one `GenerateContentResponse`, or as the SSE events of a stream."""
    meta = {"modelVersion": model_version, "responseId": response_id}
    if plan.blocked:
        return [{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]},
            "usageMetadata": _usage(plan, 0), **meta}]
    total = plan.candidates * (len(plan.pieces) + 5 * len(plan.calls))
    if not stream:
        text = [{"text": "".join(plan.pieces)}] if plan.pieces else []
        thought = [{"text": "".join(plan.thought), "thought": True}] if plan.thought else []
        return [{"candidates": _candidates(plan, thought + text + plan.calls, True),
                 "usageMetadata": _usage(plan, total), **meta}]
    steps = ([[{"text": t, "thought": True}] for t in plan.thought] + [[{"text": p}] for p in plan.pieces]
             + ([plan.calls] if plan.calls else []))
    steps = steps or [[]]
    events, emitted = [], 0
    for k, parts in enumerate(steps):
        emitted += plan.candidates * sum(1 if "text" in p and not p.get("thought") else 5 if "functionCall" in p else 0
                                         for p in parts)
        last = k == len(steps) - 1
        events.append({"candidates": _candidates(plan, parts, last), "usageMetadata": _usage(plan, emitted), **meta})
    return events

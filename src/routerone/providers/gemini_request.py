"""OpenAI chat request -> Gemini `GenerateContentRequest` body (sans-I/O).

Messages:
- `system`/`developer` (any position) -> `systemInstruction.parts`, one text part per message part.
- `user` -> role `user`; `assistant` -> role `model`; consecutive turns of the same Gemini role are
  merged into one `Content` (parallel tool results, tool results followed by user text).
- `image_url`: `data:` URL -> `inlineData`; http(s)/gs URL -> `fileData {fileUri, mimeType}` (Gemini
  fetches it; mimeType guessed from the path, else `image/jpeg`); `detail` has no equivalent (dropped).
- `input_audio` -> `inlineData audio/wav|audio/mp3`; `file.file_data` -> `inlineData` (mime from the
  data URL or filename, else PDF); `file.file_id` -> 400 (no cross-provider file store).
- assistant `tool_calls` -> `functionCall {id, name, args}` (+ `thoughtSignature` carried in the id);
  `tool` messages -> `functionResponse {id, name, response}`, `name` found from the matching earlier
  tool call; `response` is the content if it is a JSON object, else `{"result": <JSON value or text>}`.
- message `name` fields have no Gemini equivalent (dropped).
Parameters: `MAPPED_PARAMS` are translated (`_generation_config`, `gemini_tools`); `DROPPED_PARAMS`
are pure hints (bookkeeping, caching, routing) and ignored; `REJECTED_PARAMS` and any other key are
rejected with `UnsupportedParameter` naming it (they would change the output and Gemini cannot), as
the Anthropic adapter does: nothing the caller asks for is silently lost.
"""
from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..errors import InvalidRequest, UnsupportedParameter
from ..wire.chat import ChatRequest
from .gemini_jsonschema import to_gemini_schema
from .gemini_response import split_call_id
from .gemini_tools import tool_config, tools

__all__ = ["build_body", "MAPPED_PARAMS", "REJECTED_PARAMS", "DROPPED_PARAMS", "THINKING_BUDGET_TOKENS"]

MAPPED_PARAMS = frozenset({
    "model", "messages", "stream", "temperature", "top_p", "top_k", "n", "presence_penalty",
    "frequency_penalty", "max_tokens", "max_completion_tokens", "stop", "seed", "logprobs", "top_logprobs",
    "response_format", "reasoning_effort", "tools", "tool_choice", "functions", "function_call",
    "service_tier", "modalities", "parallel_tool_calls"})

REJECTED_PARAMS = {
    "logit_bias": "Gemini has no token-level logit bias",
    "audio": "Gemini chat output is text only",
    "web_search_options": "web search is not available through the Gemini adapter",
    "verbosity": "Gemini has no verbosity control",
    "moderation": "Gemini has no moderation pass to report",
}
DROPPED_PARAMS = ("user", "metadata", "store", "safety_identifier", "prompt_cache_key",
                  "prompt_cache_retention", "prompt_cache_options", "stream_options", "prediction",
                  "models", "route")   # the last two: Router One's own
# reasoning_effort -> thinkingConfig.thinkingBudget (accepted by Gemini 2.5 and 3; thinkingLevel
# is rejected by models before Gemini 3, per the discovery document).
THINKING_BUDGET_TOKENS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576,
                          "xhigh": 32768, "max": 32768}
_NO_OP = {"verbosity": "medium"}   # the default: asking for it changes nothing
_SERVICE_TIERS = {"auto": None, "default": "standard", "flex": "flex", "priority": "priority"}
_INT32_MAX = 2**31 - 1


def build_body(req: ChatRequest) -> dict:
    body = req.body
    _reject_unsupported(body)
    system, contents = _Messages().convert(req.messages)
    if not contents:
        raise InvalidRequest("'messages' needs at least one non-system message with content for Gemini",
                             param="messages")
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    declared, names = tools(body)
    if declared:
        out["tools"] = declared
    config = tool_config(body, names)
    if config:
        out["toolConfig"] = config
    generation = _generation_config(req)
    if generation:
        out["generationConfig"] = generation
    tier = body.get("service_tier")
    if tier is not None and tier not in _SERVICE_TIERS:
        raise UnsupportedParameter(f"'service_tier' {tier!r} has no Gemini equivalent (auto, default, flex, "
                                   "priority)", param="service_tier")
    tier = _SERVICE_TIERS.get(tier or "auto")
    if tier:
        out["serviceTier"] = tier
    return out


def _reject_unsupported(body: dict) -> None:
    for key, value in body.items():
        if value is not None and key not in MAPPED_PARAMS and key not in DROPPED_PARAMS \
                and key not in REJECTED_PARAMS:
            raise UnsupportedParameter(f"'{key}' is not supported by Gemini models: unknown parameter (only "
                                       "OpenAI chat parameters and top_k are accepted)", param=key)
    for key, why in REJECTED_PARAMS.items():
        if body.get(key) not in (None, {}, [], _NO_OP.get(key)):
            raise UnsupportedParameter(f"'{key}' is not supported by Gemini models: {why}", param=key)
    if body.get("parallel_tool_calls") is False and (body.get("tools") or body.get("functions")):
        raise UnsupportedParameter("'parallel_tool_calls' false is not supported by Gemini models: they may "
                                   "call several tools at once", param="parallel_tool_calls")
    modalities = body.get("modalities")
    if isinstance(modalities, list) and any(m != "text" for m in modalities):
        raise UnsupportedParameter("'modalities' other than 'text' are not supported by Gemini models",
                                   param="modalities")


def _text_parts(content: Any) -> list[dict]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    out = []
    for p in content or ():
        text = p.get("text") if p.get("type") == "text" else p.get("refusal")
        if isinstance(text, str) and text:
            out.append({"text": text})
    return out


def _data_url(url: str, param: str) -> dict:
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise InvalidRequest(f"'{param}' must be a base64 data URL (data:<mime>;base64,<data>)", param=param)
    mime = head[len("data:"):-len(";base64")].split(";")[0] or "application/octet-stream"
    return {"inlineData": {"mimeType": mime, "data": data}}


def _image(part: dict, param: str) -> dict:
    url = part["image_url"]["url"]
    if url.startswith("data:"):
        return _data_url(url, param)
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https", "gs"):
        raise InvalidRequest(f"'{param}' must be an http(s) URL or a data URL", param=param)
    mime = mimetypes.guess_type(urlsplit(url).path)[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _file(part: dict, param: str) -> dict:
    f = part.get("file") or {}
    if f.get("file_id"):
        raise UnsupportedParameter(f"'{param}.file.file_id' cannot be resolved by Gemini; send 'file_data'",
                                   param=f"{param}.file.file_id")
    data = f.get("file_data")
    if not isinstance(data, str) or not data:
        raise InvalidRequest(f"'{param}.file.file_data' is required", param=f"{param}.file.file_data")
    if data.startswith("data:"):
        return _data_url(data, f"{param}.file.file_data")
    mime = mimetypes.guess_type(str(f.get("filename") or ""))[0] or "application/pdf"
    return {"inlineData": {"mimeType": mime, "data": data}}


def _user_parts(content: Any, i: int) -> list[dict]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    out: list[dict] = []
    for j, p in enumerate(content or ()):
        param, kind = f"messages[{i}].content[{j}]", p.get("type")
        if kind == "text":
            out.extend(_text_parts([p]))
        elif kind == "image_url":
            out.append(_image(p, f"{param}.image_url.url"))
        elif kind == "input_audio":
            audio = p.get("input_audio") or {}
            fmt = audio.get("format")
            if fmt not in ("wav", "mp3") or not isinstance(audio.get("data"), str):
                raise InvalidRequest(f"'{param}.input_audio' needs base64 'data' and format wav or mp3",
                                     param=f"{param}.input_audio")
            out.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": audio["data"]}})
        elif kind == "file":
            out.append(_file(p, param))
        else:
            raise UnsupportedParameter(f"'{param}.type' {kind!r} is not supported by Gemini", param=f"{param}.type")
    return out


def _arguments(raw: Any, param: str) -> dict:
    if raw in (None, ""):
        return {}
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"'{param}' is not valid JSON", param=param) from None
    if not isinstance(args, dict):
        raise InvalidRequest(f"'{param}' must be a JSON object for Gemini", param=param)
    return args


def _tool_response(content: Any) -> dict:
    text = content if isinstance(content, str) else "".join(
        p.get("text", "") for p in content or () if isinstance(p, dict))
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


class _Messages:
    """One pass over the messages, remembering tool-call names for the tool results that follow."""

    def __init__(self) -> None:
        self.call_names: dict[str, str] = {}
        self.system: list[dict] = []
        self.contents: list[dict] = []

    def convert(self, messages: list[dict]) -> tuple[list[dict], list[dict]]:
        for i, m in enumerate(messages):
            role = m["role"]
            if role in ("system", "developer"):
                self.system.extend(_text_parts(m.get("content")))
            elif role == "user":
                self._add("user", _user_parts(m.get("content"), i))
            elif role == "assistant":
                self._add("model", self._assistant(m, i))
            elif role == "tool":
                self._add("user", [self._tool_result(m, i)])
            elif role == "function":
                if not m.get("name"):
                    raise InvalidRequest(f"'messages[{i}].name' is required", param=f"messages[{i}].name")
                self._add("user", [{"functionResponse": {"name": m["name"],
                                                         "response": _tool_response(m.get("content"))}}])
        return self.system, self.contents

    def _add(self, role: str, parts: list[dict]) -> None:
        if not parts:
            return
        if self.contents and self.contents[-1]["role"] == role:
            self.contents[-1]["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": parts})

    def _assistant(self, m: dict, i: int) -> list[dict]:
        parts = _text_parts(m.get("content"))
        if not parts and isinstance(m.get("refusal"), str) and m["refusal"]:
            parts.append({"text": m["refusal"]})
        for j, tc in enumerate(m.get("tool_calls") or ()):
            param = f"messages[{i}].tool_calls[{j}]"
            if tc.get("type", "function") != "function":
                raise UnsupportedParameter(f"'{param}.type' must be 'function' for Gemini", param=f"{param}.type")
            fn = tc["function"]
            call_id, signature = split_call_id(tc["id"])
            part: dict = {"functionCall": {"id": call_id, "name": fn["name"],
                                           "args": _arguments(fn.get("arguments"), f"{param}.function.arguments")}}
            if signature:
                part["thoughtSignature"] = signature
            parts.append(part)
            self.call_names[tc["id"]] = fn["name"]
        fc = m.get("function_call")
        if isinstance(fc, dict) and fc.get("name"):
            parts.append({"functionCall": {"name": fc["name"], "args": _arguments(
                fc.get("arguments"), f"messages[{i}].function_call.arguments")}})
        return parts

    def _tool_result(self, m: dict, i: int) -> dict:
        call_id = m.get("tool_call_id")
        name = self.call_names.get(call_id) if isinstance(call_id, str) else None
        if name is None:
            raise InvalidRequest(f"'messages[{i}].tool_call_id' {call_id!r} does not match a tool call in an "
                                 "earlier assistant message", param=f"messages[{i}].tool_call_id")
        return {"functionResponse": {"id": split_call_id(call_id)[0], "name": name,
                                     "response": _tool_response(m.get("content"))}}


def _response_format(rf: Any, config: dict) -> None:
    kind = rf.get("type") if isinstance(rf, dict) else None
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
    elif kind == "json_schema":
        config["responseMimeType"] = "application/json"
        schema = (rf.get("json_schema") or {}).get("schema")
        if schema:
            config["responseSchema"] = to_gemini_schema(schema, param="response_format.json_schema.schema")


def _int32(body: dict, key: str) -> int | None:
    v = body.get(key)
    if v is not None and not -_INT32_MAX - 1 <= v <= _INT32_MAX:
        raise UnsupportedParameter(f"'{key}' must fit in 32 bits for Gemini", param=key)
    return v


def _generation_config(req: ChatRequest) -> dict:
    body, config = req.body, {}
    simple = {"temperature": "temperature", "top_p": "topP", "top_k": "topK", "n": "candidateCount",
              "presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty"}
    for src, dst in simple.items():
        if body.get(src) is not None:
            config[dst] = body[src]
    if req.max_tokens is not None:
        config["maxOutputTokens"] = req.max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    seed = _int32(body, "seed")
    if seed is not None:
        config["seed"] = seed
    if body.get("logprobs"):
        config["responseLogprobs"] = True
        if body.get("top_logprobs") is not None:
            config["logprobs"] = body["top_logprobs"]
    _response_format(body.get("response_format"), config)
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in THINKING_BUDGET_TOKENS:
            raise UnsupportedParameter(f"'reasoning_effort' {effort!r} has no Gemini equivalent",
                                       param="reasoning_effort")
        config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGET_TOKENS[effort]}
        if effort != "none":        # the thought text, returned as reasoning_content (never content)
            config["thinkingConfig"]["includeThoughts"] = True
    return config

"""Adapter for every vendor that speaks OpenAI's chat-completions protocol.

Pass-through by design: the caller's body goes upstream as sent, with the model id rewritten and
the vendor's renamed/dropped params applied (from `Vendor` data). Router-only fields are removed.
A param in the vendor's `refuse` list is a 400 naming it, unless its value asks for nothing
(`NEUTRAL_VALUES`: then it is removed like a dropped hint): the caller never gets an answer that
silently lacks what it asked for (logprobs, audio, a logit bias).
"""
from __future__ import annotations

from typing import Mapping

import orjson

from ..errors import UnsupportedParameter, UpstreamError, UpstreamUnavailable
from ..wire.chat import ChatRequest
from ..wire.types import Usage
from .base import Deployment, ProviderResult, SSEEvent, UpstreamRequest
from .status import error_for_status

__all__ = ["OpenAICompatAdapter", "auth_headers", "NEUTRAL_VALUES", "is_neutral"]

ROUTER_ONLY_FIELDS = ("models", "route")
# The values of a param that ask for nothing: accepted (and removed) where the param is refused.
NEUTRAL_VALUES: dict[str, tuple] = {
    "n": (1,), "logprobs": (False,), "top_logprobs": (0,), "logit_bias": ({},),
    "presence_penalty": (0,), "frequency_penalty": (0,), "modalities": (["text"],),
    "verbosity": ("medium",), "reasoning_effort": ("none",), "service_tier": ("auto", "default")}


def is_neutral(key: str, value) -> bool:
    """None, or a value of NEUTRAL_VALUES[key] (False is not 0 here, nor True 1)."""
    return value is None or any(value == v and isinstance(value, bool) == isinstance(v, bool)
                                for v in NEUTRAL_VALUES.get(key, ()))


def refuse_unsupported(body: dict, vendor) -> None:
    """Remove the vendor's refused params when neutral; raise for the first that is not."""
    for key in vendor.refuse:
        if key in body and not is_neutral(key, body[key]):
            raise UnsupportedParameter(f"'{key}' is not supported by {vendor.label or vendor.name}: its API has "
                                       "no equivalent", param=key)
    for key in vendor.refuse:
        body.pop(key, None)


def auth_headers(dep: Deployment) -> dict[str, str]:
    v = dep.vendor
    headers = {"Content-Type": "application/json", **v.headers}
    if v.api_key:
        if v.auth == "bearer":
            headers["Authorization"] = f"Bearer {v.api_key}"
        elif v.auth in ("api-key", "x-api-key", "x-goog-api-key"):
            headers[v.auth] = v.api_key
    return headers


def _url(dep: Deployment, path: str) -> str:
    v = dep.vendor
    url = v.base_url.rstrip("/") + path.replace("{model}", dep.upstream_model)
    if v.query:
        url += "?" + "&".join(f"{k}={val}" for k, val in v.query.items())
    return url


class OpenAICompatStream:
    __slots__ = ("usage", "done", "provider", "answered")
    quiet = False        # its chunks are judged themselves (services/stream_chunks.spec_chunk)

    def __init__(self, provider: str = "") -> None:
        self.usage: Usage | None = None
        self.done = False
        self.provider = provider
        self.answered = False      # a chunk with output was taken: an error now is a failure, not a refusal

    def feed(self, event: SSEEvent) -> list[dict]:
        return self.feed_data(event.data.encode())

    def feed_data(self, data: bytes) -> list[dict]:
        """One event's data (event names mean nothing in this protocol). Nothing after [DONE] is
        taken (it may come in the same read)."""
        if self.done:
            return []
        if data.startswith(b"[DONE]"):
            self.done = True
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            try:      # bytes that are not UTF-8 read as the SSE decoder reads them (U+FFFD), whichever path came here
                chunk = orjson.loads(data.decode("utf-8", "replace"))
            except orjson.JSONDecodeError:
                raise UpstreamUnavailable("upstream sent a malformed stream chunk") from None
        if not isinstance(chunk, dict):
            raise UpstreamUnavailable("upstream sent a malformed stream chunk")
        if chunk.get("error"):        # `"error": null` (or false, "", {}) says there is none, as the openai SDK reads it
            err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            status = None if self.answered else _stream_error_status(err)
            if status is not None:    # the server's own verdict: a refusal before any output is the 400 it is unstreamed
                raise error_for_status(status, str(err.get("message") or ""), provider=self.provider, headers={})
            raise UpstreamUnavailable(f"upstream stream error: {err.get('message', '')}".strip())
        usage = chunk.get("usage")
        reported = Usage.from_openai(usage) if usage else None     # None: absent, or not an object (5, [..], "x")
        if reported is not None:         # a usage that is not an object never replaces a valid one
            self.usage = reported
        if not chunk.get("choices"):
            return []
        if "_native" in chunk:     # Router One's key (an Anthropic upstream's own event, relayed as it came): never this upstream's
            del chunk["_native"]
        if (b"error" in data or b"\\u" in data) and _ends_in_error(chunk):     # (a name may come as escapes)
            # an OpenRouter-style error chunk without its error object: the answer failed, it did not end
            raise UpstreamUnavailable('upstream ended the answer with finish_reason "error"')
        if usage:
            chunk["usage"] = None
        if reported is None and self.usage is not None and "completion_tokens" not in self.usage.unreadable and _has_output(chunk):
            # output after the last usage report: that count was not the final one (an upstream that
            # reported once, early); Router One counts what was relayed (Usage.filled_from)
            self.usage.unreadable += ("completion_tokens",)
        self.answered = self.answered or _has_output(chunk, reasoning=True)
        return [chunk]


def _stream_error_status(err: dict) -> int | None:
    """The HTTP status an in-stream error event carries: TGI's `http_status_code` (422 for a request
    it will not take: router/src/infer/mod.rs into_openai_event), llama.cpp's and SGLang's integer
    `code` (server-common.cpp format_error_response; protocol.py ErrorResponse)."""
    for name in ("http_status_code", "code"):
        v = err.get(name)
        if type(v) is int and 400 <= v < 600:
            return v
    return None


def _ends_in_error(chunk: dict) -> bool:
    return any(ch.get("finish_reason") == "error" for ch in chunk["choices"] if isinstance(ch, dict))


def _has_output(chunk: dict, *, reasoning: bool = False) -> bool:
    """A content or tool-call delta; with `reasoning`, a reasoning one too (reasoning_content, or
    vLLM's and Ollama's `reasoning`)."""
    for ch in chunk["choices"]:
        d = ch.get("delta") if isinstance(ch, dict) else None
        d = d if isinstance(d, dict) else {}
        if d.get("content") or d.get("tool_calls") or (reasoning and (d.get("reasoning_content") or d.get("reasoning"))):
            return True
    return False


class OpenAICompatAdapter:
    protocol = "openai"

    def build_request(self, req: ChatRequest, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        req.refuse_native_only(dep.vendor.label or dep.vendor.name)
        body = dict(req.body)
        for k in ROUTER_ONLY_FIELDS:
            body.pop(k, None)
        body["model"] = dep.upstream_model
        v = dep.vendor
        refuse_unsupported(body, v)
        if stream:
            body["stream"] = True
            if v.stream_usage:
                body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        for old, new in v.rename.items():
            if old in body:
                val = body.pop(old)
                body.setdefault(new, val)
        for k in v.drop:
            body.pop(k, None)
        return UpstreamRequest(_url(dep, v.chat_path), auth_headers(dep), orjson.dumps(body))

    def parse_response(self, body: bytes, dep: Deployment) -> ProviderResult:
        try:
            resp = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamUnavailable("upstream returned a body that is not JSON", provider=dep.vendor.name) from None
        if not isinstance(resp, dict) or not isinstance(resp.get("choices"), list):
            raise UpstreamUnavailable("upstream returned an unexpected response", provider=dep.vendor.name)
        return ProviderResult(resp, Usage.from_openai(resp.get("usage")))

    def stream_translator(self, req: ChatRequest, dep: Deployment) -> OpenAICompatStream:
        return OpenAICompatStream(dep.vendor.name)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes,
                  dep: Deployment) -> UpstreamError:
        message, code = "", None
        try:
            doc = orjson.loads(body)
            err = doc.get("error")
            if isinstance(err, dict):
                message, code = str(err.get("message") or ""), err.get("code")
            elif isinstance(err, str):         # Ollama's native API, TGI (`error_type` beside it), LM Studio
                message = err
            elif doc.get("object") == "error" and isinstance(doc.get("message"), str):
                # SGLang, older vLLM and FastChat: the error object itself, at the top level
                message = doc["message"]
        except (orjson.JSONDecodeError, AttributeError):
            message = body[:200].decode("utf-8", "replace")
        return error_for_status(status, message, provider=dep.vendor.name, headers=headers,
                                upstream_code=code if isinstance(code, str) else None)

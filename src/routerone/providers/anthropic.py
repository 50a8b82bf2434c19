"""Adapter for Anthropic's Messages API (`POST {base_url}/v1/messages`), sans-I/O.

The translation lives in three modules: `anthropic_request` (OpenAI request -> Messages body, with the
per-parameter policy), `anthropic_response` (Message / error bodies -> OpenAI) and `anthropic_stream`
(SSE events -> chunks). This module wires them to the `ProviderAdapter` protocol.

Upstream errors keep their status semantics through `status.error_for_status`: 429 and 529 (-> 503
`upstream_overloaded`) and 5xx are retryable; 400/413 are the caller's and are not; 401/403 are
Router One's credentials and 404 the deployment's model name (502, another deployment is tried). A 400 "prompt is too long" carries `code: context_length_exceeded`.
"""
from __future__ import annotations

from typing import Mapping

import orjson

from ..errors import UpstreamError, UpstreamUnavailable
from ..wire.chat import ChatRequest
from .anthropic_request import DEFAULT_MAX_TOKENS, build_messages_body
from .anthropic_response import error_from_anthropic, message_to_completion, usage_from_anthropic, well_formed_message
from .anthropic_stream import AnthropicStream
from .base import Deployment, ProviderResult, UpstreamRequest
from .openai_compat import ROUTER_ONLY_FIELDS, auth_headers

__all__ = ["AnthropicAdapter", "ANTHROPIC_VERSION", "messages_url", "passes_through"]

ANTHROPIC_VERSION = "2023-06-01"


def passes_through(req: ChatRequest | None) -> bool:
    """The request arrived as Anthropic Messages: send its own body, relay the upstream's events."""
    return req is not None and req.protocol == "messages" and req.native is not None


def messages_url(dep: Deployment) -> str:
    """`base_url` may be given with or without the trailing `/v1`."""
    v = dep.vendor
    base = v.base_url.rstrip("/")
    url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
    if v.query:
        url += "?" + "&".join(f"{k}={val}" for k, val in v.query.items())
    return url


class AnthropicAdapter:
    """`default_max_tokens` is used when neither the caller nor the chat service set `max_tokens`."""

    protocol = "anthropic"

    def __init__(self, *, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.default_max_tokens = default_max_tokens

    def build_request(self, req: ChatRequest, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        headers = auth_headers(dep)
        if passes_through(req):
            return self._pass_through(req, dep, headers, stream=stream)
        body = build_messages_body(req, dep.upstream_model, stream=stream,
                                   default_max_tokens=self.default_max_tokens)
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        return UpstreamRequest(messages_url(dep), headers, orjson.dumps(body))

    @staticmethod
    def _pass_through(req: ChatRequest, dep: Deployment, headers: dict, *, stream: bool) -> UpstreamRequest:
        """A /v1/messages request goes upstream as the client sent it (model replaced), with its
        anthropic-version and anthropic-beta headers: cache_control, thinking signatures, server
        tools and beta fields survive, which a round trip through the chat shape would lose."""
        native = req.native or {}
        body = dict(native.get("body") or {})
        body["model"] = dep.upstream_model
        for key in ROUTER_ONLY_FIELDS:      # Router One's own (fallback models, strategy)
            body.pop(key, None)
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        headers.update(native.get("headers") or {})
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        return UpstreamRequest(messages_url(dep), headers, orjson.dumps(body))

    def parse_response(self, body: bytes, dep: Deployment) -> ProviderResult:
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamUnavailable("upstream returned a body that is not JSON", provider=dep.vendor.name) from None
        if not isinstance(msg, dict) or msg.get("type") != "message" or not isinstance(msg.get("content"), list) \
                or not well_formed_message(msg):
            raise UpstreamUnavailable("upstream returned an unexpected response", provider=dep.vendor.name)
        return ProviderResult(message_to_completion(msg), usage_from_anthropic(msg.get("usage")), native=msg)

    def stream_translator(self, req: ChatRequest, dep: Deployment) -> AnthropicStream:
        return AnthropicStream(provider=dep.vendor.name, native=passes_through(req))

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes,
                  dep: Deployment) -> UpstreamError:
        try:
            parsed = orjson.loads(body)
            error = parsed.get("error") if isinstance(parsed, dict) else parsed
        except orjson.JSONDecodeError:
            error = body[:200].decode("utf-8", "replace").strip() or None
        return error_from_anthropic(status, error, provider=dep.vendor.name, headers=headers)

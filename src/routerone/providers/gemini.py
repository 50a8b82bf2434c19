"""Adapter for Google's Gemini API (REST v1beta `generateContent` / `streamGenerateContent?alt=sse`).

Sans-I/O like every adapter: the translation lives in `gemini_request` (OpenAI request -> Gemini body),
`gemini_response` (body -> `chat.completion`), `gemini_stream` (SSE events -> chunks) and
`gemini_errors` (Google error bodies -> the error tree); this module wires them to the
`ProviderAdapter` protocol and owns the URL and headers.

URL: `{base_url}/models/{upstream_model}:generateContent`, or `:streamGenerateContent?alt=sse` when
streaming (a leading `models/` in the upstream id is tolerated). Auth: the vendor's `auth` style,
`x-goog-api-key` for Gemini.
"""
from __future__ import annotations

from typing import Mapping
from urllib.parse import quote, urlencode

import orjson

from ..errors import UpstreamError
from ..wire.chat import ChatRequest
from .base import Deployment, ProviderResult, UpstreamRequest
from .gemini_errors import map_gemini_error
from .gemini_request import build_body
from .gemini_response import parse_response
from .gemini_stream import GeminiStream
from .openai_compat import auth_headers

__all__ = ["GeminiAdapter", "gemini_url"]


def gemini_url(dep: Deployment, *, stream: bool) -> str:
    v = dep.vendor
    model = quote(dep.upstream_model.removeprefix("models/"), safe="-._~")
    method = "streamGenerateContent" if stream else "generateContent"
    query = {"alt": "sse", **v.query} if stream else dict(v.query)
    url = f"{v.base_url.rstrip('/')}/models/{model}:{method}"
    return f"{url}?{urlencode(query)}" if query else url


class GeminiAdapter:
    protocol = "gemini"

    def build_request(self, req: ChatRequest, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        req.refuse_native_only("Gemini")
        body = build_body(req)
        return UpstreamRequest(gemini_url(dep, stream=stream), auth_headers(dep), orjson.dumps(body))

    def parse_response(self, body: bytes, dep: Deployment) -> ProviderResult:
        return parse_response(body, dep)

    def stream_translator(self, req: ChatRequest, dep: Deployment) -> GeminiStream:
        n = req.body.get("n")
        return GeminiStream(dep.upstream_model, choices=n if isinstance(n, int) else 1,
                            provider=dep.vendor.name)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes,
                  dep: Deployment) -> UpstreamError:
        return map_gemini_error(status, headers, body, provider=dep.vendor.name)

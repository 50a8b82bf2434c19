"""Embeddings endpoints for the fake upstreams: OpenAI's `POST /v1/embeddings` (mounted by
fake_openai) and Gemini's `models/{model}:batchEmbedContents` (dispatched by fake_gemini).

Vectors are deterministic (seeded by the input text and model) and unit length, so a test can
check that the same text gives the same vector and that inputs kept their order. Requests are
checked as the real APIs check them (OpenAI: `CreateEmbeddingRequest`; Gemini: the batch's
`model` on every item, text parts only, at most 100 items) and recorded in the fake's `requests` list. A
`[[error:NNN]]` directive in the first input answers with that status.
"""
from __future__ import annotations

import hashlib
import re

import numpy as np
import orjson
from aiohttp import web

from ..tokens import count_text_tokens

__all__ = ["fake_vector", "openai_embeddings", "gemini_batch_embed", "OPENAI_DIMENSIONS"]

OPENAI_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
GEMINI_DIMENSIONS = 3072
GEMINI_BATCH_MAX = 100
_ERROR = re.compile(r"\[\[error:(\d+)\]\]")


def fake_vector(text: str, model: str, dims: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(f"{model}\0{text}".encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    return (v / np.linalg.norm(v)).tolist()


def _openai_error(status: int, message: str, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                      "param": param, "code": None}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def openai_embeddings(request: web.Request) -> web.Response:
    fake = request.app["fake"]
    if not fake.authorized(request):
        return _openai_error(401, "Incorrect API key provided")
    body = orjson.loads(await request.read())
    fake.requests.append(body)
    model, raw = body.get("model"), body.get("input")
    if not isinstance(model, str) or raw is None:
        return _openai_error(400, "'model' and 'input' are required")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        return _openai_error(400, "invalid encoding_format", "encoding_format")
    inputs = [raw] if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)) else raw
    texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in inputs]
    hit = _ERROR.search(texts[0]) if texts else None
    if hit:
        return _openai_error(int(hit.group(1)), f"fake upstream error {hit.group(1)}")
    dims = body.get("dimensions") or OPENAI_DIMENSIONS.get(model, 1536)
    data = [{"object": "embedding", "index": i, "embedding": fake_vector(t, model, dims)} for i, t in enumerate(texts)]
    tokens = sum(count_text_tokens(x) if isinstance(x, str) else len(x) for x in inputs)
    return web.Response(body=orjson.dumps({"object": "list", "data": data, "model": model,
                                           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
                        content_type="application/json")


def _google_error(status: int, message: str) -> web.Response:
    names = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
             500: "INTERNAL", 503: "UNAVAILABLE"}
    body = {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def gemini_batch_embed(model: str, body: object) -> web.Response:
    """The answer to `models/{model}:batchEmbedContents` (auth already checked by the caller)."""
    reqs = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(reqs, list) or not reqs:
        return _google_error(400, "* BatchEmbedContentsRequest.requests: at least one request is required")
    if len(reqs) > GEMINI_BATCH_MAX:
        return _google_error(400, f"* BatchEmbedContentsRequest.requests: at most {GEMINI_BATCH_MAX} requests "
                                  "can be in one batch")
    out = []
    for i, r in enumerate(reqs):
        if not isinstance(r, dict) or r.get("model") != f"models/{model}":
            return _google_error(400, f"* BatchEmbedContentsRequest.requests[{i}].model: must be models/{model}")
        parts = (r.get("content") or {}).get("parts")
        if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) and "text" in p for p in parts):
            return _google_error(400, f"* BatchEmbedContentsRequest.requests[{i}].content: text parts required")
        text = "".join(p["text"] for p in parts)
        hit = _ERROR.search(text) if i == 0 else None
        if hit:
            return _google_error(int(hit.group(1)), f"fake upstream error {hit.group(1)}")
        dims = r.get("outputDimensionality") or GEMINI_DIMENSIONS
        out.append({"values": fake_vector(text, model, dims)})
    return web.Response(body=orjson.dumps({"embeddings": out}), content_type="application/json")

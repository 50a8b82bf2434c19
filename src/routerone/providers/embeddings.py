"""Embeddings upstream requests and responses, per wire protocol (sans-I/O).

* OpenAI-compatible: `POST {base_url}/embeddings` with the input as given; vectors are always asked
  for as floats (not every compatible server speaks base64; Router One encodes them itself).
* Gemini: `POST {base_url}/models/{model}:batchEmbedContents`, one `EmbedContentRequest` per input
  text (`outputDimensionality` for `dimensions`), split into batches of GEMINI_BATCH_MAX sent side
  by side; token-id input has no Gemini form (400). Gemini
  reports no token usage for embeddings, so the caller counts the input itself.
Upstream errors go through each protocol's own error mapping (`adapter_for(...).map_error`).
"""
from __future__ import annotations

import dataclasses
from urllib.parse import quote, urlencode

import orjson

from ..errors import InvalidRequest, UpstreamUnavailable
from ..wire.embeddings import EmbeddingsRequest
from ..wire.types import plausible_count
from .base import Deployment, UpstreamRequest
from .openai_compat import auth_headers

__all__ = ["build_embeddings_requests", "build_embeddings_request", "parse_embeddings_response", "check_vectors",
           "EMBEDDING_PROTOCOLS", "GEMINI_BATCH_MAX"]

EMBEDDING_PROTOCOLS = ("openai", "gemini")
GEMINI_BATCH_MAX = 100      # batchEmbedContents refuses larger batches
FLOAT32_MAX = 3.4028234663852886e38      # the largest finite float32
_NUMBER = (int, float)                   # exactly (not bool)


def build_embeddings_requests(req: EmbeddingsRequest, dep: Deployment) -> list[tuple[UpstreamRequest, int]]:
    """The upstream calls for `req`, each with how many inputs it carries; their answers in order
    give one vector per input (Gemini takes at most GEMINI_BATCH_MAX items per batch; OpenAI all
    of Router One's MAX_INPUTS)."""
    if dep.vendor.protocol != "gemini":
        return [(build_embeddings_request(req, dep), len(req.inputs))]
    step = GEMINI_BATCH_MAX
    return [(build_embeddings_request(dataclasses.replace(req, inputs=req.inputs[i:i + step]), dep),
             len(req.inputs[i:i + step])) for i in range(0, len(req.inputs), step)]


def build_embeddings_request(req: EmbeddingsRequest, dep: Deployment) -> UpstreamRequest:
    v = dep.vendor
    if v.protocol == "gemini":
        if req.tokens_given:
            raise InvalidRequest(f"'{dep.model}' takes text input only, not token ids", param="input")
        name = "models/" + dep.upstream_model.removeprefix("models/")
        one: dict = {"model": name}
        if req.dimensions:
            one["outputDimensionality"] = req.dimensions
        body = {"requests": [{**one, "content": {"parts": [{"text": t}]}} for t in req.inputs]}
        url = f"{v.base_url.rstrip('/')}/{quote(name, safe='/-._~')}:batchEmbedContents"
        if v.query:
            url += "?" + urlencode(dict(v.query))
        return UpstreamRequest(url, auth_headers(dep), orjson.dumps(body))
    body = {"model": dep.upstream_model, "input": req.inputs if len(req.inputs) > 1 or not req.tokens_given
            else req.inputs[0], "encoding_format": "float"}
    if req.dimensions:
        body["dimensions"] = req.dimensions
    if req.user:
        body["user"] = req.user
    url = v.base_url.rstrip("/") + "/embeddings"
    if v.query:
        url += "?" + urlencode(dict(v.query))
    return UpstreamRequest(url, auth_headers(dep), orjson.dumps(body))


def _bad(dep: Deployment, what: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"upstream returned {what}", provider=dep.vendor.name)


def _vector(v: object, dep: Deployment) -> list[float]:
    """An embedding as numbers float32 holds (OpenAI's base64 is little-endian float32): a value
    beyond its range would be inf there; it is an invalid reply in either format (502, not charged)."""
    if not isinstance(v, list) or not v:
        raise _bad(dep, "an embedding that is not an array of numbers")
    if not all(x.__class__ in _NUMBER and -FLOAT32_MAX <= x <= FLOAT32_MAX for x in v):
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            raise _bad(dep, "an embedding that is not an array of numbers")
        raise _bad(dep, f"an embedding value beyond float32's range (±{FLOAT32_MAX:.7g})")
    return v


def check_vectors(vectors: list[list[float]], dimensions: int | None, dep: Deployment) -> None:
    """The vectors of one request are of one length, the `dimensions` asked for if any: a reply
    that mixes lengths (or ignores `dimensions`) would break the caller's index, so it is an
    upstream failure (502, not charged), never passed on."""
    lengths = {len(v) for v in vectors}
    if len(lengths) > 1:
        raise _bad(dep, f"embeddings of different lengths ({', '.join(map(str, sorted(lengths)[:3]))})")
    if dimensions is not None and lengths != {dimensions}:
        raise _bad(dep, f"{lengths.pop()}-dimension embeddings for {dimensions} dimensions asked for")


def parse_embeddings_response(body: bytes, n_inputs: int,
                              dep: Deployment) -> tuple[list[list[float]], int | None]:
    """One upstream answer for `n_inputs` inputs -> (one vector per input, in input order; the
    upstream's prompt token count, or None when it sent none or one that is not plausible (a bool,
    a fraction, negative, above MAX_REPORTED_TOKENS: `plausible_count`; 0, as every input has a
    token), for the caller to count)."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _bad(dep, "a body that is not JSON") from None
    if not isinstance(obj, dict):
        raise _bad(dep, "an unexpected response")
    if dep.vendor.protocol == "gemini":
        items = obj.get("embeddings")
        if not isinstance(items, list) or len(items) != n_inputs:
            raise _bad(dep, f"{len(items) if isinstance(items, list) else 'no'} embeddings for {n_inputs} inputs")
        vectors = [_vector((e or {}).get("values") if isinstance(e, dict) else None, dep) for e in items]
        meta = obj.get("usageMetadata")
        tokens = meta.get("promptTokenCount") if isinstance(meta, dict) else None
        return vectors, int(tokens) if plausible_count(tokens) and tokens > 0 else None
    data = obj.get("data")
    if not isinstance(data, list) or len(data) != n_inputs:
        raise _bad(dep, f"{len(data) if isinstance(data, list) else 'no'} embeddings for {n_inputs} inputs")
    index = [e.get("index", i) if isinstance(e, dict) else i for i, e in enumerate(data)]
    if not all(type(i) is int for i in index):
        raise _bad(dep, "an embedding whose index is not an integer")
    if sorted(index) != list(range(n_inputs)):    # each input's vector once: none lost, none twice
        raise _bad(dep, f"embeddings whose indexes are not 0..{n_inputs - 1}, each once")
    ordered = [e for _, e in sorted(zip(index, data), key=lambda pair: pair[0])]
    vectors = [_vector(e.get("embedding") if isinstance(e, dict) else None, dep) for e in ordered]
    usage = obj.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return vectors, int(tokens) if plausible_count(tokens) and tokens > 0 else None     # no input is 0 tokens

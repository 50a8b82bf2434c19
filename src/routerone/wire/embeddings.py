"""OpenAI `POST /v1/embeddings` requests and responses (sans-I/O).

Accepted input: a string, an array of strings, an array of token ids, or an array of token-id
arrays (OpenAI's four forms; at most 2048 items, none empty). `encoding_format` is `float`
(default) or `base64` (little-endian float32, as OpenAI sends it); `dimensions` >= 1 asks the
model for shorter vectors (only models that support it: the catalog says which).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ..errors import InvalidRequest

__all__ = ["EmbeddingsRequest", "parse_embeddings_request", "render_embeddings", "MAX_INPUTS"]

MAX_INPUTS = 2048


@dataclass(slots=True)
class EmbeddingsRequest:
    model: str
    inputs: list[str] | list[list[int]]     # one entry per vector to return
    tokens_given: bool                      # inputs are token ids, not text
    encoding_format: str = "float"
    dimensions: int | None = None
    user: str | None = None

    def text(self) -> str:
        return "\n".join(self.inputs) if not self.tokens_given else ""   # type: ignore[arg-type]

    def token_estimate(self) -> int:
        """Upper-leaning input tokens: bytes of text (every token is >= 1 byte), or the ids given."""
        if self.tokens_given:
            return sum(len(x) for x in self.inputs)
        return sum(len(s.encode()) for s in self.inputs)   # type: ignore[union-attr]


def _fail(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _is_ids(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in v)


def _inputs(raw: Any) -> tuple[list, bool]:
    if isinstance(raw, str):
        if not raw:
            raise _fail("input", "'input' must not be an empty string")
        return [raw], False
    if not isinstance(raw, list) or not raw:
        raise _fail("input", "'input' must be a string, an array of strings or an array of token arrays")
    if len(raw) > MAX_INPUTS:
        raise _fail("input", f"'input' may hold at most {MAX_INPUTS} items, got {len(raw)}")
    if all(isinstance(x, str) for x in raw):
        for i, x in enumerate(raw):
            if not x:
                raise _fail(f"input[{i}]", f"'input[{i}]' must not be an empty string")
        return list(raw), False
    if _is_ids(raw):
        return [raw], True
    if all(_is_ids(x) for x in raw):
        return list(raw), True
    raise _fail("input", "'input' must be a string, an array of strings, an array of token ids "
                         "or an array of non-empty token-id arrays")


def parse_embeddings_request(raw: bytes) -> EmbeddingsRequest:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise _fail("body", "The request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("model", "'model' is required and must be a string")
    if "input" not in body:
        raise _fail("input", "'input' is required")
    inputs, ids = _inputs(body["input"])
    fmt = body.get("encoding_format")
    fmt = "float" if fmt is None else fmt
    if fmt not in ("float", "base64"):
        raise _fail("encoding_format", "'encoding_format' must be 'float' or 'base64'")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise _fail("dimensions", "'dimensions' must be an integer >= 1")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _fail("user", "'user' must be a string")
    return EmbeddingsRequest(model, inputs, ids, fmt, dims, user)


def encode_vector(values: list[float], fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()
    return values


def render_embeddings(vectors: list[list[float]], *, model: str, fmt: str, prompt_tokens: int,
                      cost_micros: int) -> bytes:
    """`CreateEmbeddingResponse`, plus `usage.cost` in USD (Router One's charge)."""
    data = [{"object": "embedding", "index": i, "embedding": encode_vector(v, fmt)} for i, v in enumerate(vectors)]
    return orjson.dumps({"object": "list", "data": data, "model": model,
                         "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens,
                                   "cost": cost_micros / 1_000_000}})

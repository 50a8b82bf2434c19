"""wire/embeddings.py and providers/embeddings.py from fixture files (no server)."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from openai_schema import validate_openai
from routerone.errors import InvalidRequest, UpstreamUnavailable
from routerone.providers.base import Deployment, Vendor
from routerone.providers.embeddings import (GEMINI_BATCH_MAX, build_embeddings_request, build_embeddings_requests,
                                            parse_embeddings_response)
from routerone.wire.embeddings import parse_embeddings_request, render_embeddings

FIXTURES = Path(__file__).parent / "fixtures" / "embeddings"
VENDORS = {"openai": Vendor("openai", "openai", "https://api.openai.com/v1", api_key="sk-x"),
           "gemini": Vendor("gemini", "gemini", "https://generativelanguage.googleapis.com/v1beta",
                            auth="x-goog-api-key", api_key="g-x")}


@pytest.mark.parametrize("name", ["openai_batch", "gemini_batch"])
def test_upstream_request_and_response(name):
    fx = json.loads((FIXTURES / f"{name}.json").read_text())
    validate_openai(fx["request"], "CreateEmbeddingRequest")
    req = parse_embeddings_request(orjson.dumps(fx["request"]))
    vendor = VENDORS[name.split("_")[0]]
    dep = Deployment(fx["request"]["model"], vendor, fx["request"]["model"])
    up = build_embeddings_request(req, dep)
    assert up.url == fx["upstream_url"] and orjson.loads(up.body) == fx["upstream_body"]
    assert "sk-x" in up.headers.get("Authorization", "") or up.headers.get("x-goog-api-key") == "g-x"
    vectors, tokens = parse_embeddings_response(orjson.dumps(fx["upstream_response"]), len(req.inputs), dep)
    assert vectors == fx["vectors"] and tokens == fx["tokens"]


def test_rendered_response_floats_and_base64():
    floats = orjson.loads(render_embeddings([[0.5, -0.25]], model="m", fmt="float", prompt_tokens=3, cost_micros=7))
    validate_openai(floats, "CreateEmbeddingResponse")
    assert floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3, "cost": 7e-6}
    b64 = orjson.loads(render_embeddings([[0.5, -0.25]], model="m", fmt="base64", prompt_tokens=3, cost_micros=7))
    raw = base64.b64decode(b64["data"][0]["embedding"])
    assert np.frombuffer(raw, dtype="<f4").tolist() == [0.5, -0.25]


@pytest.mark.parametrize("body,param", [
    ({"input": "x"}, "model"), ({"model": "m"}, "input"), ({"model": "m", "input": ""}, "input"),
    ({"model": "m", "input": ["a", ""]}, "input[1]"), ({"model": "m", "input": [1, "a"]}, "input"),
    ({"model": "m", "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"model": "m", "input": "x", "dimensions": 0}, "dimensions"), ({"model": "m", "input": ["a"] * 2049}, "input"),
])
def test_request_errors_name_the_field(body, param):
    with pytest.raises(InvalidRequest) as info:
        parse_embeddings_request(orjson.dumps(body))
    assert info.value.param == param


def test_token_input_forms():
    one = parse_embeddings_request(b'{"model": "m", "input": [1, 2, 3]}')
    many = parse_embeddings_request(b'{"model": "m", "input": [[1, 2], [3]]}')
    assert (one.inputs, one.tokens_given, one.token_estimate()) == ([[1, 2, 3]], True, 3)
    assert (many.inputs, many.token_estimate()) == ([[1, 2], [3]], 3)
    dep = Deployment("m", VENDORS["openai"], "m")
    assert orjson.loads(build_embeddings_request(one, dep).body)["input"] == [1, 2, 3]
    with pytest.raises(InvalidRequest):
        build_embeddings_request(one, Deployment("g", VENDORS["gemini"], "g"))


def test_a_short_or_malformed_upstream_answer_is_an_upstream_error():
    req = parse_embeddings_request(b'{"model": "m", "input": ["a", "b"]}')
    dep = Deployment("m", VENDORS["openai"], "m")
    for body in (b'{"data": [{"index": 0, "embedding": [0.1]}]}', b'{"data": [{"embedding": "x"}, {"embedding": []}]}',
                 b"not json"):
        with pytest.raises(UpstreamUnavailable):
            parse_embeddings_response(body, len(req.inputs), dep)


def test_gemini_batches_are_split():
    req = parse_embeddings_request(orjson.dumps({"model": "g", "input": [f"t{i}" for i in range(250)]}))
    parts = build_embeddings_requests(req, Deployment("g", VENDORS["gemini"], "g"))
    assert [n for _, n in parts] == [GEMINI_BATCH_MAX, GEMINI_BATCH_MAX, 50]
    texts = [r["content"]["parts"][0]["text"] for up, _ in parts for r in orjson.loads(up.body)["requests"]]
    assert texts == [f"t{i}" for i in range(250)]
    assert len(build_embeddings_requests(req, Deployment("m", VENDORS["openai"], "m"))) == 1

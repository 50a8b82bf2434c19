"""Issue 14, /v1/embeddings end to end: the official `openai` SDK's `embeddings.create` -> a real Router
One -> the fake OpenAI-compatible and fake Gemini upstreams. Every response validates against
OpenAI's spec (`CreateEmbeddingResponse`, `ErrorResponse`)."""
from __future__ import annotations

import base64

import numpy as np
import openai
import pytest
from openai import OpenAI

from protocol_helpers import key, protocol_gateway, wait_usage_rows, wire  # noqa: F401 (fixtures)
from routerone.testing import fake_openai
from routerone.testing.fake_embeddings import fake_vector
from routerone.testing.fake_gemini import FakeGeminiServer
from routerone.testing.threaded import ThreadedServer
from routerone.tokens import count_text_tokens

OAI_KEY, GEM_KEY = "sk-oai-fake-0123456789", "gem-fake-key"
SMALL, GEM = "text-embedding-3-small", "gemini-embedding-001"


@pytest.fixture(scope="module")
def fakes():
    with ThreadedServer(lambda: fake_openai.make_app(api_key=OAI_KEY)) as oai, FakeGeminiServer(api_key=GEM_KEY) as gem:
        yield {"openai": oai, "gemini": gem}


@pytest.fixture
def gw(gateway, fakes):
    fakes["openai"].app["fake"].requests.clear()
    return protocol_gateway(gateway, fakes, {"openai": OAI_KEY, "gemini": GEM_KEY})


@pytest.fixture
def client(gw, key, wire):
    c = OpenAI(base_url=gw.base_url, api_key=key[0], max_retries=0, http_client=wire.client())
    yield c
    c.close()


TEXTS = ["The cat sat on the mat.", "Quantum chromodynamics", "naïve café ✓"]


@pytest.mark.parametrize("model", [SMALL, GEM])
def test_batch_floats_in_order_billed_on_input_tokens(gw, key, client, model):
    raw = client.embeddings.with_raw_response.create(model=model, input=TEXTS)
    resp = raw.parse()
    assert resp.model == model and [d.index for d in resp.data] == [0, 1, 2]
    dims = 1536 if model == SMALL else 3072
    for d, text in zip(resp.data, TEXTS):
        assert len(d.embedding) == dims
        assert np.allclose(d.embedding, fake_vector(text, model, dims), atol=1e-6)
    tokens = sum(count_text_tokens(t) for t in TEXTS)
    assert resp.usage.prompt_tokens == tokens == resp.usage.total_tokens
    price_per_mtok = 20_000 if model == SMALL else 150_000          # micro-dollars
    cost_micros = -(-tokens * price_per_mtok // 1_000_000)
    assert raw.headers["x-routerone-cost"] == f"{cost_micros / 1e6:.6f}"
    assert resp.usage.model_extra["cost"] == cost_micros / 1e6
    assert raw.headers["x-routerone-provider"] == ("openai" if model == SMALL else "gemini")
    rows = wait_usage_rows(gw, key[1], 1)
    assert [(r["protocol"], r["routed_model"], r["prompt_tokens"], r["cost_micros"]) for r in rows] == [
        ("embeddings", model, tokens, cost_micros)]
    assert gw.account(key[1])["balance_micros"] == 10_000_000 - cost_micros


@pytest.mark.parametrize("model", [SMALL, GEM])
def test_dimensions_and_base64(gw, key, client, fakes, model):
    # without encoding_format the SDK asks for base64 and decodes it itself
    resp = client.embeddings.create(model=model, input="hello world", dimensions=256)
    assert len(resp.data[0].embedding) == 256
    assert np.allclose(resp.data[0].embedding, fake_vector("hello world", model, 256), atol=1e-6)
    floats = client.embeddings.create(model=model, input="hello world", dimensions=256, encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(resp.data[0].embedding, abs=1e-6)
    b64 = client.embeddings.create(model=model, input="hello world", dimensions=8,
                                   encoding_format="base64").data[0].embedding
    assert isinstance(b64, str)
    assert np.allclose(np.frombuffer(base64.b64decode(b64), dtype="<f4"), fake_vector("hello world", model, 8), atol=1e-6)
    if model == GEM:
        sent = fakes["gemini"].requests[-1]["body"]["requests"][0]
        assert sent == {"model": f"models/{GEM}", "outputDimensionality": 8,
                        "content": {"parts": [{"text": "hello world"}]}}
    else:
        sent = fakes["openai"].app["fake"].requests[-1]
        assert sent["dimensions"] == 8 and sent["encoding_format"] == "float" and sent["input"] == ["hello world"]


def test_token_id_input_to_openai(gw, key, client, fakes):
    resp = client.embeddings.create(model=SMALL, input=[[1, 2, 3], [4, 5]])
    assert len(resp.data) == 2 and resp.usage.prompt_tokens == 5
    assert fakes["openai"].app["fake"].requests[-1]["input"] == [[1, 2, 3], [4, 5]]


def test_refusals(gw, wire, client):
    cases = [
        (dict(model="auto", input="x"), 400, "model"),
        (dict(model="gpt-4o", input="x"), 400, "model"),
        (dict(model="no-such-embedder", input="x"), 404, "model"),
        (dict(model="text-embedding-ada-002", input="x", dimensions=64), 400, "dimensions"),
        (dict(model=SMALL, input=""), 400, "input"),
        (dict(model=GEM, input=[[1, 2]]), 400, "input"),
    ]
    for kw, status, param in cases:
        with pytest.raises(openai.APIStatusError) as info:
            client.embeddings.create(**kw)
        assert info.value.status_code == status and info.value.body["param"] == param, (kw, info.value.body)
    poor = OpenAI(base_url=gw.base_url, api_key=gw.new_key(balance_micros=0)[0], max_retries=0,
                  http_client=wire.client())
    with pytest.raises(openai.APIStatusError) as info:
        poor.embeddings.create(model=SMALL, input="x")
    assert info.value.status_code == 402
    limited = OpenAI(base_url=gw.base_url, api_key=gw.new_key(allowed_models=["gpt-4o"])[0], max_retries=0,
                     http_client=wire.client())
    with pytest.raises(openai.PermissionDeniedError):
        limited.embeddings.create(model=SMALL, input="x")
    # an embedding model is a model an allowlist may name (the allowlist check knows them too)
    only_small = OpenAI(base_url=gw.base_url, api_key=gw.new_key(allowed_models=[SMALL])[0], max_retries=0,
                        http_client=wire.client())
    assert only_small.embeddings.create(model=SMALL, input="x").data


def test_an_input_longer_than_the_model_accepts_is_a_400_before_the_upstream(gw, key, client, fakes):
    before = len(fakes["openai"].app["fake"].requests)
    long_text = "hello world " * 9000                  # 18,000 tokens > 8,191 per input
    fits = "hello world " * 4000                       # 8,000 tokens: over the limit in bytes, not in tokens
    assert count_text_tokens(long_text) > 8191 >= count_text_tokens(fits) and len(fits) > 8191
    for bad in (long_text, ["short", long_text], [[1] * 8192]):
        with pytest.raises(openai.BadRequestError) as info:
            client.embeddings.create(model=SMALL, input=bad)
        assert info.value.body["code"] == "context_length_exceeded" and info.value.body["param"] == "input"
    assert len(fakes["openai"].app["fake"].requests) == before   # refused before any upstream call
    assert client.embeddings.create(model=SMALL, input=fits).usage.prompt_tokens == count_text_tokens(fits)


def test_upstream_error_releases_the_hold(gw, key, client):
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model=SMALL, input="[[error:429]] hi")
    assert gw.account(key[1])["balance_micros"] == 10_000_000
    rows = wait_usage_rows(gw, key[1], 1)
    assert rows[0]["protocol"] == "embeddings" and rows[0]["status"] == 429 and rows[0]["cost_micros"] == 0


def test_metrics_count_requests_by_route(gw, key, client):
    client.embeddings.create(model=SMALL, input="x")
    import urllib.request
    text = urllib.request.urlopen(gw.url + "/metrics").read().decode()
    assert 'routerone_route_requests_total{route="embeddings",status="200"} 1.0' in text


def test_large_gemini_batch_is_split_and_reassembled(gw, key, client, fakes):
    texts = [f"sentence number {i}" for i in range(230)]
    resp = client.embeddings.create(model=GEM, input=texts, dimensions=4)
    assert len(resp.data) == 230
    for i in (0, 99, 100, 229):
        assert np.allclose(resp.data[i].embedding, fake_vector(texts[i], GEM, 4), atol=1e-6)
    assert resp.usage.prompt_tokens == sum(count_text_tokens(t) for t in texts)

"""Streamed chat completions through the OpenAI SDK (sync and async) and as raw SSE: OpenAI chunk
framing, one id/created/model on every chunk, `[DONE]` at the end, and with
`stream_options.include_usage` a final chunk with empty choices, the whole usage and its cost, which
is what the ledger charged. Each test runs against both upstream clients: Router One's lean HTTP/1.1
client (plain-http upstreams, pushed streams) and aiohttp's (https upstreams, `upstream_http1 = false`)."""
from __future__ import annotations

import json

import httpx2
import pytest
from openai import OpenAI

from openai_schema import sse_payloads, validate_chunk

HELLO = [{"role": "user", "content": "Say hello"}]
REPLY = "Hello! This is a reply from the fake upstream. Ask"
OPENAI_MODELS = {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"}


@pytest.fixture(params=[True, False], ids=["http1", "aiohttp"])
def gw(request, gateway):
    return gateway(upstream_http1=request.param)


def ledger_charges(gw, account_id: int) -> list[dict]:
    return [e for e in gw.admin("GET", f"/admin/accounts/{account_id}/ledger")["data"] if e["kind"] == "charge"]


def raw_stream(openai_wire, gw, key: str, body: dict, headers: dict | None = None) -> tuple[httpx2.Response, list[str]]:
    with httpx2.Client(transport=openai_wire.transport(), timeout=30) as http:
        resp = http.post(gw.base_url + "/chat/completions", json=body,
                         headers={"Authorization": f"Bearer {key}", **(headers or {})})
        return resp, sse_payloads(resp.content)


def test_stream_with_include_usage_sync(gw, funded_key, openai_client: OpenAI):
    chunks = list(openai_client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}))
    *body, last = chunks
    assert "".join(c.choices[0].delta.content or "" for c in body) == REPLY
    assert body[0].choices[0].delta.role == "assistant"
    assert body[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in body)
    assert last.choices == []
    assert last.usage.completion_tokens == 12
    assert last.usage.total_tokens == last.usage.prompt_tokens + 12
    cost = last.usage.model_extra["cost"]
    assert cost > 0
    assert {(c.id, c.created, c.model, c.object) for c in chunks} == {
        (chunks[0].id, chunks[0].created, "gpt-4o", "chat.completion.chunk")}
    [charge] = ledger_charges(gw, funded_key[1])
    assert charge["amount_micros"] == -round(cost * 1_000_000)
    assert gw.account(funded_key[1])["reserved_micros"] == 0


async def test_stream_with_include_usage_async(gw, funded_key, async_openai_client):
    stream = await async_openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}, max_tokens=5)
    chunks = [c async for c in stream]
    *body, last = chunks
    assert [c.choices[0].delta.content for c in body[1:-1]] == ["Hello", "!", " This", " is", " a"]
    assert body[-1].choices[0].finish_reason == "length"
    assert last.choices == [] and last.usage.completion_tokens == 5
    assert all(c.model == "gpt-4o-mini" for c in chunks)
    [charge] = ledger_charges(gw, funded_key[1])
    assert charge["amount_micros"] == -round(last.usage.model_extra["cost"] * 1_000_000)


def test_raw_sse_framing_and_usage_chunk(openai_wire, gw, funded_key):
    resp, payloads = raw_stream(openai_wire, gw, funded_key[0], {
        "model": "gpt-4o", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}},
        headers={"x-request-id": "stream-trace-7"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["x-request-id"] == "stream-trace-7"
    assert resp.text.endswith("data: [DONE]\n\n")
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    chunks = [json.loads(p) for p in payloads[:-1]]
    for c in chunks:
        validate_chunk(c)
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert set(usage_chunk["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens", "cost"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c.get("usage") is None for c in chunks[:-1])


def test_no_usage_chunk_without_include_usage(openai_wire, gw, funded_key, fake_requests):
    resp, payloads = raw_stream(openai_wire, gw, funded_key[0], {"model": "gpt-4o", "messages": HELLO, "stream": True})
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert payloads[-1] == "[DONE]"
    assert all(c["choices"] and c.get("usage") is None for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # the gateway still asks the upstream for usage, to bill it
    assert fake_requests[-1]["stream_options"] == {"include_usage": True}


def test_include_usage_false_means_no_usage_chunk(openai_client: OpenAI):
    chunks = list(openai_client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": False}))
    assert all(c.choices and c.usage is None for c in chunks)


def test_streamed_max_tokens_gives_exactly_that_many_tokens(openai_client: OpenAI):
    chunks = list(openai_client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, max_tokens=3, stream_options={"include_usage": True}))
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == ["Hello", "!", " This"]
    assert chunks[-1].usage.completion_tokens == 3


def test_streamed_auto_names_the_model_that_answered(openai_client: OpenAI, fake_requests):
    raw = openai_client.chat.completions.with_raw_response.create(model="auto", messages=HELLO, stream=True)
    chunks = list(raw.parse())
    answered = fake_requests[-1]["model"]
    assert answered in OPENAI_MODELS
    assert raw.headers["x-routerone-model"] == answered
    assert {c.model for c in chunks} == {answered}


async def test_async_streams_concurrently(gw, funded_key, async_openai_client):
    import asyncio

    async def one(n: int) -> str:
        stream = await async_openai_client.chat.completions.create(
            model="gpt-4o", messages=HELLO, stream=True, max_tokens=n)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    texts = await asyncio.gather(*(one(n) for n in (2, 4, 6)))
    assert texts == ["Hello!", "Hello! This is", "Hello! This is a reply"]
    assert len(ledger_charges(gw, funded_key[1])) == 3


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_usage_cost_is_the_ledger_charge(gw, funded_key, openai_client: OpenAI, stream):
    kwargs = dict(stream=True, stream_options={"include_usage": True}) if stream else {}
    result = openai_client.chat.completions.create(model="gpt-4.1", messages=HELLO, max_tokens=25, **kwargs)
    usage = list(result)[-1].usage if stream else result.usage
    cost_micros = round(usage.model_extra["cost"] * 1_000_000)
    # gpt-4.1: $2.00 in / $8.00 out per 1M tokens, rounded up once to a micro-dollar
    assert cost_micros == -(-(usage.prompt_tokens * 2_000_000 + usage.completion_tokens * 8_000_000) // 1_000_000)
    assert [c["amount_micros"] for c in ledger_charges(gw, funded_key[1])] == [-cost_micros]

"""The fake Gemini server over a real socket, driven through the Gemini adapter.

Every body the fake sends validates against the discovery document (`GenerateContentResponse` or the
error envelope) and translates into OpenAI objects that validate against OpenAI's spec.
"""
from __future__ import annotations

import dataclasses
import json

import aiohttp
import jsonschema
import orjson
import pytest

from gemini_fixtures import DEP, chat_request
from gemini_schema import validate_gemini
from openai_schema import validate_openai
from routerone.errors import UpstreamAuthFailed, UpstreamBadRequest, UpstreamRateLimited, UpstreamUnavailable
from routerone.providers.gemini import GeminiAdapter
from routerone.providers.sse import SSEDecoder
from routerone.testing.fake_gemini import FakeGeminiServer
from routerone.testing.fake_gemini_content import FAKE_THOUGHT

KEY = "test-gemini-key"
ADAPTER = GeminiAdapter()
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}},
         {"type": "function", "function": {"name": "get_time"}}]


@pytest.fixture(scope="module")
def fake():
    with FakeGeminiServer(api_key=KEY) as server:
        yield server


def dep_for(server: FakeGeminiServer, key: str | None = KEY):
    return dataclasses.replace(DEP, vendor=dataclasses.replace(DEP.vendor, base_url=server.base_url, api_key=key))


def body_of(text: str = "hi", **extra) -> dict:
    return {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": text}], **extra}


async def call(server, body: dict, *, stream: bool = False, key: str | None = KEY, sse: bool = True):
    """Send through the adapter; return (status, headers, raw bytes, cut?)."""
    up = ADAPTER.build_request(chat_request(body), dep_for(server, key), stream=stream)
    async with aiohttp.ClientSession() as session:
        url = up.url if sse else up.url.replace("?alt=sse", "")
        async with session.post(url, data=up.body, headers=dict(up.headers)) as resp:
            chunks, cut = [], False
            try:
                async for data in resp.content.iter_any():
                    chunks.append(data)
            except aiohttp.ClientPayloadError:
                cut = True
            return resp.status, dict(resp.headers), b"".join(chunks), cut


async def complete(server, body: dict) -> dict:
    status, _, raw, _ = await call(server, body)
    assert status == 200, raw
    validate_gemini(orjson.loads(raw), "GenerateContentResponse")
    result = ADAPTER.parse_response(raw, DEP)
    validate_openai(result.response, "CreateChatCompletionResponse")
    return result.response


async def stream(server, body: dict):
    status, headers, raw, cut = await call(server, body, stream=True)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    translator = ADAPTER.stream_translator(chat_request(body), DEP)
    chunks = []
    for ev in SSEDecoder().feed(raw):
        payload = orjson.loads(ev.data)
        validate_gemini(payload, "ErrorEnvelope" if "error" in payload else "GenerateContentResponse")
        chunks.extend(translator.feed(ev))
    for c in chunks:
        validate_openai(c, "CreateChatCompletionStreamResponse")
    return chunks, translator, cut


def text_of(chunks) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)


async def expect_error(server, body: dict, *, key: str | None = KEY):
    status, headers, raw, _ = await call(server, body, key=key)
    validate_gemini(orjson.loads(raw), "ErrorEnvelope")
    return ADAPTER.map_error(status, headers, raw, DEP), orjson.loads(raw)["error"]


async def test_text_answer(fake):
    resp = await complete(fake, body_of())
    assert resp["choices"][0]["message"]["content"] == "Hello! This is a reply from the fake Gemini upstream."
    assert resp["choices"][0]["finish_reason"] == "stop"
    assert resp["usage"]["completion_tokens"] == 12
    assert fake.requests[-1]["api_key"] == KEY and fake.requests[-1]["stream"] is False


async def test_text_stream(fake):
    chunks, translator, cut = await stream(fake, body_of("[[words:4]] hi", stream=True))
    assert not cut and translator.done
    assert text_of(chunks) == "Hello! This is"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert translator.usage.completion_tokens == 4


async def test_max_output_tokens(fake):
    resp = await complete(fake, body_of(max_tokens=3))
    assert resp["choices"][0]["message"]["content"] == "Hello! This"
    assert resp["choices"][0]["finish_reason"] == "length"


async def test_stop_sequences(fake):
    chunks, _, _ = await stream(fake, body_of(stop=[" fake"], stream=True))
    assert text_of(chunks) == "Hello! This is a reply from the"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_json_schema_answer(fake):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                               "tags": {"type": "array", "items": {"type": "string"}}},
              "required": ["name", "age"], "additionalProperties": False}
    resp = await complete(fake, body_of(response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}))
    jsonschema.validate(json.loads(resp["choices"][0]["message"]["content"]), schema)


async def test_json_object_answer(fake):
    chunks, _, _ = await stream(fake, body_of(response_format={"type": "json_object"}, stream=True))
    assert json.loads(text_of(chunks)) == {"answer": "fake"}


async def test_parallel_function_calls_then_text(fake):
    resp = await complete(fake, body_of("[[tools:3]] weather?", tools=TOOLS))
    msg = resp["choices"][0]["message"]
    assert resp["choices"][0]["finish_reason"] == "tool_calls"
    assert [tc["function"]["name"] for tc in msg["tool_calls"]] == ["get_weather", "get_time", "get_weather"]
    assert json.loads(msg["tool_calls"][0]["function"]["arguments"]) == {"city": "fake", "days": 1}
    follow = body_of("[[tools:3]] weather?", tools=TOOLS)
    follow["messages"] += [{"role": "assistant", "content": None, "tool_calls": msg["tool_calls"]}] + [
        {"role": "tool", "tool_call_id": tc["id"], "content": '{"temp_c": 21}'} for tc in msg["tool_calls"]]
    answer = await complete(fake, follow)
    assert answer["choices"][0]["message"]["content"] == 'Thanks! The tool said: {"temp_c":21}'
    sent = fake.requests[-1]["body"]["contents"][-1]["parts"]
    assert [p["functionResponse"]["name"] for p in sent] == ["get_weather", "get_time", "get_weather"]


async def test_function_call_stream(fake):
    chunks, translator, _ = await stream(fake, body_of("[[tools:2]] go", tools=TOOLS, stream=True))
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert [tc["index"] for tc in calls] == [0, 1] and translator.done
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_tool_choice_none_and_named(fake):
    resp = await complete(fake, body_of(tools=TOOLS, tool_choice="none"))
    assert resp["choices"][0]["finish_reason"] == "stop"
    resp = await complete(fake, body_of("[[tools:2]] x", tools=TOOLS,
                                        tool_choice={"type": "function", "function": {"name": "get_time"}}))
    assert {tc["function"]["name"] for tc in resp["choices"][0]["message"]["tool_calls"]} == {"get_time"}


async def test_call_ids_and_thought_signatures_round_trip():
    with FakeGeminiServer(call_ids=True, thought_signatures=True, thoughts_tokens=9) as server:
        resp = await complete(server, body_of(tools=TOOLS))
        call_id = resp["choices"][0]["message"]["tool_calls"][0]["id"]
        assert call_id.startswith("fc_0_get_weather~ts~")
        follow = body_of(tools=TOOLS)
        follow["messages"] += [{"role": "assistant", "content": None, "tool_calls": resp["choices"][0]["message"]["tool_calls"]},
                               {"role": "tool", "tool_call_id": call_id, "content": "sunny"}]
        await complete(server, follow)
        model_turn, result_turn = server.requests[-1]["body"]["contents"][-2:]
        assert model_turn["parts"][0]["thoughtSignature"] and model_turn["parts"][0]["functionCall"]["id"] == "fc_0_get_weather"
        assert result_turn["parts"][0]["functionResponse"]["id"] == "fc_0_get_weather"


async def test_usage_cached_thoughts():
    with FakeGeminiServer(cached_tokens=3, thoughts_tokens=7) as server:
        resp = await complete(server, body_of("one two three four five", reasoning_effort="low", max_tokens=2))
        assert server.requests[-1]["body"]["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024,
                                                                                   "includeThoughts": True}
        assert resp["choices"][0]["message"]["reasoning_content"] == FAKE_THOUGHT
        assert resp["usage"] == {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14,
                                 "prompt_tokens_details": {"cached_tokens": 3},
                                 "completion_tokens_details": {"reasoning_tokens": 7}}


async def test_thought_parts_are_sent_and_returned_as_reasoning():
    with FakeGeminiServer(thoughts_tokens=5) as server:
        body = {"contents": [{"role": "user", "parts": [{"text": "hi [[words:2]]"}]}],
                "generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
        async with aiohttp.ClientSession() as session:
            async with session.post(server.base_url + "/models/gemini-2.5-flash:generateContent", json=body,
                                    headers={"x-goog-api-key": "any"}) as r:
                raw = await r.read()
        validate_gemini(orjson.loads(raw), "GenerateContentResponse")
        assert orjson.loads(raw)["candidates"][0]["content"]["parts"][0]["thought"] is True
        message = ADAPTER.parse_response(raw, DEP).response["choices"][0]["message"]
        assert (message["content"], message["reasoning_content"]) == ("Hello!", FAKE_THOUGHT)


async def test_thinking_budget_zero_thinks_nothing():
    with FakeGeminiServer(thoughts_tokens=5) as server:
        resp = await complete(server, body_of("hi [[words:2]]", reasoning_effort="none"))
        assert "reasoning_content" not in resp["choices"][0]["message"]
        assert "reasoning_tokens" not in resp["usage"].get("completion_tokens_details", {})
        assert resp["usage"]["completion_tokens"] == 2


async def test_candidate_count(fake):
    resp = await complete(fake, body_of("[[words:2]]", n=2))
    assert [c["index"] for c in resp["choices"]] == [0, 1]
    chunks, translator, _ = await stream(fake, body_of("[[words:2]]", n=2, stream=True))
    assert translator.done and {c["choices"][0]["index"] for c in chunks} == {0, 1}


async def test_prompt_blocked_and_safety(fake):
    resp = await complete(fake, body_of("[[block:1]]"))
    assert resp["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": None, "refusal": None},
                                  "finish_reason": "content_filter", "logprobs": None}
    chunks, translator, _ = await stream(fake, body_of("[[safety:1]]", stream=True))
    assert translator.done and chunks[-1]["choices"][0]["finish_reason"] == "content_filter"


@pytest.mark.parametrize("status,cls,retryable", [(429, UpstreamRateLimited, True), (500, UpstreamUnavailable, True),
                                                   (503, UpstreamUnavailable, True), (400, UpstreamBadRequest, False)])
async def test_scripted_errors(fake, status, cls, retryable):
    err, body = await expect_error(fake, body_of(f"[[error:{status}]]"))
    assert isinstance(err, cls) and err.retryable is retryable and err.upstream_status == status
    if status == 429:
        assert err.retry_after_s == 1.0 and body["status"] == "RESOURCE_EXHAUSTED"


async def test_missing_key_is_permission_denied(fake):
    err, body = await expect_error(fake, body_of(), key=None)
    assert body["status"] == "PERMISSION_DENIED" and isinstance(err, UpstreamAuthFailed)


async def test_wrong_key_is_api_key_invalid(fake):
    err, body = await expect_error(fake, body_of(), key="wrong")
    assert body["code"] == 400 and body["details"][0]["reason"] == "API_KEY_INVALID"
    assert isinstance(err, UpstreamAuthFailed) and err.upstream_status == 400


async def test_unknown_fields_are_rejected_like_google(fake):
    async with aiohttp.ClientSession() as session:
        async with session.post(fake.base_url + "/models/gemini-2.5-flash:generateContent",
                                json={"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxTokens": 5}},
                                headers={"x-goog-api-key": KEY}) as r:
            raw = await r.read()
    assert r.status == 400 and "maxTokens" in orjson.loads(raw)["error"]["message"]


async def test_unknown_model_is_not_found():
    with FakeGeminiServer(known_models=("gemini-2.5-pro",)) as server:
        err, body = await expect_error(server, body_of())
        assert body["status"] == "NOT_FOUND" and err.code == "upstream_model_not_found" and err.status == 502


async def test_mid_stream_cut(fake):
    chunks, translator, cut = await stream(fake, body_of("[[cut:2]]", stream=True))
    assert cut and text_of(chunks) == "Hello!" and not translator.done


async def test_stream_error_event(fake):
    with pytest.raises(UpstreamUnavailable):
        await stream(fake, body_of("[[stream_error:1]]", stream=True))


async def test_queued_faults(fake):
    async with aiohttp.ClientSession() as session:
        async with session.post(fake.base_url.removesuffix("/v1beta") + "/_control/faults",
                                json={"faults": [{"error": 429, "retry_delay_s": 2}]}) as r:
            assert (await r.json())["queued"] == 1
    err, _ = await expect_error(fake, body_of())
    assert isinstance(err, UpstreamRateLimited) and err.retry_after_s == 2.0
    fake.fail_next({"error": 503})
    err, _ = await expect_error(fake, body_of())
    assert err.status == 503
    assert (await complete(fake, body_of()))["choices"][0]["finish_reason"] == "stop"


async def test_stream_without_alt_sse_is_a_json_array(fake):
    status, _, raw, _ = await call(fake, body_of("[[words:2]]"), stream=True, sse=False)
    events = orjson.loads(raw)
    assert status == 200 and isinstance(events, list) and len(events) == 2
    for e in events:
        validate_gemini(e, "GenerateContentResponse")


async def test_models_list(fake):
    async with aiohttp.ClientSession() as session:
        async with session.get(fake.base_url + "/models") as r:
            models = (await r.json())["models"]
    validate_gemini(models[0], "Model", strict=False)
    assert models[0]["name"].startswith("models/")

"""The fake Anthropic upstream: its wire output matches Anthropic's spec, the official `anthropic`
SDK parses it (streamed and not), and the adapter round-trips through it over a real socket."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import anthropic
import orjson
import pytest

from anthropic_schema import validate_anthropic, validate_error_body, validate_stream_event
from openai_schema import validate_chunk, validate_completion
from routerone.providers.anthropic import AnthropicAdapter
from routerone.errors import UpstreamError
from routerone.providers.base import Deployment, Vendor
from routerone.providers.sse import SSEDecoder
from routerone.testing.fake_anthropic import serve_fake_anthropic
from routerone.wire.chat import parse_chat_request

KEY = "sk-ant-fake"
MODEL = "claude-sonnet-4-20250514"
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def fake():
    with serve_fake_anthropic(api_key=KEY) as server:
        yield server


def post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict, bytes]:
    h = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    req = urllib.request.Request(url + "/v1/messages", data=orjson.dumps(body), headers={**h, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def events(raw: bytes) -> list[tuple[str | None, dict]]:
    decoder = SSEDecoder()
    out = [(e.event, orjson.loads(e.data)) for e in decoder.feed(raw) + decoder.close()]
    for name, data in out:
        validate_stream_event(name, data)
    return out


def body(text: str = "Hi there", **extra) -> dict:
    return {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": text}], **extra}


# -- raw wire output validates against the spec ----------------------------------------------------
def test_text_message_matches_spec(fake) -> None:
    status, _, raw = post(fake.url, body())
    msg = orjson.loads(raw)
    assert status == 200
    validate_anthropic(msg, "Message")
    assert msg["stop_reason"] == "end_turn" and msg["content"][0]["text"].startswith("Hello!")
    assert fake.requests[-1]["messages"][0]["content"] == "Hi there"


def test_text_stream_matches_spec(fake) -> None:
    status, headers, raw = post(fake.url, body(stream=True))
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    names = [n for n, _ in events(raw)]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_parallel_tool_use_then_text_after_tool_result(fake) -> None:
    _, _, raw = post(fake.url, body("[[tools:3]] weather?", tools=[WEATHER]))
    msg = orjson.loads(raw)
    validate_anthropic(msg, "Message")
    assert msg["stop_reason"] == "tool_use"
    assert [b["type"] for b in msg["content"]] == ["text", "tool_use", "tool_use", "tool_use"]
    assert msg["content"][1]["input"] == {"city": "Paris"}
    follow = body(tools=[WEATHER])
    follow["messages"] += [{"role": "assistant", "content": msg["content"]},
                           {"role": "user", "content": [{"type": "tool_result", "tool_use_id": b["id"], "content": "18C"}
                                                        for b in msg["content"] if b["type"] == "tool_use"]}]
    answer = orjson.loads(post(fake.url, follow)[2])
    assert answer["stop_reason"] == "end_turn" and answer["content"][0]["type"] == "text"


def test_forced_tool_and_disabled_parallelism_give_one_call(fake) -> None:
    for choice in ({"type": "tool", "name": "get_weather"}, {"type": "any", "disable_parallel_tool_use": True}):
        msg = orjson.loads(post(fake.url, body("[[tools:3]]", tools=[WEATHER], tool_choice=choice))[2])
        assert [b["type"] for b in msg["content"]] == ["tool_use"]


def test_tool_use_stream_matches_spec(fake) -> None:
    evs = events(post(fake.url, body("[[tools:2]]", tools=[WEATHER], stream=True))[2])
    starts = [d["content_block"]["type"] for n, d in evs if n == "content_block_start"]
    assert starts == ["text", "tool_use", "tool_use"]
    partial = "".join(d["delta"]["partial_json"] for n, d in evs
                      if n == "content_block_delta" and d["index"] == 1)
    assert json.loads(partial) == {"city": "Paris"}


def test_max_tokens_cut(fake) -> None:
    msg = orjson.loads(post(fake.url, body("[[words:30]]", max_tokens=5))[2])
    assert msg["stop_reason"] == "max_tokens" and msg["usage"]["output_tokens"] == 5


def test_stop_sequence(fake) -> None:
    msg = orjson.loads(post(fake.url, body(stop_sequences=["reply"]))[2])
    assert msg["stop_reason"] == "stop_sequence" and msg["stop_sequence"] == "reply"
    assert msg["content"][0]["text"] == "Hello! This is a "


def test_cache_usage_option() -> None:
    with serve_fake_anthropic(cache_read_input_tokens=1000, cache_creation_input_tokens=200) as server:
        msg = orjson.loads(post(server.url, body(), {"x-api-key": "any"})[2])
    validate_anthropic(msg, "Message")
    assert (msg["usage"]["cache_read_input_tokens"], msg["usage"]["cache_creation_input_tokens"]) == (1000, 200)


@pytest.mark.parametrize("status,err_type", [(429, "rate_limit_error"), (529, "overloaded_error"),
                                             (500, "api_error"), (413, "request_too_large")])
def test_configured_errors_match_spec(fake, status: int, err_type: str) -> None:
    got, headers, raw = post(fake.url, body(f"[[error:{status}]]"))
    err = orjson.loads(raw)
    assert got == status and err["error"]["type"] == err_type
    validate_error_body(err)
    assert ("retry-after" in {k.lower() for k in headers}) == (status == 429)


def test_auth_version_and_unknown_fields_are_checked(fake) -> None:
    assert post(fake.url, body(), {"x-api-key": "wrong"})[0] == 401
    assert orjson.loads(post(fake.url, body(), {"x-api-key": "wrong"})[2])["error"]["type"] == "authentication_error"
    assert post(fake.url, body(), {"anthropic-version": ""})[0] == 400
    status, _, raw = post(fake.url, body(n=2))
    assert status == 400 and "n: Extra inputs" in orjson.loads(raw)["error"]["message"]
    assert post(fake.url, {"model": MODEL, "messages": [{"role": "user", "content": "x"}]})[0] == 400


def test_mid_stream_error_event(fake) -> None:
    evs = events(post(fake.url, body("[[stream_error:2]]", stream=True))[2])
    assert evs[-1][0] == "error" and evs[-1][1]["error"]["type"] == "overloaded_error"
    assert sum(n == "content_block_delta" for n, _ in evs) == 2


def test_queued_faults_apply_in_order(fake) -> None:
    fake.queue_faults({"status": 529}, {"status": 429, "retry_after": 3})
    assert post(fake.url, body())[0] == 529
    status, headers, _ = post(fake.url, body())
    assert status == 429 and headers.get("retry-after") == "3"
    assert post(fake.url, body())[0] == 200


# -- the official SDK parses the fake -------------------------------------------------------------
def sdk(fake) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0)


def test_sdk_parses_message(fake) -> None:
    msg = sdk(fake).messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert msg.stop_reason == "end_turn" and msg.content[0].type == "text" and msg.usage.output_tokens > 0


def test_sdk_parses_stream_with_tools(fake) -> None:
    with sdk(fake).messages.stream(model=MODEL, max_tokens=50, tools=[WEATHER],
                                   messages=[{"role": "user", "content": "[[tools:2]] weather?"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.input for b in final.content if b.type == "tool_use"] == [{"city": "Paris"}, {"city": "Paris"}]


def test_sdk_sees_errors(fake) -> None:
    with pytest.raises(anthropic.RateLimitError):
        sdk(fake).messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "[[error:429]]"}])
    with pytest.raises(anthropic.OverloadedError):
        sdk(fake).messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "[[error:529]]"}])
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=fake.url, api_key="wrong", max_retries=0).messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.APIStatusError):
        with sdk(fake).messages.stream(model=MODEL, max_tokens=50,
                                       messages=[{"role": "user", "content": "[[stream_error:1]]"}]) as stream:
            stream.get_final_message()


# -- the adapter over a real socket ----------------------------------------------------------------
def roundtrip(fake, openai_body: dict, *, stream: bool = False):
    dep = Deployment("claude", Vendor(name="anthropic", protocol="anthropic", base_url=fake.url,
                                      auth="x-api-key", api_key=KEY), MODEL)
    adapter = AnthropicAdapter()
    req = parse_chat_request(orjson.dumps(openai_body))
    up = adapter.build_request(req, dep, stream=stream)
    http = urllib.request.Request(up.url, data=up.body, headers=dict(up.headers))
    try:
        with urllib.request.urlopen(http, timeout=10) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        return adapter.map_error(exc.code, dict(exc.headers), exc.read(), dep)
    if not stream:
        return adapter.parse_response(raw, dep)
    translator, decoder = adapter.stream_translator(req, dep), SSEDecoder()
    chunks = [c for e in decoder.feed(raw) + decoder.close() for c in translator.feed(e)]
    assert translator.done
    for chunk in chunks:
        validate_chunk(chunk)
    return chunks, translator.usage


def test_adapter_roundtrip_tool_loop(fake) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER["input_schema"]}}
    first = roundtrip(fake, {"model": "claude", "tools": [tool], "messages": [{"role": "user", "content": "[[tools:2]] weather?"}]})
    validate_completion(first.response)
    choice = first.response["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and len(choice["message"]["tool_calls"]) == 2
    history = [{"role": "user", "content": "weather?"}, choice["message"]] + [
        {"role": "tool", "tool_call_id": c["id"], "content": "18C"} for c in choice["message"]["tool_calls"]]
    second = roundtrip(fake, {"model": "claude", "tools": [tool], "messages": history})
    assert second.response["choices"][0]["finish_reason"] == "stop"
    assert [b["type"] for b in fake.requests[-1]["messages"][2]["content"]] == ["tool_result", "tool_result"]


def test_adapter_roundtrip_json_schema_stream(fake) -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER["input_schema"]}}
    chunks, usage = roundtrip(fake, {"model": "claude", "response_format": rf, "stream": True,
                                     "messages": [{"role": "user", "content": "weather?"}]}, stream=True)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert json.loads(content) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and usage.completion_tokens > 0


def test_adapter_roundtrip_overload_is_retryable(fake) -> None:
    err = roundtrip(fake, {"model": "claude", "messages": [{"role": "user", "content": "[[error:529]]"}]})
    assert err.retryable and err.status == 503


def test_adapter_roundtrip_mid_stream_error(fake) -> None:
    with pytest.raises(UpstreamError) as info:
        roundtrip(fake, {"model": "claude", "stream": True,
                         "messages": [{"role": "user", "content": "[[stream_error:3]]"}]}, stream=True)
    assert info.value.retryable and info.value.code == "upstream_overloaded"


# -- extended thinking, as the real API does it ----------------------------------------------------
THINK = {"type": "enabled", "budget_tokens": 1024}


def test_thinking_message_and_stream_match_spec(fake) -> None:
    msg = orjson.loads(post(fake.url, body(max_tokens=2000, thinking=THINK))[2])
    validate_anthropic(msg, "Message")
    assert [b["type"] for b in msg["content"]] == ["thinking", "text"]
    assert msg["content"][0]["thinking"] and msg["content"][0]["signature"]
    thinking_tokens = msg["usage"]["output_tokens_details"]["thinking_tokens"]
    assert 0 < thinking_tokens < msg["usage"]["output_tokens"], "output_tokens include the thinking"
    evs = events(post(fake.url, body(max_tokens=2000, thinking=THINK, stream=True))[2])
    assert [d["content_block"]["type"] for n, d in evs if n == "content_block_start"] == ["thinking", "text"]
    kinds = [d["delta"]["type"] for n, d in evs if n == "content_block_delta" and d["index"] == 0]
    assert set(kinds) == {"thinking_delta", "signature_delta"} and kinds[-1] == "signature_delta"
    (final,) = [d for n, d in evs if n == "message_delta"]
    assert final["usage"]["output_tokens_details"] == {"thinking_tokens": thinking_tokens}


def test_sdk_parses_thinking_stream(fake) -> None:
    with sdk(fake).messages.stream(model=MODEL, max_tokens=2000, thinking=THINK,
                                   messages=[{"role": "user", "content": "Hi"}]) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"] and final.content[0].signature


@pytest.mark.parametrize("extra,words", [
    ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "budget_tokens"),
    ({"thinking": {"type": "enabled", "budget_tokens": 512}, "max_tokens": 2000}, "budget_tokens"),
    ({"thinking": THINK, "max_tokens": 2000, "temperature": 0.5}, "temperature"),
    ({"thinking": THINK, "max_tokens": 2000, "top_k": 5}, "top_k"),
    ({"thinking": THINK, "max_tokens": 2000, "tools": [WEATHER], "tool_choice": {"type": "any"}}, "tool_choice"),
])
def test_thinking_rules_are_enforced(fake, extra: dict, words: str) -> None:
    status, _, raw = post(fake.url, {**body(), **extra})
    assert status == 400 and words in orjson.loads(raw)["error"]["message"]


def test_thinking_tool_loop_needs_the_signed_thinking_blocks(fake) -> None:
    first = orjson.loads(post(fake.url, body("weather?", max_tokens=2000, thinking=THINK, tools=[WEATHER]))[2])
    assert [b["type"] for b in first["content"]] == ["thinking", "text", "tool_use"]
    results = [{"type": "tool_result", "tool_use_id": b["id"], "content": "18C"}
               for b in first["content"] if b["type"] == "tool_use"]

    def follow(assistant_content: list, **extra) -> tuple[int, dict]:
        b = body("weather?", max_tokens=2000, tools=[WEATHER], **extra)
        b["messages"] += [{"role": "assistant", "content": assistant_content}, {"role": "user", "content": results}]
        status, _, raw = post(fake.url, b)
        return status, orjson.loads(raw)
    assert follow(first["content"], thinking=THINK)[0] == 200
    stripped = [b for b in first["content"] if b["type"] != "thinking"]
    status, err = follow(stripped, thinking=THINK)
    assert status == 400 and "must start with a thinking block" in err["error"]["message"]
    assert follow(stripped)[0] == 200, "without thinking, earlier thinking blocks are not needed"

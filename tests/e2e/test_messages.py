"""Issue 14, /v1/messages end to end: the official `anthropic` SDK (sync, async, streaming) -> a real
Router One -> the fake Anthropic (pass-through), fake OpenAI-compatible and fake Gemini upstreams
(translation). Every response body and stream event is checked against Anthropic's spec
(protocol_helpers.make_protocol_wire)."""
from __future__ import annotations

import base64
import json
import urllib.request

import anthropic
import pytest

from protocol_helpers import key, protocol_gateway, sse_events, wait_usage_rows, wire  # noqa: F401 (fixtures)
from routerone.testing import fake_openai
from routerone.testing.fake_anthropic import serve_fake_anthropic
from routerone.testing.fake_gemini import FakeGeminiServer
from routerone.testing.threaded import ThreadedServer

ANT_KEY, OAI_KEY, GEM_KEY = "sk-ant-fake", "sk-oai-fake-0123456789", "gem-fake-key"
SONNET, GPT, GEMINI = "claude-sonnet-4-20250514", "gpt-4o", "gemini-2.5-flash"
MODELS = {"anthropic": SONNET, "openai": GPT, "gemini": GEMINI}
PNG_B64 = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2a7e6b40000000049454e44ae426082")).decode()
WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def fakes():
    with serve_fake_anthropic(api_key=ANT_KEY, cache_read_input_tokens=40, cache_creation_input_tokens=8) as ant, \
            ThreadedServer(lambda: fake_openai.make_app(api_key=OAI_KEY, natural_length=True)) as oai, \
            FakeGeminiServer(api_key=GEM_KEY) as gem:
        yield {"anthropic": ant, "openai": oai, "gemini": gem}


def received(fakes, provider: str) -> list[dict]:
    """The bodies an upstream received (Gemini's as the fake records them: {model, stream, body})."""
    f = fakes[provider]
    return f.requests if provider != "openai" else f.app["fake"].requests


def gemini_body(fakes) -> dict:
    return fakes["gemini"].requests[-1]["body"]


@pytest.fixture
def gw(gateway, fakes):
    for p in MODELS:
        received(fakes, p).clear()
    return protocol_gateway(gateway, fakes, {"anthropic": ANT_KEY, "openai": OAI_KEY, "gemini": GEM_KEY})


@pytest.fixture
def client(gw, key, wire):
    c = anthropic.Anthropic(base_url=gw.url, api_key=key[0], max_retries=0, http_client=wire.client())
    yield c
    c.close()


HELLO = [{"role": "user", "content": "Say hello"}]


# -- plain answers over every upstream -----------------------------------------------------------

@pytest.mark.parametrize("provider", list(MODELS))
def test_plain_answer_over_every_upstream(gw, key, client, fakes, provider):
    raw = client.messages.with_raw_response.create(model=MODELS[provider], max_tokens=64, messages=HELLO)
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant" and msg.model == MODELS[provider]
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens > 0 and msg.usage.input_tokens > 0
    assert raw.headers["x-routerone-provider"] == provider
    cost = float(raw.headers["x-routerone-cost"])
    assert cost > 0 and abs(msg.usage.model_extra["cost"] - cost) < 1e-9
    assert len(received(fakes, provider)) == 1
    rows = wait_usage_rows(gw, key[1], 1)
    assert [(r["protocol"], r["routed_model"], r["cost_micros"]) for r in rows] == [
        ("messages", MODELS[provider], round(cost * 1e6))]
    assert gw.account(key[1])["balance_micros"] == 10_000_000 - round(cost * 1e6)


def test_x_api_key_and_bearer_both_authenticate(gw, key, wire, fakes):
    with wire.client() as http:
        for headers in ({"x-api-key": key[0]}, {"Authorization": f"Bearer {key[0]}"}):
            r = http.post(gw.url + "/v1/messages?beta=true", headers={**headers, "anthropic-version": "2023-06-01"},
                          json={"model": SONNET, "max_tokens": 32, "messages": HELLO})
            assert r.status_code == 200, r.text


async def test_async_client_and_async_stream(gw, key, wire, fakes):
    async with anthropic.AsyncAnthropic(base_url=gw.url, api_key=key[0], max_retries=0,
                                        http_client=wire.async_client()) as c:
        msg = await c.messages.create(model=GPT, max_tokens=64, messages=HELLO)
        assert msg.content[0].text and msg.stop_reason == "end_turn"
        async with c.messages.stream(model=SONNET, max_tokens=64, messages=HELLO) as stream:
            text = "".join([t async for t in stream.text_stream])
            final = await stream.get_final_message()
        assert text and final.content[0].text == text and final.stop_reason == "end_turn"


@pytest.mark.parametrize("provider", list(MODELS))
def test_streaming_over_every_upstream(gw, key, client, fakes, provider):
    with client.messages.stream(model=MODELS[provider], max_tokens=64, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason == "end_turn" and final.model == MODELS[provider]
    assert final.usage.output_tokens > 0
    rows = wait_usage_rows(gw, key[1], 1)
    assert rows[0]["protocol"] == "messages" and rows[0]["stream"] in (1, True) and rows[0]["cost_micros"] > 0


def test_stream_event_sequence_and_cost(gw, key, wire, fakes):
    with wire.client() as http:
        r = http.post(gw.url + "/v1/messages", headers={"x-api-key": key[0]},
                      json={"model": GPT, "max_tokens": 64, "messages": HELLO, "stream": True})
    events = sse_events(r.content)
    names = [n for n, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    assert names[2] == "content_block_start" and "content_block_stop" in names
    usage = events[-2][1]["usage"]
    assert usage["cost"] > 0 and usage["output_tokens"] > 0 and usage["input_tokens"] > 0


# -- tools and images ------------------------------------------------------------------------------

@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip(gw, key, client, fakes, provider, stream):
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    kw = dict(model=MODELS[provider], max_tokens=256, tools=[WEATHER], messages=msgs)
    if stream:
        with client.messages.stream(**kw) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(**kw)
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert uses and all(u.name == "get_weather" and isinstance(u.input, dict) for u in uses)
    msgs = msgs + [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "18C sunny"}
                                                for u in uses]}]
    second = client.messages.create(model=MODELS[provider], max_tokens=256, tools=[WEATHER], messages=msgs)
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"
    sent = received(fakes, provider)[-1]
    if provider == "anthropic":      # pass-through: the tool_use ids and blocks as the client sent them
        assert sent["messages"][1]["content"][-1]["id"] == uses[-1].id
        assert sent["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": uses[0].id,
                                                     "content": "18C sunny"}
    elif provider == "openai":
        assert [tc["id"] for tc in sent["messages"][1]["tool_calls"]] == [u.id for u in uses]
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": uses[0].id, "content": "18C sunny"}
    else:
        parts = [p for c in gemini_body(fakes)["contents"] for p in c["parts"]]
        assert any("functionResponse" in p for p in parts) and any("functionCall" in p for p in parts)


@pytest.mark.parametrize("provider", list(MODELS))
def test_image_reaches_every_upstream(gw, key, client, fakes, provider):
    content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
               {"type": "text", "text": "What is this?"}]
    msg = client.messages.create(model=MODELS[provider], max_tokens=64, messages=[{"role": "user", "content": content}])
    assert msg.content[0].text
    sent = received(fakes, provider)[-1]
    if provider == "anthropic":
        assert sent["messages"][0]["content"][0] == content[0]
    elif provider == "openai":
        assert sent["messages"][0]["content"][0] == {"type": "image_url",
                                                     "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}
    else:
        assert gemini_body(fakes)["contents"][0]["parts"][0]["inlineData"] == {"mimeType": "image/png", "data": PNG_B64}


def test_same_conversation_answered_by_three_upstreams(gw, key, client, fakes):
    convo = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
             {"role": "user", "content": [{"type": "text", "text": "Tell me a fact."}]}]
    answers = {p: client.messages.create(model=m, max_tokens=64, system="Be brief.", messages=convo)
               for p, m in MODELS.items()}
    assert all(a.content[0].text and a.stop_reason == "end_turn" for a in answers.values())
    oai = received(fakes, "openai")[-1]["messages"]
    assert [m["role"] for m in oai] == ["system", "user", "assistant", "user"]
    assert oai[0]["content"] == "Be brief." and oai[2]["content"] == "Hello! How can I help?"
    gem = gemini_body(fakes)
    assert [c["role"] for c in gem["contents"]] == ["user", "model", "user"]
    assert gem["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert received(fakes, "anthropic")[-1]["messages"] == convo


# -- a Claude Code-shaped request ---------------------------------------------------------------

def claude_code_body(model: str) -> dict:
    tools = [{"name": f"Tool{i}", "description": f"tool number {i}",
              "input_schema": {"type": "object", "properties": {"arg": {"type": "string"}}, "required": ["arg"]}}
             for i in range(40)]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    return {
        "model": model, "max_tokens": 32000, "stream": True,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.0.1; cc_entrypoint=cli"},
                   {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                    "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "Follow the repository conventions.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                                         {"type": "text", "text": "List the files", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should call a tool.", "signature": "sig-abc123=="},
                {"type": "tool_use", "id": "toolu_01ABC", "name": "Tool3", "input": {"arg": "ls"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01ABC", "content": "a.py\nb.py",
                                          "cache_control": {"type": "ephemeral"}},
                                         {"type": "text", "text": "Now summarise."}]}],
        "tools": tools, "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "user_abc_account_123_session_xyz"}, "temperature": 1}


def test_claude_code_request_to_anthropic_keeps_caching_fields(gw, key, wire, fakes):
    body = claude_code_body(SONNET)
    with wire.client() as http:
        r = http.post(gw.url + "/v1/messages?beta=true", json=body, headers={
            "Authorization": f"Bearer {key[0]}", "anthropic-version": "2023-06-01",
            "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
            "x-claude-code-session-id": "s-1"})
    assert r.status_code == 200
    names = [n for n, _ in sse_events(r.content)]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    sent = received(fakes, "anthropic")[-1]
    assert sent == {**body, "model": SONNET}            # byte-for-byte the client's body
    final = [d for n, d in sse_events(r.content) if n == "message_delta"][-1]
    assert final["usage"]["cost"] > 0 and final["usage"]["cache_read_input_tokens"] == 40


def test_claude_code_request_to_openai_is_translated(gw, key, wire, fakes):
    body = claude_code_body("gpt-4.1")       # gpt-4o's 16,384-token output cap refuses max_tokens 32000
    with wire.client() as http:
        r = http.post(gw.url + "/v1/messages", json=body, headers={"x-api-key": key[0]})
    assert r.status_code == 200, r.text
    events = sse_events(r.content)
    assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
    sent = received(fakes, "openai")[-1]
    msgs = sent["messages"]
    assert msgs[0] == {"role": "system", "content": [{"type": "text", "text": b["text"]} for b in body["system"]]}
    assert msgs[1]["role"] == "user" and [p["text"] for p in msgs[1]["content"]] == [
        "<system-reminder>ctx</system-reminder>", "List the files"]
    assert msgs[2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "toolu_01ABC", "type": "function", "function": {"name": "Tool3", "arguments": '{"arg":"ls"}'}}]}
    assert msgs[3] == {"role": "tool", "tool_call_id": "toolu_01ABC", "content": "a.py\nb.py"}
    assert msgs[4] == {"role": "user", "content": [{"type": "text", "text": "Now summarise."}]}
    assert len(sent["tools"]) == 40 and sent["tools"][0]["function"]["parameters"] == body["tools"][0]["input_schema"]
    assert sent["max_tokens"] == 32000 and sent["user"] == body["metadata"]["user_id"]
    assert "thinking" not in sent and "cache_control" not in json.dumps(sent)


# -- errors in Anthropic's shape ---------------------------------------------------------------------

def test_errors_are_anthropic_shaped(gw, wire, fakes):
    poor = gw.new_key(balance_micros=0)[0]
    limited = gw.new_key(rpm=1)[0]
    with wire.client() as http:
        def post(k, body=None, **h):
            return http.post(gw.url + "/v1/messages", json=body or {"model": SONNET, "max_tokens": 16, "messages": HELLO},
                             headers={**({"x-api-key": k} if k else {}), **h})
        cases = [(post(None), 401, "authentication_error"), (post("sk-ro-nope"), 401, "authentication_error"),
                 (post(poor), 402, "billing_error"),
                 (post(limited), 200, None), (post(limited), 429, "rate_limit_error"),
                 (post(poor, {"model": "no-such-model", "max_tokens": 5, "messages": HELLO}), 404, "not_found_error"),
                 (post(poor, {"model": SONNET, "messages": HELLO}), 400, "invalid_request_error")]
    for r, status, kind in cases:
        assert r.status_code == status, r.text
        if kind:
            assert r.json()["type"] == "error" and r.json()["error"]["type"] == kind
            assert r.json()["request_id"] == r.headers["x-request-id"]
    assert cases[4][0].headers["retry-after"]
    metrics = urllib.request.urlopen(gw.url + "/metrics").read().decode()
    for status, n in (("401", 2), ("402", 1), ("429", 1), ("404", 1), ("400", 1), ("200", 1)):
        assert f'routerone_route_requests_total{{route="messages",status="{status}"}} {n}.0' in metrics, status


def test_sdk_raises_its_own_error_classes(gw, wire, fakes):
    poor = anthropic.Anthropic(base_url=gw.url, api_key=gw.new_key(balance_micros=0)[0], max_retries=0,
                               http_client=wire.client())
    with pytest.raises(anthropic.APIStatusError) as info:
        poor.messages.create(model=SONNET, max_tokens=16, messages=HELLO)
    assert info.value.status_code == 402 and info.value.body["error"]["type"] == "billing_error"
    bad = anthropic.Anthropic(base_url=gw.url, api_key="sk-ro-wrong", max_retries=0, http_client=wire.client())
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model=SONNET, max_tokens=16, messages=HELLO)


def test_upstream_failure_is_anthropic_shaped(gw, key, client, fakes):
    fakes["anthropic"].queue_faults({"status": 529})
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model=SONNET, max_tokens=16, messages=HELLO)
    assert info.value.status_code >= 500
    assert info.value.body["error"]["type"] in ("overloaded_error", "api_error")


def test_count_tokens(gw, key, client, fakes):
    n = client.messages.count_tokens(model=GPT, messages=[{"role": "user", "content": "hello " * 50}])
    assert 50 <= n.input_tokens < 200
    assert not received(fakes, "openai")


# -- routing: auto, fallbacks and their headers -----------------------------------------------------

def test_auto_and_fallback_headers(gw, key, wire, fakes):
    with wire.client() as http:
        r = http.post(gw.url + "/v1/messages", headers={"x-api-key": key[0]},
                      json={"model": "auto", "max_tokens": 64, "messages": HELLO, "route": "cost"})
        assert r.status_code == 200 and r.headers["x-routerone-strategy"] == "cost"
        assert r.headers["x-routerone-reason"] and r.json()["model"] == r.headers["x-routerone-model"]
        fakes["anthropic"].queue_faults({"status": 529})
        r = http.post(gw.url + "/v1/messages", headers={"x-api-key": key[0]},
                      json={"model": SONNET, "models": [GPT], "max_tokens": 64, "messages": HELLO})
    assert r.status_code == 200, r.text
    assert r.headers["x-routerone-provider"] == "openai" and r.json()["model"] == GPT
    assert "anthropic/" in r.headers["x-routerone-fallbacks"] and "529" in r.headers["x-routerone-fallbacks"]
    assert "models" not in fakes["anthropic"].requests[-1]          # Router One's field is not forwarded
    rows = wait_usage_rows(gw, key[1], 2)
    assert any(r["fallbacks"] and "529" in r["fallbacks"] and r["protocol"] == "messages" for r in rows)


# -- pings during upstream silences ---------------------------------------------------------------

@pytest.fixture
def paced_gw(gateway, monkeypatch):
    """A gateway on an OpenAI-compatible fake pausing 250 ms between chunks and an Anthropic fake
    pausing 100 ms between events (neither pinging), with Router One's silence pings every 50 ms."""
    from routerone.http import messages as messages_route
    monkeypatch.setattr(messages_route, "PING_INTERVAL_S", 0.05)
    with ThreadedServer(lambda: fake_openai.make_app(api_key=OAI_KEY, natural_length=True,
                                                     chunk_interval_ms=250, reply_tokens=4)) as slow, \
            serve_fake_anthropic(api_key=ANT_KEY, chunk_interval_ms=100, ping=False) as slow_ant:
        yield gateway(providers={"openai": (slow.url + "/v1", OAI_KEY), "anthropic": (slow_ant.url, ANT_KEY)},
                      max_retries=0, stream_hold_ms=0)


def test_pings_fill_upstream_silences(paced_gw, wire):
    key, account = paced_gw.new_key()
    with wire.client() as http:
        r = http.post(paced_gw.url + "/v1/messages", headers={"x-api-key": key},
                      json={"model": GPT, "max_tokens": 64, "messages": HELLO, "stream": True})
    names = [n for n, _ in sse_events(r.content)]
    assert names.count("ping") >= 4 and names[-1] == "message_stop"
    text = "".join(d["delta"]["text"] for n, d in sse_events(r.content) if n == "content_block_delta")
    assert text == "Hello! This is"
    client = anthropic.Anthropic(base_url=paced_gw.url, api_key=key, max_retries=0, http_client=wire.client())
    with client.messages.stream(model=GPT, max_tokens=64, messages=HELLO) as stream:
        assert "".join(stream.text_stream) == text


def test_client_gone_during_a_silence_is_still_billed(paced_gw, wire):
    key, account = paced_gw.new_key()
    with wire.client() as http:
        with http.stream("POST", paced_gw.url + "/v1/messages", headers={"x-api-key": key},
                         json={"model": GPT, "max_tokens": 64, "messages": HELLO, "stream": True}) as r:
            for line in r.iter_lines():
                if "ping" in line:
                    break                        # leave while Router One waits on the upstream
    rows = wait_usage_rows(paced_gw, account, 1, timeout_s=10)
    assert rows and rows[0]["protocol"] == "messages" and rows[0]["cost_micros"] > 0
    assert paced_gw.account(account)["balance_micros"] == 10_000_000 - rows[0]["cost_micros"]


def test_sdk_prompt_caching_fields_reach_the_anthropic_upstream(gw, key, client, fakes):
    system = [{"type": "text", "text": "You are a careful assistant. " * 20, "cache_control": {"type": "ephemeral"}}]
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Long document...", "cache_control":
                                          {"type": "ephemeral", "ttl": "1h"}}, {"type": "text", "text": "Question?"}]}]
    tools = [{**WEATHER, "cache_control": {"type": "ephemeral"}}]
    msg = client.messages.create(model=SONNET, max_tokens=64, system=system, messages=msgs, tools=tools,
                                 tool_choice={"type": "none"})
    sent = fakes["anthropic"].requests[-1]
    assert sent["system"] == system and sent["messages"] == msgs and sent["tools"] == tools
    assert msg.usage.cache_read_input_tokens == 40 and msg.usage.cache_creation_input_tokens == 8
    rows = wait_usage_rows(gw, key[1], 1)
    assert rows[0]["cached_tokens"] == 40


def test_model_allowlist_applies(gw, wire, fakes):
    only_gpt = anthropic.Anthropic(base_url=gw.url, api_key=gw.new_key(allowed_models=[GPT])[0], max_retries=0,
                                   http_client=wire.client())
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        only_gpt.messages.create(model=SONNET, max_tokens=16, messages=HELLO)
    assert info.value.body["error"]["type"] == "permission_error"
    assert only_gpt.messages.create(model=GPT, max_tokens=16, messages=HELLO).content[0].text
    assert not fakes["anthropic"].requests


def _assert_error_ended(gw, account, r) -> None:
    names = [n for n, _ in sse_events(r.content)]
    assert names[0] == "message_start" and names[-1] == "error" and "message_stop" not in names
    assert "content_block_delta" in names
    rows = wait_usage_rows(gw, account, 1)
    assert rows[0]["protocol"] == "messages" and rows[0]["status"] >= 500 and rows[0]["cost_micros"] > 0


def test_mid_stream_failure_pass_through(paced_gw, wire):
    key, account = paced_gw.new_key()
    with wire.client() as http:
        r = http.post(paced_gw.url + "/v1/messages", headers={"x-api-key": key},
                      json={"model": SONNET, "max_tokens": 64, "stream": True,
                            "messages": [{"role": "user", "content": "Say hello [[stream_error:2]]"}]})
    _assert_error_ended(paced_gw, account, r)
    assert sse_events(r.content)[-1][1]["error"]["type"] == "overloaded_error"


def test_mid_stream_failure_translated(paced_gw, wire):
    key, account = paced_gw.new_key()
    with wire.client() as http:
        r = http.post(paced_gw.url + "/v1/messages", headers={"x-api-key": key},
                      json={"model": GPT, "max_tokens": 64, "stream": True,
                            "messages": [{"role": "user", "content": "Say hello [[stream_error:2]]"}]})
    _assert_error_ended(paced_gw, account, r)

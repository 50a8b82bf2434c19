"""Nothing the caller asks for is silently dropped: a request parameter an upstream cannot honour is
either translated, refused with a 400 naming it (`param`, code `unsupported_parameter`, no upstream
call), or - only for pure hints with no observable contract (`store`, `metadata`, `user`,
`service_tier`, prompt-cache hints, `prediction`) - dropped as documented in README's parameter table.

Through the official SDKs against a real Router One in front of the fakes:
- an OpenAI-protocol vendor whose API lacks a parameter (Groq: logprobs, logit_bias, audio) refuses
  it instead of removing it from the body; its hints are still removed and the call answers;
- the Gemini adapter refuses a parameter it does not know (`moderation`, an `extra_body` key) as the
  Anthropic adapter does, instead of ignoring it;
- /v1/messages with an Anthropic server tool (web search) to a non-Anthropic upstream is refused:
  answering without the tool the caller gave would change the answer.
"""
from __future__ import annotations

import json

import anthropic
import openai
import pytest
from openai import OpenAI

from routerone.testing.fake_anthropic import serve_fake_anthropic
from routerone.testing.fake_gemini import FakeGeminiServer

GROQ = "llama-3.1-8b-instant"
FLASH = "gemini-2.5-flash"
GEM_KEY = "gemini-test-key"
HELLO = [{"role": "user", "content": "Say hello"}]


def refused(call, param: str) -> dict:
    with pytest.raises(openai.BadRequestError) as ei:
        call()
    body = ei.value.body
    assert body["param"] == param and body["code"] == "unsupported_parameter", body
    assert f"'{param}'" in body["message"]
    return body


# -- an OpenAI-protocol vendor lacking a parameter ---------------------------------------------

@pytest.fixture
def groq_client(gateway, fake_upstream, fake_requests, make_openai_client) -> OpenAI:
    """Router One whose only provider is the shipped `groq` vendor, pointed at the fake OpenAI."""
    return make_openai_client(gateway(providers={"groq": (fake_upstream.base_url, fake_upstream.api_key)},
                                      max_retries=0))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("param, kwargs", [
    ("logprobs", {"logprobs": True, "top_logprobs": 2}),
    ("logit_bias", {"logit_bias": {"50256": -100}}),
    ("audio", {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}),
])
def test_vendor_without_a_meaningful_param_refuses_it(groq_client: OpenAI, fake_requests, param, kwargs, stream):
    refused(lambda: groq_client.chat.completions.create(model=GROQ, messages=HELLO, stream=stream, **kwargs), param)
    assert fake_requests == []


def test_vendor_drops_only_hints_and_neutral_values(groq_client: OpenAI, fake_requests):
    resp = groq_client.chat.completions.create(
        model=GROQ, messages=HELLO, store=True, metadata={"app": "x"}, logprobs=False, logit_bias={},
        modalities=["text"], max_completion_tokens=50, seed=7)
    assert resp.choices[0].message.content
    sent = fake_requests[-1]
    for gone in ("store", "metadata", "logprobs", "logit_bias", "modalities", "max_completion_tokens"):
        assert gone not in sent, gone
    assert sent["max_tokens"] == 50 and sent["seed"] == 7


# -- Gemini: an unknown parameter ---------------------------------------------------------------

@pytest.fixture
def gemini():
    with FakeGeminiServer(api_key=GEM_KEY) as fake:
        yield fake


@pytest.fixture
def gemini_client(gateway, gemini, make_openai_client) -> OpenAI:
    return make_openai_client(gateway(providers={"gemini": (gemini.base_url, GEM_KEY)}, max_retries=0))


@pytest.mark.parametrize("param, kwargs", [
    ("moderation", {"moderation": {"model": "omni-moderation-latest"}}),
    ("min_p", {"extra_body": {"min_p": 0.1}}),
])
def test_gemini_refuses_a_param_it_does_not_know(gemini_client: OpenAI, gemini, param, kwargs):
    refused(lambda: gemini_client.chat.completions.create(model=FLASH, messages=HELLO, **kwargs), param)
    assert gemini.requests == []


def test_gemini_still_takes_its_mapped_params_and_hints(gemini_client: OpenAI, gemini):
    resp = gemini_client.chat.completions.create(
        model=FLASH, messages=HELLO, top_p=0.5, seed=3, user="u1", store=True, metadata={"a": "b"},
        service_tier="auto", parallel_tool_calls=True, extra_body={"top_k": 20, "models": [FLASH]})
    assert resp.choices[0].message.content
    config = gemini.requests[-1]["body"]["generationConfig"]
    assert config["topP"] == 0.5 and config["seed"] == 3 and config["topK"] == 20


# -- /v1/messages: a server tool to a non-Anthropic upstream ---------------------------------------

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
ANT_KEY = "sk-ant-fake"


@pytest.fixture
def claude():
    with serve_fake_anthropic(api_key=ANT_KEY) as fake:
        yield fake


@pytest.fixture
def messages_client(gateway, fake_upstream, fake_requests, gemini, claude):
    gw = gateway(providers={"openai": (fake_upstream.base_url, fake_upstream.api_key), "gemini": (gemini.base_url, GEM_KEY),
                            "anthropic": (claude.url, ANT_KEY)}, max_retries=0)
    client = anthropic.Anthropic(base_url=gw.url, api_key=gw.new_key(balance_micros=10_000_000)[0], max_retries=0)
    yield client
    client.close()


@pytest.mark.parametrize("model", ["gpt-4o", FLASH])
@pytest.mark.parametrize("param, kwargs", [
    ("tools[1]", {"tools": [{"name": "get_time", "input_schema": {"type": "object"}}, WEB_SEARCH]}),
    ("mcp_servers", {"extra_body": {"mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "x"}]}}),
])
def test_messages_server_tool_to_a_translating_upstream_is_refused(messages_client, fake_requests, gemini, model,
                                                                    param, kwargs):
    with pytest.raises(anthropic.BadRequestError) as ei:
        messages_client.messages.create(model=model, max_tokens=64, messages=HELLO, **kwargs)
    err = ei.value.body["error"]
    assert err["type"] == "invalid_request_error" and f"'{param}'" in err["message"], err
    assert fake_requests == [] and gemini.requests == []


def test_messages_server_tool_reaches_an_anthropic_upstream(messages_client, claude):
    msg = messages_client.messages.create(model="claude-sonnet-4-20250514", max_tokens=64, messages=HELLO,
                                          tools=[WEB_SEARCH])
    assert msg.content and claude.requests[-1]["tools"] == [WEB_SEARCH]


# -- Anthropic: strict schemas ----------------------------------------------------------------------

@pytest.fixture
def claude_client(gateway, claude, make_openai_client) -> OpenAI:
    return make_openai_client(gateway(providers={"anthropic": (claude.url, ANT_KEY)}, max_retries=0))


def test_anthropic_json_schema_and_tool_strict_become_strict_tools(claude_client: OpenAI, claude):
    """`strict: true` (what `chat.completions.parse` sends) asks for guaranteed schema adherence:
    Anthropic's tool `strict` gives it; without it the answer could break the schema."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": schema, "strict": True}}
    loose = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    claude_client.chat.completions.create(
        model="claude-sonnet-4-20250514", messages=HELLO, tools=[weather, loose],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": schema}})
    sent = {t["name"]: t for t in claude.requests[-1]["tools"]}
    assert sent["get_weather"]["strict"] is True and "strict" not in sent["get_time"]
    assert sent["json_response__answer"]["strict"] is True


# -- Gemini: parallel_tool_calls false -----------------------------------------------------------------

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_gemini_refuses_parallel_tool_calls_false(gemini_client: OpenAI, gemini):
    """Gemini has no switch for it: the caller relying on at most one call could get several."""
    refused(lambda: gemini_client.chat.completions.create(model=FLASH, messages=HELLO, tools=[WEATHER],
                                                          parallel_tool_calls=False), "parallel_tool_calls")
    assert gemini.requests == []
    gemini_client.chat.completions.create(model=FLASH, messages=HELLO, parallel_tool_calls=False)   # no tools: nothing asked
    gemini_client.chat.completions.create(model=FLASH, messages=HELLO, tools=[WEATHER], parallel_tool_calls=True)
    assert len(gemini.requests) == 2


# -- one rule per class: service_tier is priced (refused where the tier is missing), prediction a hint --

@pytest.fixture
def deepseek_client(gateway, fake_upstream, fake_requests, make_openai_client) -> OpenAI:
    return make_openai_client(gateway(providers={"deepseek": (fake_upstream.base_url, fake_upstream.api_key)},
                                      max_retries=0))


def test_service_tier_the_vendor_lacks_is_refused(deepseek_client: OpenAI, fake_requests):
    """flex (cheaper, slower) or priority (dearer, faster): answered at standard price and speed
    instead would not be what the caller chose."""
    refused(lambda: deepseek_client.chat.completions.create(model="deepseek-chat", messages=HELLO,
                                                            service_tier="flex"), "service_tier")
    assert fake_requests == []
    deepseek_client.chat.completions.create(model="deepseek-chat", messages=HELLO, service_tier="auto")
    assert "service_tier" not in fake_requests[-1]


@pytest.mark.parametrize("target", ["claude", "gemini"])
def test_prediction_is_a_dropped_hint(request, target):
    """Predicted Outputs only speed an answer up; an upstream without them gives the same answer."""
    client, fake = ((request.getfixturevalue("claude_client"), request.getfixturevalue("claude")) if target == "claude"
                    else (request.getfixturevalue("gemini_client"), request.getfixturevalue("gemini")))
    model = "claude-sonnet-4-20250514" if target == "claude" else FLASH
    resp = client.chat.completions.create(model=model, messages=HELLO,
                                          prediction={"type": "content", "content": "Hello there"})
    assert resp.choices[0].message.content and "prediction" not in json.dumps(fake.requests[-1])


def test_messages_top_k_reaches_gemini_as_top_k(messages_client, gemini):
    """top_k is a sampling knob Gemini has (chat's `top_k` extension): translated, not dropped."""
    messages_client.messages.create(model=FLASH, max_tokens=64, messages=HELLO, extra_body={"top_k": 20})
    assert gemini.requests[-1]["body"]["generationConfig"]["topK"] == 20


SEARCH_RESULT = {"type": "search_result", "source": "https://example.com/a", "title": "A",
                 "content": [{"type": "text", "text": "Paris is the capital of France."}]}


@pytest.mark.parametrize("model", ["gpt-4o", FLASH])
@pytest.mark.parametrize("param, content", [
    ("messages[0].content[1]", [{"type": "text", "text": "Capital?"}, SEARCH_RESULT]),
    ("messages[2].content[0].content[0]", None),
])
def test_messages_block_a_translation_would_lose_is_refused(messages_client, fake_requests, gemini, model, param,
                                                           content):
    """A user block (or tool result block) with no chat equivalent is the caller's data: not left out."""
    if content is None:
        messages = [{"role": "user", "content": "Capital?"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "search", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [SEARCH_RESULT]}]}]
        tools = [{"name": "search", "input_schema": {"type": "object"}}]
    else:
        messages, tools = [{"role": "user", "content": content}], []
    with pytest.raises(anthropic.BadRequestError) as ei:
        messages_client.messages.create(model=model, max_tokens=64, messages=messages, tools=tools)
    assert f"'{param}'" in ei.value.body["error"]["message"], ei.value.body
    assert fake_requests == [] and gemini.requests == []


# -- routing: a deployment that would refuse is skipped while another can answer ---------------------

def test_fallback_that_can_honour_a_refused_param_answers(gateway, fake_upstream, fake_requests, make_openai_client):
    """`models: [groq model, gpt-4o]` with logprobs: Groq cannot give them, gpt-4o can; the caller
    gets gpt-4o's answer with logprobs sent, not Groq's refusal. With no such fallback, the refusal."""
    gw = gateway(providers={"groq": (fake_upstream.base_url, fake_upstream.api_key),
                            "openai": (fake_upstream.base_url, fake_upstream.api_key)}, max_retries=0)
    client = make_openai_client(gw)
    raw = client.chat.completions.with_raw_response.create(model=GROQ, messages=HELLO, logprobs=True,
                                                           extra_body={"models": ["gpt-4o"]})
    assert raw.parse().model == "gpt-4o" and raw.headers["x-routerone-provider"] == "openai"
    assert [r["model"] for r in fake_requests] == ["gpt-4o"] and fake_requests[0]["logprobs"] is True
    refused(lambda: client.chat.completions.create(model=GROQ, messages=HELLO, logprobs=True, stream=True,
                                                   extra_body={"models": [GROQ]}), "logprobs")

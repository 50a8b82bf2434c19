"""The official `openai` SDK's higher-level helpers, end to end through a real Router One, over each
upstream kind (fake OpenAI-compatible, Anthropic and Gemini): `chat.completions.parse` with a
pydantic `response_format` and with `pydantic_function_tool` tools (strict), the
`chat.completions.stream` context manager's events (content.delta/done,
tool_calls.function.arguments.delta/done) and `get_final_completion()`, `responses.stream` helper
events with `get_final_response()` / `output_text`, `responses.parse` (plain and streamed),
`with_streaming_response` headers and `models.retrieve`. Lower-level wire checks live in
test_chat_*, test_responses*, test_sdk_errors; every body here is checked against OpenAI's spec at
teardown (protocol_helpers.wire)."""
from __future__ import annotations

import json

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel

from protocol_helpers import key, protocol_gateway, wire  # noqa: F401 (fixtures)
from routerone.testing import fake_openai
from routerone.testing.fake_anthropic import serve_fake_anthropic
from routerone.testing.fake_gemini import FakeGeminiServer
from routerone.testing.threaded import ThreadedServer

ANT_KEY, OAI_KEY, GEM_KEY = "sk-ant-fake", "sk-oai-fake-0123456789", "gem-fake-key"
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-20250514", "gemini": "gemini-2.5-flash"}
# what each fake puts in a string field of a schema-shaped answer (tool arguments, structured output)
FAKE_STRING = {"openai": "Paris", "anthropic": "Paris", "gemini": "fake"}
ANSWER_STRING = {"openai": "fake", "anthropic": "Paris", "gemini": "fake"}   # OpenAI's fake: {"answer": "fake"}


class Answer(BaseModel):
    answer: str


class GetWeather(BaseModel):
    """Current weather in a city."""
    city: str


@pytest.fixture(scope="module")
def fakes():
    with serve_fake_anthropic(api_key=ANT_KEY) as ant, \
            ThreadedServer(lambda: fake_openai.make_app(api_key=OAI_KEY)) as oai, \
            FakeGeminiServer(api_key=GEM_KEY) as gem:
        yield {"anthropic": ant, "openai": oai, "gemini": gem}


@pytest.fixture
def gw(gateway, fakes):
    return protocol_gateway(gateway, fakes, {"anthropic": ANT_KEY, "openai": OAI_KEY, "gemini": GEM_KEY})


@pytest.fixture
def client(gw, key, wire):
    c = OpenAI(base_url=gw.base_url, api_key=key[0], max_retries=0, http_client=wire.client())
    yield c
    c.close()


ASK = [{"role": "user", "content": "What is the answer?"}]
WEATHER_ASK = [{"role": "user", "content": "Weather in Paris?"}]
PROVIDERS = list(MODELS)


# -- chat.completions.parse / stream with a pydantic response_format ------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_parse_with_a_pydantic_response_format(client, provider):
    done = client.chat.completions.parse(model=MODELS[provider], messages=ASK, response_format=Answer)
    msg = done.choices[0].message
    assert msg.parsed == Answer(answer=ANSWER_STRING[provider]) and msg.refusal is None
    assert done.choices[0].finish_reason == "stop" and done.model == MODELS[provider]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_with_a_pydantic_response_format(client, provider):
    with client.chat.completions.stream(model=MODELS[provider], messages=ASK, response_format=Answer) as s:
        events = list(s)
        final = s.get_final_completion()
    deltas = [e for e in events if e.type == "content.delta"]
    [content_done] = [e for e in events if e.type == "content.done"]
    assert deltas and "".join(e.delta for e in deltas) == content_done.content == deltas[-1].snapshot
    assert content_done.parsed == Answer(answer=ANSWER_STRING[provider])
    assert final.choices[0].message.parsed == content_done.parsed
    assert final.choices[0].finish_reason == "stop"


# -- pydantic_function_tool: strict tools, parsed arguments ---------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_parse_with_a_pydantic_function_tool(client, provider):
    done = client.chat.completions.parse(model=MODELS[provider], messages=WEATHER_ASK,
                                         tools=[openai.pydantic_function_tool(GetWeather)])
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and all(c.function.name == "GetWeather" for c in calls)
    assert calls[0].function.parsed_arguments == GetWeather(city=FAKE_STRING[provider])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_tool_call_events_with_a_pydantic_function_tool(client, provider):
    with client.chat.completions.stream(model=MODELS[provider], messages=WEATHER_ASK,
                                        tools=[openai.pydantic_function_tool(GetWeather)]) as s:
        events = list(s)
        final = s.get_final_completion()
    arg_deltas = [e for e in events if e.type == "tool_calls.function.arguments.delta"]
    dones = [e for e in events if e.type == "tool_calls.function.arguments.done"]
    assert arg_deltas and dones and [e.index for e in dones] == list(range(len(dones)))
    first = dones[0]
    assert "".join(e.arguments_delta for e in arg_deltas if e.index == 0) == first.arguments
    assert first.name == "GetWeather" and first.parsed_arguments == GetWeather(city=FAKE_STRING[provider])
    calls = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls"
    assert [c.function.arguments for c in calls] == [e.arguments for e in dones]
    assert calls[0].function.parsed_arguments == first.parsed_arguments


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_text_events_and_final_completion(client, provider):
    with client.chat.completions.stream(model=MODELS[provider], messages=ASK,
                                        stream_options={"include_usage": True}) as s:
        events = list(s)
        final = s.get_final_completion()
    deltas = [e for e in events if e.type == "content.delta"]
    [content_done] = [e for e in events if e.type == "content.done"]
    text = final.choices[0].message.content
    assert text and "".join(e.delta for e in deltas) == content_done.content == text
    assert final.choices[0].finish_reason == "stop" and final.model == MODELS[provider]
    assert final.usage is not None and final.usage.completion_tokens > 0
    chunks = [e for e in events if e.type == "chunk"]
    assert len({e.chunk.id for e in chunks}) == 1 and final.id == chunks[0].chunk.id


def test_stream_helper_keeps_candidates_apart(client):
    """n=2 (Gemini's candidateCount): the helper's per-choice events and final choices."""
    with client.chat.completions.stream(model=MODELS["gemini"], messages=ASK, n=2, response_format=Answer) as s:
        events = list(s)
        final = s.get_final_completion()
    assert [c.index for c in final.choices] == [0, 1]
    assert [c.message.parsed for c in final.choices] == [Answer(answer="fake")] * 2
    dones = [e for e in events if e.type == "content.done"]      # one per choice (the events carry no index)
    assert sorted(e.content for e in dones) == sorted(c.message.content for c in final.choices)
    assert all(e.parsed == Answer(answer="fake") for e in dones) and len(dones) == 2


async def test_async_parse_and_stream_helpers(gw, key, wire):
    async with openai.AsyncOpenAI(base_url=gw.base_url, api_key=key[0], max_retries=0,
                                  http_client=wire.async_client()) as c:
        done = await c.chat.completions.parse(model=MODELS["anthropic"], messages=WEATHER_ASK,
                                              tools=[openai.pydantic_function_tool(GetWeather)])
        assert done.choices[0].message.tool_calls[0].function.parsed_arguments == GetWeather(city="Paris")
        async with c.chat.completions.stream(model=MODELS["gemini"], messages=ASK, response_format=Answer) as s:
            async for _ in s:
                pass
            final = await s.get_final_completion()
        assert final.choices[0].message.parsed == Answer(answer="fake")
        async with c.responses.stream(model=MODELS["openai"], input="hi", text_format=Answer) as rs:
            async for _ in rs:
                pass
            resp = await rs.get_final_response()
        assert resp.output_parsed == Answer(answer="fake")


# -- responses helpers ------------------------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_stream_helper_events_and_final_response(client, provider):
    with client.responses.stream(model=MODELS[provider], input="Say hello") as s:
        events = list(s)
        final = s.get_final_response()
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    [text_done] = [e for e in events if e.type == "response.output_text.done"]
    assert deltas and deltas == text_done.text == final.output_text
    assert final.status == "completed" and final.model == MODELS[provider]
    assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_parse_with_a_pydantic_format(client, provider):
    resp = client.responses.parse(model=MODELS[provider], input="What is the answer?", text_format=Answer)
    assert resp.output_parsed == Answer(answer=ANSWER_STRING[provider])
    assert json.loads(resp.output_text) == {"answer": ANSWER_STRING[provider]}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_stream_with_a_pydantic_format(client, provider):
    with client.responses.stream(model=MODELS[provider], input="What is the answer?", text_format=Answer) as s:
        for _ in s:
            pass
        final = s.get_final_response()
    assert final.output_parsed == Answer(answer=ANSWER_STRING[provider])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_parse_with_a_pydantic_function_tool(client, provider):
    tool = openai.pydantic_responses_function_tool(GetWeather)
    resp = client.responses.parse(model=MODELS[provider], input="Weather in Paris?", tools=[tool])
    calls = [o for o in resp.output if o.type == "function_call"]
    assert calls and calls[0].name == "GetWeather"
    assert calls[0].parsed_arguments == GetWeather(city=FAKE_STRING[provider])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_stream_function_call_events_with_a_pydantic_tool(client, provider):
    tool = openai.pydantic_responses_function_tool(GetWeather)
    with client.responses.stream(model=MODELS[provider], input="Weather in Paris?", tools=[tool]) as s:
        events = list(s)
        final = s.get_final_response()
    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    dones = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert deltas and dones and "".join(e.delta for e in deltas if e.output_index == dones[0].output_index) == \
        dones[0].arguments
    calls = [o for o in final.output if o.type == "function_call"]
    assert [c.arguments for c in calls] == [e.arguments for e in dones]
    assert calls[0].name == "GetWeather" and calls[0].parsed_arguments == GetWeather(city=FAKE_STRING[provider])


# -- error classes the SDK raises for a Gemini upstream's failures (OpenAI and Anthropic upstreams:
# test_sdk_errors) -------------------------------------------------------------------------------

GEMINI_FAILURES = [   # directive, openai SDK class, status, error type, code
    ("[[error:400]]", openai.BadRequestError, 400, "invalid_request_error", None),
    ("[[error:404]]", openai.InternalServerError, 502, "upstream_error", "upstream_model_not_found"),
    ("[[error:429]]", openai.RateLimitError, 429, "rate_limit_error", "upstream_rate_limited"),
    ("[[error:500]]", openai.InternalServerError, 502, "upstream_error", "upstream_unavailable"),
    ("[[error:503]]", openai.InternalServerError, 503, "upstream_error", "upstream_unavailable"),
    ("[[error:504]]", openai.InternalServerError, 504, "timeout_error", "upstream_timeout"),
]


@pytest.mark.parametrize("directive, cls, status, typ, code", GEMINI_FAILURES, ids=[f[0][8:11] for f in GEMINI_FAILURES])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_gemini_upstream_failures_as_the_openai_sdk_raises_them(client, directive, cls, status, typ, code, stream):
    with pytest.raises(cls) as info:
        if stream:
            with client.chat.completions.stream(model=MODELS["gemini"], messages=[
                    {"role": "user", "content": "hi " + directive}]) as s:
                s.get_final_completion()
        else:
            client.chat.completions.create(model=MODELS["gemini"], messages=[{"role": "user", "content": "hi " + directive}])
    exc = info.value
    assert exc.status_code == status and exc.type == typ and exc.response.headers["x-request-id"]
    if code is not None:
        assert exc.code == code
    assert exc.message


# -- raw and streaming responses: headers ------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_with_streaming_response_headers(gw, wire, provider):
    secret = gw.new_key(rpm=50, tpm=100_000)[0]
    with OpenAI(base_url=gw.base_url, api_key=secret, max_retries=0, http_client=wire.client()) as c:
        with c.chat.completions.with_streaming_response.create(model=MODELS[provider], messages=ASK,
                                                                stream=True) as resp:
            assert resp.status_code == 200 and resp.headers["x-request-id"]
            assert resp.headers["x-ratelimit-limit-requests"] == "50"
            assert resp.headers["x-ratelimit-remaining-requests"] == "49"
            assert resp.headers["x-ratelimit-limit-tokens"] == "100000"
            assert resp.headers["x-routerone-provider"] == provider
            text = "".join(ch.choices[0].delta.content or "" for ch in resp.parse() if ch.choices)
        assert text
        raw = c.chat.completions.with_raw_response.create(model=MODELS[provider], messages=ASK)
        assert raw.headers["x-request-id"] != resp.headers["x-request-id"]
        assert raw.headers["x-ratelimit-remaining-requests"] == "48"
        assert raw.parse().choices[0].message.content


# -- models ----------------------------------------------------------------------------------------

def test_models_retrieve_every_listed_model(client):
    listed = list(client.models.list())
    assert {MODELS[p] for p in PROVIDERS} <= {m.id for m in listed}
    for m in listed:
        got = client.models.retrieve(m.id)
        assert (got.id, got.object, got.owned_by) == (m.id, "model", m.owned_by)

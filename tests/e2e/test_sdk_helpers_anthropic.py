"""The official `anthropic` SDK's higher-level helpers, end to end through a real Router One, over each
upstream kind (fake Anthropic: pass-through; fake OpenAI-compatible and Gemini: translated):
`messages.stream` tool use (the `input_json` events' partial JSON assembled into the final
`tool_use.input`), `stop_sequences` (`stop_reason: stop_sequence` with `stop_sequence` set),
`messages.count_tokens` and `with_raw_response` (the `request-id` header). Plain text streams and
error classes are in test_messages and test_sdk_errors. Every body and event is checked against
Anthropic's spec at teardown (protocol_helpers.wire)."""
from __future__ import annotations

import json

import anthropic
import httpx2
import pytest
from providers.anthropic_schema import validate_anthropic
from pydantic import BaseModel

from protocol_helpers import key, protocol_gateway, wire  # noqa: F401 (fixtures)
from routerone.testing import fake_openai
from routerone.testing.fake_anthropic import serve_fake_anthropic
from routerone.testing.fake_gemini import FakeGeminiServer
from routerone.testing.threaded import ThreadedServer

ANT_KEY, OAI_KEY, GEM_KEY = "sk-ant-fake", "sk-oai-fake-0123456789", "gem-fake-key"
MODELS = {"anthropic": "claude-sonnet-4-20250514", "openai": "gpt-4o", "gemini": "gemini-2.5-flash"}
CITY = {"anthropic": "Paris", "openai": "Paris", "gemini": "fake"}    # each fake's string argument
WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def fakes():
    with serve_fake_anthropic(api_key=ANT_KEY, tool_calls=2) as ant, \
            ThreadedServer(lambda: fake_openai.make_app(api_key=OAI_KEY)) as oai, \
            FakeGeminiServer(api_key=GEM_KEY, parallel_calls=2) as gem:
        yield {"anthropic": ant, "openai": oai, "gemini": gem}


@pytest.fixture
def gw(gateway, fakes):
    return protocol_gateway(gateway, fakes, {"anthropic": ANT_KEY, "openai": OAI_KEY, "gemini": GEM_KEY})


@pytest.fixture
def client(gw, key, wire):
    c = anthropic.Anthropic(base_url=gw.url, api_key=key[0], max_retries=0, http_client=wire.client())
    yield c
    c.close()


@pytest.mark.parametrize("provider", list(MODELS))
def test_stream_assembles_tool_input_from_input_json_events(client, provider):
    msgs = [{"role": "user", "content": "Weather in Paris and Rome? [[tools:2]]"}]
    with client.messages.stream(model=MODELS[provider], max_tokens=256, tools=[WEATHER], messages=msgs) as s:
        events = list(s)
        final = s.get_final_message()
    uses = [(i, b) for i, b in enumerate(final.content) if b.type == "tool_use"]
    assert len(uses) == 2 and final.stop_reason == "tool_use"
    partial, snapshots = {}, []
    for e in events:
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta":
            partial[e.index] = partial.get(e.index, "") + e.delta.partial_json
        elif e.type == "input_json":           # the SDK's own event: the delta and the input so far
            snapshots.append(e.snapshot)
    assert sorted(partial) == [i for i, _ in uses]
    assert snapshots[-1] == uses[-1][1].input
    for i, block in uses:
        assert json.loads(partial[i]) == block.input == {"city": CITY[provider]}
        assert block.name == "get_weather" and block.id
    stops = [e for e in events if e.type == "content_block_stop"]
    assert [e.content_block.input for e in stops if e.content_block.type == "tool_use"] == [b.input for _, b in uses]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_stop_sequence_is_reported_by_a_pass_through_upstream(client, stream):
    kw = dict(model=MODELS["anthropic"], max_tokens=64, messages=HELLO, stop_sequences=["never", " fake"])
    if stream:
        with client.messages.stream(**kw) as s:
            text = "".join(s.text_stream)
            msg = s.get_final_message()
        assert text == msg.content[0].text
    else:
        msg = client.messages.create(**kw)
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == " fake"
    assert msg.content[0].text == "Hello! This is a reply from the"


@pytest.mark.parametrize("provider", list(MODELS))
def test_count_tokens_over_every_upstream_model(client, fakes, provider):
    n = client.messages.count_tokens(model=MODELS[provider], messages=[{"role": "user", "content": "hello " * 50}],
                                     tools=[WEATHER], system="Be brief.")
    assert 50 <= n.input_tokens < 400
    short = client.messages.count_tokens(model=MODELS[provider], messages=HELLO)
    assert 0 < short.input_tokens < n.input_tokens


@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_with_raw_response_request_id(client, provider, stream):
    kw = dict(model=MODELS[provider], max_tokens=64, messages=HELLO)
    if stream:
        with client.messages.with_streaming_response.create(stream=True, **kw) as resp:
            headers = resp.headers
            assert [e.type for e in resp.parse()][-1] == "message_stop"
    else:
        raw = client.messages.with_raw_response.create(**kw)
        headers, msg = raw.headers, raw.parse()
        assert msg._request_id == headers["request-id"]
    assert headers["request-id"] and headers["request-id"] == headers["x-request-id"]


@pytest.mark.parametrize("call", ["count_tokens", "models.list", "models.retrieve"])
def test_other_routes_name_the_request_id_as_anthropic_does(client, call):
    if call == "count_tokens":
        raw = client.messages.with_raw_response.count_tokens(model=MODELS["openai"], messages=HELLO)
    elif call == "models.list":
        raw = client.models.with_raw_response.list()
    else:
        raw = client.models.with_raw_response.retrieve(MODELS["anthropic"])
    assert raw.headers["request-id"] and raw.headers["request-id"] == raw.headers["x-request-id"]
    assert raw.parse()._request_id == raw.headers["request-id"]


class Answer(BaseModel):
    answer: str


# the fake Anthropic answers its canned text whatever `output_config.format` says, and the fake
# OpenAI answers JSON only without a max_tokens (which Anthropic requires): the translation to an
# OpenAI upstream is checked on what it received, the SDK's parse over Gemini's answer
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_parse_with_an_output_format(client, fakes, stream):
    kw = dict(model=MODELS["gemini"], max_tokens=256, messages=[{"role": "user", "content": "The answer?"}],
              output_format=Answer)
    if stream:
        with client.messages.stream(**kw) as s:
            text = "".join(s.text_stream)
            msg = s.get_final_message()
        assert json.loads(text) == {"answer": "fake"}
    else:
        msg = client.messages.parse(**kw)
    assert msg.parsed_output == Answer(answer="fake") and msg.stop_reason == "end_turn"
    with pytest.raises(ValueError):     # the fake's text is not JSON: the SDK says so
        client.messages.parse(**{**kw, "model": MODELS["openai"]})
    fmt = fakes["openai"].app["fake"].requests[-1]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["properties"] == {
        "answer": {"title": "Answer", "type": "string"}}


def _models_page(gw, key, **query) -> tuple[int, dict]:
    with httpx2.Client(timeout=30) as http:
        r = http.get(gw.url + "/v1/models", params=query,
                     headers={"x-api-key": key[0], "anthropic-version": "2023-06-01"})
    return r.status_code, r.json()


def test_models_list_pages_as_anthropic_does(gw, key, client):
    everything = [m.id for m in client.models.list(limit=1000)]
    assert set(MODELS.values()) <= set(everything) and len(everything) == len(set(everything)) > 3
    assert [m.id for m in client.models.list(limit=2)] == everything     # the SDK follows has_more / last_id
    page = client.models.list(limit=2)
    assert [m.id for m in page.data] == everything[:2] and page.has_more is True
    assert (page.first_id, page.last_id) == (everything[0], everything[1])
    status, body = _models_page(gw, key, limit=2, after_id=everything[1])
    assert status == 200 and [m["id"] for m in body["data"]] == everything[2:4]
    status, body = _models_page(gw, key, limit=2, before_id=everything[3])
    assert status == 200 and [m["id"] for m in body["data"]] == everything[1:3] and body["has_more"] is True
    status, body = _models_page(gw, key, after_id=everything[-1])
    assert status == 200 and body == {"data": [], "first_id": None, "last_id": None, "has_more": False}
    validate_anthropic(_models_page(gw, key)[1], "ListResponse_ModelInfo_")
    for limit in (0, 1001, "x"):
        status, body = _models_page(gw, key, limit=limit)
        assert status == 400 and body["error"]["type"] == "invalid_request_error", body
    one = client.models.with_raw_response.retrieve(MODELS["anthropic"])
    info = json.loads(one.http_response.content)
    validate_anthropic(info, "ModelInfo")
    assert info["id"] == MODELS["anthropic"] and info["max_input_tokens"] > 0 and info["max_tokens"] > 0
    m = one.parse()
    assert (m.type, m.display_name, m.created_at.year) == ("model", MODELS["anthropic"], 1970)


GEMINI_FAILURES = [   # directive, anthropic SDK class, status, error type
    ("[[error:400]]", anthropic.BadRequestError, 400, "invalid_request_error"),
    ("[[error:404]]", anthropic.InternalServerError, 502, "api_error"),
    ("[[error:429]]", anthropic.RateLimitError, 429, "rate_limit_error"),
    ("[[error:500]]", anthropic.InternalServerError, 502, "api_error"),
    ("[[error:503]]", anthropic.InternalServerError, 503, "overloaded_error"),
    ("[[error:504]]", anthropic.GatewayTimeoutError, 504, "timeout_error"),
]


@pytest.mark.parametrize("directive, cls, status, typ", GEMINI_FAILURES, ids=[f[0][8:11] for f in GEMINI_FAILURES])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_gemini_upstream_failures_as_the_anthropic_sdk_raises_them(client, directive, cls, status, typ, stream):
    kw = dict(model=MODELS["gemini"], max_tokens=64, messages=[{"role": "user", "content": "hi " + directive}])
    with pytest.raises(cls) as info:
        if stream:
            with client.messages.stream(**kw) as s:
                s.get_final_message()
        else:
            client.messages.create(**kw)
    exc = info.value
    assert exc.status_code == status and exc.body["error"]["type"] == typ and exc.body["error"]["message"]
    assert exc.request_id and exc.request_id == exc.response.headers["request-id"]

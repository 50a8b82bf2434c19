"""Issue 3 end to end, Anthropic: the official `openai` SDK (sync and async) -> a real Router One ->
the fake Anthropic Messages upstream (`routerone.testing.fake_anthropic`).

Covered: a multi-turn conversation with parallel tool calls and tool results (streamed and not, and
through the SDK's own stream accumulator); images as data: and https URLs; `response_format`
json_schema (content is JSON that parses, also via `chat.completions.parse`); stop sequences
(`finish_reason: stop`); a `max_tokens` cut (`length`); upstream 529 and 429 (-> `RateLimitError`
with Retry-After); a mid-stream `error` event (the SDK raises `APIError`; a raw read shows a
finish_reason "error" chunk, then an error event, and no [DONE]); usage in the last stream chunk
(prompt_tokens includes cache reads and writes; `usage.cost` is the ledger's charge); the
`x-routerone-provider` header; the public model id in responses; an unsupported parameter is a 400
naming it, with no upstream call.

Every response the SDK (or a raw client) receives goes through conftest's recording transport and
is validated against OpenAI's spec (`openai_schema.wire_problems`) after each test; the deliberate
finish_reason "error" chunk is checked separately here.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema
import openai
import pytest
from openai import OpenAI

from chat_helpers import Weather, accumulate, assistant_turn, charges, everything_validates, raw_post, tool_results  # noqa: F401
from openai_schema import ERROR_FINISH_REASON, sse_payloads, validate_chunk, validate_completion, validate_error
from routerone.testing.fake_anthropic import serve_fake_anthropic
from routerone.tokens import count_text_tokens

KEY = "sk-ant-test"
SONNET = "claude-sonnet-4-20250514"
HAIKU = "claude-3-5-haiku-20241022"
CACHE_READ, CACHE_WRITE = 40, 8          # what the fake reports on every answer
REPLY = "Hello! This is a reply from the fake Claude. Ask"   # the fake's canned 12-token answer
PREAMBLE = "Let me check."                # the fake's text before tool calls (tool_choice auto)
HELLO = [{"role": "user", "content": "Say hello"}]

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a timezone",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}, "utc_offset": {"type": "integer"}}}}}
WEATHER_ARGS, TIME_ARGS = {"city": "Paris"}, {"tz": "Paris", "utc_offset": 1}

ANSWER_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["city", "temp_c", "sunny"],
                 "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"},
                                "sunny": {"type": "boolean"}}}
JSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "weather", "strict": True, "schema": ANSWER_SCHEMA}}

# a real 1x1 PNG
PNG_B64 = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2a7e6b40000000049454e44ae426082")).decode()
PNG_URL = f"data:image/png;base64,{PNG_B64}"
HTTPS_URL = "https://example.com/images/cat.jpg"


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_anthropic():
    """One fake Anthropic for the module: two parallel tool calls per tool answer, cache usage."""
    with serve_fake_anthropic(api_key=KEY, tool_calls=2, cache_read_input_tokens=CACHE_READ,
                              cache_creation_input_tokens=CACHE_WRITE) as fake:
        yield fake


@pytest.fixture
def upstream(fake_anthropic):
    """The fake, with this test's received requests only and no leftover faults."""
    fake_anthropic.requests.clear()
    fake_anthropic.fake.faults.clear()
    return fake_anthropic


@pytest.fixture
def gw(gateway, upstream):
    """Overrides conftest's `gw` (so `funded_key`/`openai_client`/`async_openai_client` use it): a
    Router One whose only provider is the fake Anthropic, gateway retries off."""
    return gateway(providers={"anthropic": (upstream.url, KEY)}, max_retries=0)


# -- helpers ----------------------------------------------------------------------------------

def sonnet_cost_micros(prompt: int, cached: int, written: int, completion: int) -> int:
    """claude-sonnet-4: $3 in, $0.30 cache read, $3.75 cache write, $15 out per 1M; rounded up once."""
    total = (prompt - cached - written) * 3_000_000 + cached * 300_000 + written * 3_750_000 + completion * 15_000_000
    return -(-total // 1_000_000)


def assert_upstream_tool_turns(sent: dict, calls: list[dict], preamble: str | None) -> None:
    """The Messages body for [user, assistant(tool_calls), tool, tool]: one assistant turn with
    tool_use blocks carrying the same ids, and one user turn opening with the tool_result blocks."""
    user, assistant, results = sent["messages"][-3:]
    assert user["role"] == "user" and assistant["role"] == "assistant" and results["role"] == "user"
    uses = [b for b in assistant["content"] if b["type"] == "tool_use"]
    assert [(u["id"], u["name"], u["input"]) for u in uses] == [
        (c["id"], c["name"], json.loads(c["arguments"])) for c in calls]
    if preamble:
        assert assistant["content"][0] == {"type": "text", "text": preamble}
    assert [(b["type"], b["tool_use_id"], b["content"]) for b in results["content"]] == [
        ("tool_result", c["id"], json.dumps({"result": i})) for i, c in enumerate(calls)]


# -- plain answers: provider header, public model id, usage and cost ---------------------------

def test_plain_answer_names_provider_and_public_model(gw, funded_key, openai_client: OpenAI, upstream):
    raw = openai_client.chat.completions.with_raw_response.create(model=SONNET, messages=HELLO)
    validate_completion(json.loads(raw.http_response.content))
    resp = raw.parse()
    assert raw.headers["x-routerone-provider"] == "anthropic"
    assert raw.headers["x-routerone-model"] == SONNET
    assert resp.model == SONNET and resp.object == "chat.completion"
    choice = resp.choices[0]
    assert choice.message.content == REPLY and choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    # the Messages request: the catalog's default max_tokens for a caller who gave none
    [sent] = upstream.requests
    assert sent == {"model": SONNET, "max_tokens": 8192, "messages": [{"role": "user", "content": "Say hello"}]}
    u = resp.usage
    assert u.prompt_tokens == count_text_tokens("Say hello") + CACHE_READ + CACHE_WRITE
    assert u.prompt_tokens_details.cached_tokens == CACHE_READ
    assert u.completion_tokens == 12 and u.total_tokens == u.prompt_tokens + 12
    cost = round(u.model_extra["cost"] * 1_000_000)
    assert cost == sonnet_cost_micros(u.prompt_tokens, CACHE_READ, CACHE_WRITE, 12)
    assert charges(gw, funded_key[1]) == [-cost]


def test_stream_include_usage_cost_is_the_ledger_charge(gw, funded_key, openai_client: OpenAI):
    raw = openai_client.chat.completions.with_raw_response.create(
        model=SONNET, messages=[{"role": "system", "content": "Be brief."}, *HELLO], stream=True,
        stream_options={"include_usage": True})
    assert raw.headers["x-routerone-provider"] == "anthropic"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    *body, last = chunks
    assert body[0].choices[0].delta.role == "assistant"
    text, calls, finish = accumulate(body)
    assert text == REPLY and not calls and finish == "stop"
    assert all(c.usage is None for c in body)
    assert {(c.id, c.created, c.model, c.object) for c in chunks} == {
        (chunks[0].id, chunks[0].created, SONNET, "chat.completion.chunk")}
    assert last.choices == []
    u = last.usage
    # prompt = input + cache reads + cache writes (the fake counts the system text as input too)
    assert u.prompt_tokens == count_text_tokens("Be brief.\nSay hello") + CACHE_READ + CACHE_WRITE
    assert u.prompt_tokens_details.cached_tokens == CACHE_READ
    assert u.completion_tokens == 12 and u.total_tokens == u.prompt_tokens + 12
    cost = round(u.model_extra["cost"] * 1_000_000)
    assert cost == sonnet_cost_micros(u.prompt_tokens, CACHE_READ, CACHE_WRITE, 12)
    assert charges(gw, funded_key[1]) == [-cost]
    assert gw.account(funded_key[1])["reserved_micros"] == 0


def test_raw_stream_framing_ends_with_usage_and_done(openai_wire, gw, funded_key):
    resp = raw_post(openai_wire, gw, funded_key[0], {"model": HAIKU, "messages": HELLO, "stream": True,
                                                     "stream_options": {"include_usage": True}})
    assert resp.status_code == 200 and resp.headers["x-routerone-provider"] == "anthropic"
    payloads = sse_payloads(resp.content)
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    chunks = [json.loads(p) for p in payloads[:-1]]
    for c in chunks:
        validate_chunk(c)
    assert chunks[-1]["choices"] == [] and set(chunks[-1]["usage"]) >= {
        "prompt_tokens", "completion_tokens", "total_tokens", "cost"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert {c["model"] for c in chunks} == {HAIKU}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_response_model_is_the_public_id_not_the_upstream_name(tmp_path: Path, gateway, upstream,
                                                               make_openai_client, stream):
    (tmp_path / "catalog.toml").write_text(
        f'[[model]]\nid = "{SONNET}"\nprovider = "anthropic"\nupstream = "claude-sonnet-4-0"\n')
    gw = gateway(providers={"anthropic": (upstream.url, KEY)}, max_retries=0,
                 catalog_path=str(tmp_path / "catalog.toml"))
    client = make_openai_client(gw)
    raw = client.chat.completions.with_raw_response.create(model=f"anthropic/{SONNET}", messages=HELLO,
                                                           stream=stream)
    assert upstream.requests[-1]["model"] == "claude-sonnet-4-0"   # the fake echoes this name back
    assert raw.headers["x-routerone-provider"] == "anthropic"
    assert raw.headers["x-routerone-model"] == SONNET
    if stream:
        assert {c.model for c in raw.parse()} == {SONNET}
    else:
        assert raw.parse().model == SONNET


# -- multi-turn conversations with parallel tool calls --------------------------------------------

def test_multi_turn_parallel_tools_json_sync(openai_client: OpenAI, upstream):
    messages = [{"role": "system", "content": "You are a travel assistant."},
                {"role": "user", "content": "Weather and local time in Paris?"}]
    first = openai_client.chat.completions.create(model=SONNET, messages=messages, tools=[WEATHER, TIME])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == PREAMBLE
    calls = choice.message.tool_calls
    assert [(c.type, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("function", "get_weather", WEATHER_ARGS), ("function", "get_time", TIME_ARGS)]
    assert len({c.id for c in calls}) == 2
    sent = upstream.requests[-1]
    assert sent["system"] == "You are a travel assistant."
    assert [t["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["tools"][0]["input_schema"] == WEATHER["function"]["parameters"]
    assert "tool_choice" not in sent    # auto, parallel allowed: Anthropic's default

    # turn 2: the tool results -> a text answer
    messages += [choice.message.model_dump(exclude_none=True),
                 *tool_results([{"id": c.id} for c in calls])]
    second = openai_client.chat.completions.create(model=SONNET, messages=messages, tools=[WEATHER, TIME])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == REPLY and not second.choices[0].message.tool_calls
    assert_upstream_tool_turns(upstream.requests[-1], [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in calls], PREAMBLE)

    # turn 3: a new question -> tools again; the whole history goes up, roles alternating
    messages += [second.choices[0].message.model_dump(exclude_none=True),
                 {"role": "user", "content": "And in Rome?"}]
    third = openai_client.chat.completions.create(model=SONNET, messages=messages, tools=[WEATHER, TIME])
    assert third.choices[0].finish_reason == "tool_calls" and len(third.choices[0].message.tool_calls) == 2
    sent = upstream.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert sent[-2]["content"] == REPLY and sent[-1]["content"] == "And in Rome?"
    assert len(upstream.requests) == 3


async def test_multi_turn_parallel_tools_streamed_async(async_openai_client, upstream):
    messages = [{"role": "user", "content": "Weather and local time in Paris?"}]
    stream = await async_openai_client.chat.completions.create(
        model=SONNET, messages=messages, tools=[WEATHER, TIME], stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    text, calls, finish = accumulate(chunks)
    assert finish == "tool_calls" and text == PREAMBLE
    assert sorted(calls) == [0, 1]
    assert [(calls[i]["type"], calls[i]["name"]) for i in (0, 1)] == [("function", "get_weather"),
                                                                      ("function", "get_time")]
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [WEATHER_ARGS, TIME_ARGS]
    assert calls[0]["id"] != calls[1]["id"]
    # arguments arrive in fragments that carry only the index after the first delta
    fragments = [tc for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or () if tc.id is None]
    assert len(fragments) >= 4 and all(tc.function.name is None for tc in fragments)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert upstream.requests[-1]["stream"] is True

    ordered = [calls[0], calls[1]]
    messages += [assistant_turn(text, ordered), *tool_results(ordered)]
    stream = await async_openai_client.chat.completions.create(
        model=SONNET, messages=messages, tools=[WEATHER, TIME], stream=True)
    text2, calls2, finish2 = accumulate([c async for c in stream])
    assert (text2, calls2, finish2) == (REPLY, {}, "stop")
    assert_upstream_tool_turns(upstream.requests[-1], ordered, PREAMBLE)


def test_sdk_stream_accumulator_agrees(openai_client: OpenAI, upstream):
    messages = [{"role": "user", "content": "Both, please"}]
    with openai_client.chat.completions.stream(model=HAIKU, messages=messages, tools=[WEATHER, TIME]) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == PREAMBLE
    assert [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        ("get_weather", WEATHER_ARGS), ("get_time", TIME_ARGS)]
    assert [e.index for e in done] == [0, 1]
    calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
             for c in choice.message.tool_calls]
    messages += [assistant_turn(choice.message.content, calls), *tool_results(calls)]
    with openai_client.chat.completions.stream(model=HAIKU, messages=messages, tools=[WEATHER, TIME]) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == REPLY and final.choices[0].finish_reason == "stop"
    assert_upstream_tool_turns(upstream.requests[-1], calls, PREAMBLE)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_parallel_tool_calls_false_gives_one_call(openai_client: OpenAI, upstream, stream):
    result = openai_client.chat.completions.create(model=SONNET, messages=[{"role": "user", "content": "Both"}],
                                                   tools=[WEATHER, TIME], parallel_tool_calls=False, stream=stream)
    if stream:
        _, calls, finish = accumulate(result)
        names = [calls[i]["name"] for i in sorted(calls)]
    else:
        finish, names = result.choices[0].finish_reason, [c.function.name for c in result.choices[0].message.tool_calls]
    assert finish == "tool_calls" and names == ["get_weather"]
    assert upstream.requests[-1]["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


# -- images --------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_image_data_url_and_https_url(openai_client: OpenAI, upstream, stream):
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": HTTPS_URL}}]}]
    result = openai_client.chat.completions.create(model=SONNET, messages=messages, stream=stream)
    if stream:
        text, _, finish = accumulate(result)
    else:
        text, finish = result.choices[0].message.content, result.choices[0].finish_reason
    assert (text, finish) == (REPLY, "stop")
    [turn] = upstream.requests[-1]["messages"]
    assert turn == {"role": "user", "content": [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": HTTPS_URL}}]}


def test_unsupported_image_type_is_a_400_without_upstream_call(openai_client: OpenAI, upstream):
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "Look"},
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]
    with pytest.raises(openai.BadRequestError) as ei:
        openai_client.chat.completions.create(model=SONNET, messages=messages)
    assert ei.value.body["param"] == "messages[0].content[1].image_url.url"
    assert upstream.requests == []


# -- structured output -----------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_json_schema_response_format(openai_client: OpenAI, upstream, stream):
    result = openai_client.chat.completions.create(
        model=SONNET, messages=[{"role": "user", "content": "Weather in Paris as JSON"}],
        response_format=JSON_FORMAT, stream=stream)
    if stream:
        text, calls, finish = accumulate(result)
    else:
        msg = result.choices[0].message
        text, calls, finish = msg.content, msg.tool_calls or {}, result.choices[0].finish_reason
    assert finish == "stop" and not calls
    answer = json.loads(text)
    jsonschema.validate(answer, ANSWER_SCHEMA)
    assert answer == {"city": "Paris", "temp_c": 1.5, "sunny": True}
    sent = upstream.requests[-1]
    assert [t["name"] for t in sent["tools"]] == ["json_response__weather"]
    assert sent["tools"][0]["input_schema"] == ANSWER_SCHEMA
    assert sent["tool_choice"] == {"type": "tool", "name": "json_response__weather"}


def test_sdk_parse_with_pydantic_model(openai_client: OpenAI):
    parsed = openai_client.chat.completions.parse(
        model=HAIKU, messages=[{"role": "user", "content": "Weather in Paris"}], response_format=Weather)
    assert parsed.choices[0].message.parsed == Weather(city="Paris", temp_c=1.5, sunny=True)
    assert parsed.choices[0].finish_reason == "stop"


# -- stop sequences and max_tokens ---------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_stop_sequence_finishes_with_stop(openai_client: OpenAI, upstream, stream):
    stop = ["fake", "never-said"] if not stream else "fake"
    result = openai_client.chat.completions.create(model=SONNET, messages=HELLO, stop=stop, stream=stream)
    if stream:
        text, _, finish = accumulate(result)
    else:
        text, finish = result.choices[0].message.content, result.choices[0].finish_reason
    assert finish == "stop"
    assert text == "Hello! This is a reply from the "     # cut before the stop sequence, which is not included
    assert upstream.requests[-1]["stop_sequences"] == (stop if isinstance(stop, list) else [stop])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_max_tokens_cut_finishes_with_length(gw, funded_key, openai_client: OpenAI, upstream, stream):
    kwargs = dict(stream=True, stream_options={"include_usage": True}) if stream else {}
    limit = {"max_completion_tokens": 3} if stream else {"max_tokens": 5}
    result = openai_client.chat.completions.create(model=SONNET, messages=HELLO, **limit, **kwargs)
    if stream:
        chunks = list(result)
        text, _, finish = accumulate(chunks)
        usage = chunks[-1].usage
    else:
        text, finish, usage = result.choices[0].message.content, result.choices[0].finish_reason, result.usage
    n = next(iter(limit.values()))
    assert finish == "length"
    assert text == {5: "Hello! This is a", 3: "Hello! This"}[n]
    assert usage.completion_tokens == n
    assert upstream.requests[-1]["max_tokens"] == n
    assert charges(gw, funded_key[1]) == [-round(usage.model_extra["cost"] * 1_000_000)]


# -- upstream errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_529_overloaded(gw, funded_key, openai_client: OpenAI, upstream, stream):
    with pytest.raises(openai.InternalServerError) as ei:
        openai_client.chat.completions.create(
            model=SONNET, messages=[{"role": "user", "content": "Hi [[error:529]]"}], stream=stream)
    err = ei.value
    assert err.status_code == 503
    assert err.body["code"] == "upstream_overloaded" and err.body["type"] == "upstream_error"
    assert "overloaded" in err.body["message"].lower()
    validate_error({"error": err.body})
    assert len(upstream.requests) == 1          # gateway max_retries=0, one deployment: one try
    assert charges(gw, funded_key[1]) == []     # a failed request costs nothing
    assert gw.account(funded_key[1])["reserved_micros"] == 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_429_is_rate_limit_error_with_retry_after(openai_client: OpenAI, upstream, stream):
    with pytest.raises(openai.RateLimitError) as ei:
        openai_client.chat.completions.create(
            model=SONNET, messages=[{"role": "user", "content": "Hi [[error:429]]"}], stream=stream)
    assert ei.value.status_code == 429
    assert ei.value.response.headers["retry-after"] == "1"      # the fake's retry-after
    assert ei.value.body["code"] == "upstream_rate_limited"
    assert len(upstream.requests) == 1


async def test_queued_429_passes_its_retry_after_through_async(async_openai_client, upstream):
    upstream.queue_faults({"status": 429, "retry_after": 7})
    with pytest.raises(openai.RateLimitError) as ei:
        await async_openai_client.chat.completions.create(model=HAIKU, messages=HELLO, stream=True)
    assert ei.value.response.headers["retry-after"] == "7"
    assert ei.value.response.headers["x-request-id"]
    assert len(upstream.requests) == 1
    # the next request is fine again
    ok = await async_openai_client.chat.completions.create(model=HAIKU, messages=HELLO)
    assert ok.choices[0].message.content == REPLY


def test_unsupported_parameter_is_400_naming_it_without_upstream_call(gw, funded_key, openai_client: OpenAI,
                                                                     upstream):
    with pytest.raises(openai.BadRequestError) as ei:
        openai_client.chat.completions.create(model=SONNET, messages=HELLO, n=2)
    assert ei.value.body["param"] == "n" and ei.value.body["code"] == "unsupported_parameter"
    assert "'n'" in ei.value.body["message"]
    with pytest.raises(openai.BadRequestError) as ei:
        openai_client.chat.completions.create(model=SONNET, messages=HELLO, logprobs=True, stream=True)
    assert ei.value.body["param"] == "logprobs"
    assert upstream.requests == []
    assert charges(gw, funded_key[1]) == [] and gw.account(funded_key[1])["reserved_micros"] == 0
    # the neutral value is accepted and dropped
    ok = openai_client.chat.completions.create(model=SONNET, messages=HELLO, n=1)
    assert ok.choices[0].message.content == REPLY and "n" not in upstream.requests[-1]


# -- a stream that fails after its first token ---------------------------------------------------

@pytest.fixture
def paced_gw(gateway):
    """A gateway on a fake that paces its events, so the error event arrives after the first token
    was relayed (an error before it fails over instead, invisibly)."""
    with serve_fake_anthropic(api_key=KEY, chunk_interval_ms=15) as fake:
        yield gateway(providers={"anthropic": (fake.url, KEY)}, max_retries=0), fake


def test_mid_stream_error_raises_api_error_in_the_sdk(paced_gw, make_openai_client):
    gw, fake = paced_gw
    key, account_id = gw.new_key()
    client = make_openai_client(gw, key)
    stream = client.chat.completions.create(
        model=SONNET, messages=[{"role": "user", "content": "Hi [[stream_error:2]]"}], stream=True,
        stream_options={"include_usage": True})
    seen: list[str] = []
    with pytest.raises(openai.APIError) as ei:
        for chunk in stream:
            seen += [c.delta.content or "" for c in chunk.choices]
    assert not isinstance(ei.value, openai.APIStatusError)   # an in-stream error event, not an HTTP status
    assert "overloaded" in str(ei.value).lower()
    assert "".join(seen) == "Hello!"
    assert len(fake.requests) == 1
    assert gw.account(account_id)["reserved_micros"] == 0


def test_mid_stream_error_raw_wire(openai_wire, paced_gw):
    gw, _ = paced_gw
    key, _ = gw.new_key()
    resp = raw_post(openai_wire, gw, key, {"model": SONNET, "stream": True, "stream_options": {"include_usage": True},
                                           "messages": [{"role": "user", "content": "Hi [[stream_error:3]]"}]})
    assert resp.status_code == 200 and resp.headers["x-routerone-provider"] == "anthropic"
    payloads = sse_payloads(resp.content)
    assert "[DONE]" not in payloads
    *chunks, finish_chunk, error_event = [json.loads(p) for p in payloads]
    for c in chunks:
        validate_chunk(c)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello! This"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    # the error-finish chunk: Router One's extension of the enum; otherwise a valid chunk
    assert finish_chunk["choices"] == [{"index": 0, "delta": {}, "finish_reason": ERROR_FINISH_REASON,
                                        "logprobs": None}]
    assert finish_chunk["id"] == chunks[0]["id"] and finish_chunk["model"] == SONNET
    validate_chunk({**finish_chunk, "choices": [{**finish_chunk["choices"][0], "finish_reason": "stop"}]})
    validate_error(error_event)
    assert error_event["error"]["code"] == "upstream_overloaded"
    assert "Overloaded" in error_event["error"]["message"]


def test_mid_stream_error_bills_the_tokens_already_relayed(paced_gw, make_openai_client):
    gw, _ = paced_gw
    key, account_id = gw.new_key()
    client = make_openai_client(gw, key)
    relayed = 0
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
                model=SONNET, stream=True,
                messages=[{"role": "user", "content": "Hi [[words:40]] [[stream_error:30]]"}]):
            relayed += sum(1 for c in chunk.choices if c.delta.content)
    assert relayed == 30
    [charge] = charges(gw, account_id)
    # 30 relayed output tokens at $15 per 1M are 450 micro-dollars, before any input
    assert -charge >= 30 * 15

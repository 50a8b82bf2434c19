"""Issue 3 end to end, Gemini: the official `openai` SDK (sync and async) -> a real Router One ->
the fake Gemini upstream (`routerone.testing.fake_gemini`, REST v1beta, vendor base_url ends in /v1beta).

Covered: a multi-turn conversation with parallel tool calls and tool results (streamed and not,
through the SDK's stream accumulator, and with Gemini 3 call ids + thought signatures riding in the
tool-call id); images as data: and https URLs; `response_format` json_schema (content is JSON that
parses, also via `chat.completions.parse`); stop sequences (`finish_reason: stop`); a `max_tokens`
cut (`length`); upstream 503 and 429 (-> `RateLimitError` with Retry-After from Google's RetryInfo);
a mid-stream `{"error": ...}` event and a dropped connection (the SDK raises `APIError`; a raw read
shows a finish_reason "error" chunk, then an error event, and no [DONE]); usage in the last stream
chunk (`usage.cost` is the ledger's charge); the `x-routerone-provider` header; the public model
id in responses; an unsupported parameter is a 400 naming it, with no upstream call.

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
from routerone.testing.fake_gemini import FakeGeminiServer

KEY = "gemini-test-key"
FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"
CACHED = 2                                 # cachedContentTokenCount the fake reports (capped at the prompt)
REPLY = "Hello! This is a reply from the fake Gemini upstream."   # the fake's 12-piece answer
HELLO = [{"role": "user", "content": "Say hello"}]

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a timezone",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}, "utc_offset": {"type": "integer"}}}}}
WEATHER_ARGS, TIME_ARGS = {"city": "fake"}, {"tz": "fake", "utc_offset": 1}   # the fake samples the schema
TOOL_REPLY = 'Thanks! The tool said: {"result":0}'     # the fake quotes the first functionResponse

ANSWER_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["city", "temp_c", "sunny"],
                 "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"},
                                "sunny": {"type": "boolean"}}}
JSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "weather", "strict": True, "schema": ANSWER_SCHEMA}}

PNG_B64 = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2a7e6b40000000049454e44ae426082")).decode()
PNG_URL = f"data:image/png;base64,{PNG_B64}"
HTTPS_URL = "https://example.com/images/cat.jpg"


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture
def upstream():
    """A fresh fake Gemini per test (its requests and queued faults are this test's alone): two
    parallel function calls per tool answer, cached-content usage."""
    with FakeGeminiServer(api_key=KEY, parallel_calls=2, cached_tokens=CACHED) as fake:
        yield fake


@pytest.fixture
def gw(gateway, upstream):
    """Overrides conftest's `gw` (so `funded_key`/`openai_client`/`async_openai_client` use it): a
    Router One whose only provider is the fake Gemini, gateway retries off."""
    return gateway(providers={"gemini": (upstream.base_url, KEY)}, max_retries=0)


# -- helpers ----------------------------------------------------------------------------------

def flash_cost_micros(prompt: int, cached: int, completion: int) -> int:
    """gemini-2.5-flash: $0.30 in, $0.075 cached, $2.50 out per 1M tokens; rounded up once."""
    total = (prompt - cached) * 300_000 + cached * 75_000 + completion * 2_500_000
    return -(-total // 1_000_000)


def words(*texts: str) -> int:
    """The fake's promptTokenCount: whitespace-separated words of every text part."""
    return sum(len(t.split()) for t in texts)


def assert_upstream_tool_turns(body: dict, calls: list[dict]) -> None:
    """The Gemini body for [user, assistant(tool_calls), tool, tool]: one `model` content with the
    functionCall parts, then one `user` content with a functionResponse per call (same id, name)."""
    user, model, results = body["contents"][-3:]
    assert (user["role"], model["role"], results["role"]) == ("user", "model", "user")
    fcs = [p["functionCall"] for p in model["parts"]]
    assert [(f["name"], f["args"]) for f in fcs] == [(c["name"], json.loads(c["arguments"])) for c in calls]
    assert [p["functionResponse"] for p in results["parts"]] == [
        {"id": f["id"], "name": f["name"], "response": {"result": i}} for i, f in enumerate(fcs)]


# -- plain answers: provider header, public model id, usage and cost ---------------------------

def test_plain_answer_names_provider_and_public_model(gw, funded_key, openai_client: OpenAI, upstream):
    raw = openai_client.chat.completions.with_raw_response.create(
        model=FLASH, messages=[{"role": "system", "content": "Be brief."}, *HELLO])
    validate_completion(json.loads(raw.http_response.content))
    resp = raw.parse()
    assert raw.headers["x-routerone-provider"] == "gemini"
    assert raw.headers["x-routerone-model"] == FLASH
    assert resp.model == FLASH and resp.object == "chat.completion"
    choice = resp.choices[0]
    assert choice.message.content == REPLY and choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    [sent] = upstream.requests
    assert (sent["model"], sent["stream"], sent["api_key"]) == (FLASH, False, KEY)
    assert sent["body"] == {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
                            "systemInstruction": {"parts": [{"text": "Be brief."}]}}
    u = resp.usage
    assert u.prompt_tokens == words("Be brief.", "Say hello")
    assert u.prompt_tokens_details.cached_tokens == CACHED
    assert u.completion_tokens == 12 and u.total_tokens == u.prompt_tokens + 12
    cost = round(u.model_extra["cost"] * 1_000_000)
    assert cost == flash_cost_micros(u.prompt_tokens, CACHED, 12)
    assert charges(gw, funded_key[1]) == [-cost]


def test_stream_include_usage_cost_is_the_ledger_charge(gw, funded_key, openai_client: OpenAI, upstream):
    raw = openai_client.chat.completions.with_raw_response.create(
        model=FLASH, messages=HELLO, stream=True, stream_options={"include_usage": True})
    assert raw.headers["x-routerone-provider"] == "gemini"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    *body, last = chunks
    assert body[0].choices[0].delta.role == "assistant"
    text, calls, finish = accumulate(body)
    assert text == REPLY and not calls and finish == "stop"
    assert all(c.usage is None for c in body)
    assert {(c.id, c.created, c.model, c.object) for c in chunks} == {
        (chunks[0].id, chunks[0].created, FLASH, "chat.completion.chunk")}
    assert last.choices == []
    u = last.usage
    assert u.prompt_tokens == words("Say hello") and u.prompt_tokens_details.cached_tokens == CACHED
    assert u.completion_tokens == 12 and u.total_tokens == u.prompt_tokens + 12
    cost = round(u.model_extra["cost"] * 1_000_000)
    assert cost == flash_cost_micros(u.prompt_tokens, CACHED, 12)
    assert charges(gw, funded_key[1]) == [-cost]
    assert gw.account(funded_key[1])["reserved_micros"] == 0
    assert upstream.requests[-1]["stream"] is True    # :streamGenerateContent?alt=sse


def test_raw_stream_framing_ends_with_usage_and_done(openai_wire, gw, funded_key):
    resp = raw_post(openai_wire, gw, funded_key[0], {"model": PRO, "messages": HELLO, "stream": True,
                                                     "stream_options": {"include_usage": True}})
    assert resp.status_code == 200 and resp.headers["x-routerone-provider"] == "gemini"
    payloads = sse_payloads(resp.content)
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    chunks = [json.loads(p) for p in payloads[:-1]]
    for c in chunks:
        validate_chunk(c)
    assert chunks[-1]["choices"] == [] and set(chunks[-1]["usage"]) >= {
        "prompt_tokens", "completion_tokens", "total_tokens", "cost"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert {c["model"] for c in chunks} == {PRO}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_response_model_is_the_public_id_not_the_upstream_name(tmp_path: Path, gateway, upstream,
                                                               make_openai_client, stream):
    (tmp_path / "catalog.toml").write_text(
        f'[[model]]\nid = "{FLASH}"\nprovider = "gemini"\nupstream = "gemini-flash-latest"\n')
    gw = gateway(providers={"gemini": (upstream.base_url, KEY)}, max_retries=0,
                 catalog_path=str(tmp_path / "catalog.toml"))
    client = make_openai_client(gw)
    raw = client.chat.completions.with_raw_response.create(model=f"gemini/{FLASH}", messages=HELLO, stream=stream)
    assert upstream.requests[-1]["model"] == "gemini-flash-latest"   # and its modelVersion says so
    assert raw.headers["x-routerone-provider"] == "gemini"
    assert raw.headers["x-routerone-model"] == FLASH
    if stream:
        assert {c.model for c in raw.parse()} == {FLASH}
    else:
        assert raw.parse().model == FLASH


# -- multi-turn conversations with parallel tool calls --------------------------------------------

def test_multi_turn_parallel_tools_json_sync(openai_client: OpenAI, upstream):
    messages = [{"role": "system", "content": "You are a travel assistant."},
                {"role": "user", "content": "Weather and local time in Paris?"}]
    first = openai_client.chat.completions.create(model=FLASH, messages=messages, tools=[WEATHER, TIME])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert [(c.type, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("function", "get_weather", WEATHER_ARGS), ("function", "get_time", TIME_ARGS)]
    assert len({c.id for c in calls}) == 2
    sent = upstream.requests[-1]["body"]
    assert sent["systemInstruction"] == {"parts": [{"text": "You are a travel assistant."}]}
    decls = sent["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in decls] == ["get_weather", "get_time"]
    assert decls[0]["parameters"]["properties"] == {"city": {"type": "STRING"}}
    assert "toolConfig" not in sent      # auto: Gemini's default

    # turn 2: the tool results -> a text answer
    as_dicts = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in calls]
    messages += [choice.message.model_dump(exclude_none=True), *tool_results(as_dicts)]
    second = openai_client.chat.completions.create(model=FLASH, messages=messages, tools=[WEATHER, TIME])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == TOOL_REPLY and not second.choices[0].message.tool_calls
    assert_upstream_tool_turns(upstream.requests[-1]["body"], as_dicts)

    # turn 3: a new question -> tools again; the whole history goes up, roles alternating
    messages += [second.choices[0].message.model_dump(exclude_none=True),
                 {"role": "user", "content": "And in Rome?"}]
    third = openai_client.chat.completions.create(model=FLASH, messages=messages, tools=[WEATHER, TIME])
    assert third.choices[0].finish_reason == "tool_calls" and len(third.choices[0].message.tool_calls) == 2
    contents = upstream.requests[-1]["body"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user", "model", "user"]
    assert contents[-2]["parts"] == [{"text": TOOL_REPLY}]
    assert contents[-1]["parts"] == [{"text": "And in Rome?"}]
    assert len(upstream.requests) == 3


async def test_multi_turn_parallel_tools_streamed_async(async_openai_client, upstream):
    messages = [{"role": "user", "content": "Weather and local time in Paris?"}]
    stream = await async_openai_client.chat.completions.create(
        model=FLASH, messages=messages, tools=[WEATHER, TIME], stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    text, calls, finish = accumulate(chunks)
    assert finish == "tool_calls" and text == ""
    assert sorted(calls) == [0, 1]
    assert [(calls[i]["type"], calls[i]["name"]) for i in (0, 1)] == [("function", "get_weather"),
                                                                      ("function", "get_time")]
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [WEATHER_ARGS, TIME_ARGS]
    assert calls[0]["id"] != calls[1]["id"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0

    ordered = [calls[0], calls[1]]
    messages += [assistant_turn(None, ordered), *tool_results(ordered)]
    stream = await async_openai_client.chat.completions.create(
        model=FLASH, messages=messages, tools=[WEATHER, TIME], stream=True)
    assert accumulate([c async for c in stream]) == (TOOL_REPLY, {}, "stop")
    assert_upstream_tool_turns(upstream.requests[-1]["body"], ordered)
    assert [r["stream"] for r in upstream.requests] == [True, True]


def test_sdk_stream_accumulator_agrees(openai_client: OpenAI, upstream):
    messages = [{"role": "user", "content": "Both, please"}]
    with openai_client.chat.completions.stream(model=PRO, messages=messages, tools=[WEATHER, TIME]) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        ("get_weather", WEATHER_ARGS), ("get_time", TIME_ARGS)]
    assert [e.index for e in done] == [0, 1]
    calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
             for c in choice.message.tool_calls]
    messages += [assistant_turn(choice.message.content, calls), *tool_results(calls)]
    with openai_client.chat.completions.stream(model=PRO, messages=messages, tools=[WEATHER, TIME]) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == TOOL_REPLY and final.choices[0].finish_reason == "stop"
    assert_upstream_tool_turns(upstream.requests[-1]["body"], calls)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_gemini3_call_ids_and_thought_signatures_round_trip(gateway, make_openai_client, stream):
    """Gemini 3 sends functionCall ids and thought signatures; both must come back on the next turn
    (Gemini rejects a function-call turn without its signature). Router One keeps no state: the
    signature rides inside the OpenAI tool-call id."""
    with FakeGeminiServer(api_key=KEY, parallel_calls=2, call_ids=True, thought_signatures=True) as fake:
        client = make_openai_client(gateway(providers={"gemini": (fake.base_url, KEY)}, max_retries=0))
        messages = [{"role": "user", "content": "Weather and time?"}]
        first = client.chat.completions.create(model=FLASH, messages=messages, tools=[WEATHER, TIME], stream=stream)
        if stream:
            _, by_index, finish = accumulate(first)
            calls = [by_index[i] for i in sorted(by_index)]
        else:
            finish = first.choices[0].finish_reason
            calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                     for c in first.choices[0].message.tool_calls]
        assert finish == "tool_calls" and [c["name"] for c in calls] == ["get_weather", "get_time"]
        messages += [assistant_turn(None, calls), *tool_results(calls)]
        final = client.chat.completions.create(model=FLASH, messages=messages, tools=[WEATHER, TIME], stream=stream)
        text = accumulate(final)[0] if stream else final.choices[0].message.content
        assert text == TOOL_REPLY
        model_turn, results = fake.requests[-1]["body"]["contents"][-2:]
    assert [p["functionCall"]["id"] for p in model_turn["parts"]] == ["fc_0_get_weather", "fc_1_get_time"]
    assert all(p["thoughtSignature"] for p in model_turn["parts"])
    assert [p["functionResponse"]["id"] for p in results["parts"]] == ["fc_0_get_weather", "fc_1_get_time"]


# -- images --------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_image_data_url_and_https_url(openai_client: OpenAI, upstream, stream):
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": HTTPS_URL}}]}]
    result = openai_client.chat.completions.create(model=FLASH, messages=messages, stream=stream)
    if stream:
        text, _, finish = accumulate(result)
    else:
        text, finish = result.choices[0].message.content, result.choices[0].finish_reason
    assert (text, finish) == (REPLY, "stop")
    assert upstream.requests[-1]["body"]["contents"] == [{"role": "user", "parts": [
        {"text": "What is in these images?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": HTTPS_URL}}]}]


# -- structured output -----------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_json_schema_response_format(openai_client: OpenAI, upstream, stream):
    result = openai_client.chat.completions.create(
        model=FLASH, messages=[{"role": "user", "content": "Weather in Paris as JSON"}],
        response_format=JSON_FORMAT, stream=stream)
    if stream:
        chunks = list(result)
        text, calls, finish = accumulate(chunks)
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1   # really streamed
    else:
        msg = result.choices[0].message
        text, calls, finish = msg.content, msg.tool_calls or {}, result.choices[0].finish_reason
    assert finish == "stop" and not calls
    answer = json.loads(text)
    jsonschema.validate(answer, ANSWER_SCHEMA)
    assert answer == {"city": "fake", "temp_c": 1.5, "sunny": True}
    config = upstream.requests[-1]["body"]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["type"] == "OBJECT"
    assert config["responseSchema"]["required"] == ["city", "temp_c", "sunny"]
    assert config["responseSchema"]["properties"]["temp_c"] == {"type": "NUMBER"}


def test_sdk_parse_with_pydantic_model(openai_client: OpenAI):
    parsed = openai_client.chat.completions.parse(
        model=PRO, messages=[{"role": "user", "content": "Weather in Paris"}], response_format=Weather)
    assert parsed.choices[0].message.parsed == Weather(city="fake", temp_c=1.5, sunny=True)
    assert parsed.choices[0].finish_reason == "stop"


# -- stop sequences and max_tokens ---------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_stop_sequence_finishes_with_stop(openai_client: OpenAI, upstream, stream):
    stop = ["fake", "never-said"] if not stream else "fake"
    result = openai_client.chat.completions.create(model=FLASH, messages=HELLO, stop=stop, stream=stream)
    if stream:
        text, _, finish = accumulate(result)
    else:
        text, finish = result.choices[0].message.content, result.choices[0].finish_reason
    assert finish == "stop"
    assert text == "Hello! This is a reply from the "      # cut before the stop sequence, which is not included
    assert upstream.requests[-1]["body"]["generationConfig"]["stopSequences"] == (
        stop if isinstance(stop, list) else [stop])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_max_tokens_cut_finishes_with_length(gw, funded_key, openai_client: OpenAI, upstream, stream):
    kwargs = dict(stream=True, stream_options={"include_usage": True}) if stream else {}
    limit = {"max_completion_tokens": 3} if stream else {"max_tokens": 5}
    result = openai_client.chat.completions.create(model=FLASH, messages=HELLO, **limit, **kwargs)
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
    assert upstream.requests[-1]["body"]["generationConfig"]["maxOutputTokens"] == n
    assert charges(gw, funded_key[1]) == [-round(usage.model_extra["cost"] * 1_000_000)]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_n_is_candidate_count(openai_client: OpenAI, upstream, stream):
    """Unlike Anthropic, Gemini supports n (candidateCount): n choices, streamed interleaved by index."""
    result = openai_client.chat.completions.create(model=FLASH, messages=HELLO, n=2, max_tokens=3, stream=stream)
    if stream:
        chunks = list(result)
        answers = [accumulate(chunks, i) for i in (0, 1)]
        assert [(t, f) for t, _, f in answers] == [("Hello! This", "length")] * 2
    else:
        assert [(c.index, c.message.content, c.finish_reason) for c in result.choices] == [
            (0, "Hello! This", "length"), (1, "Hello! This", "length")]
    assert upstream.requests[-1]["body"]["generationConfig"]["candidateCount"] == 2


# -- upstream errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_503_unavailable(gw, funded_key, openai_client: OpenAI, upstream, stream):
    with pytest.raises(openai.InternalServerError) as ei:
        openai_client.chat.completions.create(
            model=FLASH, messages=[{"role": "user", "content": "Hi [[error:503]]"}], stream=stream)
    err = ei.value
    assert err.status_code == 503
    assert err.body["code"] == "upstream_unavailable" and err.body["type"] == "upstream_error"
    assert "overloaded" in err.body["message"].lower()
    validate_error({"error": err.body})
    assert len(upstream.requests) == 1          # gateway max_retries=0, one deployment: one try
    assert charges(gw, funded_key[1]) == []     # a failed request costs nothing
    assert gw.account(funded_key[1])["reserved_micros"] == 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_429_is_rate_limit_error_with_retry_after(openai_client: OpenAI, upstream, stream):
    with pytest.raises(openai.RateLimitError) as ei:
        openai_client.chat.completions.create(
            model=FLASH, messages=[{"role": "user", "content": "Hi [[error:429]]"}], stream=stream)
    assert ei.value.status_code == 429
    assert ei.value.response.headers["retry-after"] == "1"     # from Google's RetryInfo.retryDelay "1s"
    assert ei.value.body["code"] == "upstream_rate_limited"
    assert len(upstream.requests) == 1


async def test_queued_429_passes_its_retry_delay_through_async(async_openai_client, upstream):
    upstream.fail_next({"error": 429, "retry_delay_s": 7})
    with pytest.raises(openai.RateLimitError) as ei:
        await async_openai_client.chat.completions.create(model=PRO, messages=HELLO, stream=True)
    assert ei.value.response.headers["retry-after"] == "7"
    assert len(upstream.requests) == 1
    ok = await async_openai_client.chat.completions.create(model=PRO, messages=HELLO)   # the next one is fine
    assert ok.choices[0].message.content == REPLY


def test_unsupported_parameter_is_400_naming_it_without_upstream_call(openai_client: OpenAI, upstream):
    with pytest.raises(openai.BadRequestError) as ei:
        openai_client.chat.completions.create(model=FLASH, messages=HELLO, logit_bias={"50256": -100})
    assert ei.value.body["param"] == "logit_bias" and ei.value.body["code"] == "unsupported_parameter"
    assert "'logit_bias'" in ei.value.body["message"]
    with pytest.raises(openai.BadRequestError) as ei:
        openai_client.chat.completions.create(model=FLASH, messages=HELLO, modalities=["text", "audio"],
                                              audio={"voice": "alloy", "format": "wav"}, stream=True)
    assert ei.value.body["param"] == "audio" and ei.value.body["code"] == "unsupported_parameter"
    assert upstream.requests == []
    # n is not among them: Gemini has candidateCount (see test_n_is_candidate_count)


# -- a stream that fails after its first token ---------------------------------------------------

@pytest.fixture
def paced_gw(gateway):
    """A gateway on a fake that paces its events, so the failure arrives after the first token was
    relayed (a failure before it fails over instead, invisibly)."""
    with FakeGeminiServer(api_key=KEY, chunk_interval_ms=15) as fake:
        yield gateway(providers={"gemini": (fake.base_url, KEY)}, max_retries=0), fake


@pytest.mark.parametrize("fault", ["stream_error", "cut"])
def test_mid_stream_failure_raises_api_error_in_the_sdk(paced_gw, make_openai_client, fault):
    gw, fake = paced_gw
    key, account_id = gw.new_key()
    client = make_openai_client(gw, key)
    stream = client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": f"Hi [[{fault}:2]]"}],
                                            stream=True, stream_options={"include_usage": True})
    seen: list[str] = []
    with pytest.raises(openai.APIError) as ei:
        for chunk in stream:
            seen += [c.delta.content or "" for c in chunk.choices]
    assert not isinstance(ei.value, openai.APIStatusError)   # an in-stream error event, not an HTTP status
    assert "".join(seen) == "Hello!"
    assert len(fake.requests) == 1
    assert gw.account(account_id)["reserved_micros"] == 0


@pytest.mark.parametrize("fault, code", [("stream_error", "upstream_unavailable"), ("cut", "upstream_unavailable")])
def test_mid_stream_failure_raw_wire(openai_wire, paced_gw, fault, code):
    gw, _ = paced_gw
    key, _ = gw.new_key()
    resp = raw_post(openai_wire, gw, key, {"model": FLASH, "stream": True, "stream_options": {"include_usage": True},
                                           "messages": [{"role": "user", "content": f"Hi [[{fault}:3]]"}]})
    assert resp.status_code == 200 and resp.headers["x-routerone-provider"] == "gemini"
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
    assert finish_chunk["id"] == chunks[0]["id"] and finish_chunk["model"] == FLASH
    validate_chunk({**finish_chunk, "choices": [{**finish_chunk["choices"][0], "finish_reason": "stop"}]})
    validate_error(error_event)
    assert error_event["error"]["code"] == code


def test_mid_stream_error_bills_the_tokens_already_relayed(paced_gw, make_openai_client):
    """Gemini reports running usage totals, so a failed stream is billed for what was relayed."""
    gw, _ = paced_gw
    key, account_id = gw.new_key()
    client = make_openai_client(gw, key)
    relayed = 0
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
                model=FLASH, stream=True,
                messages=[{"role": "user", "content": "Hi [[words:40]] [[stream_error:30]]"}]):
            relayed += sum(1 for c in chunk.choices if c.delta.content)
    assert relayed == 30
    [charge] = charges(gw, account_id)
    assert -charge == flash_cost_micros(words("Hi [[words:40]] [[stream_error:30]]"), 0, 30)

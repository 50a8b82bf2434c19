"""/v1/responses against OpenAI's spec and the installed openai SDK, over a scripted upstream (each
test writes the chat-completions reply it needs: a refusal, a length cut, an error mid-stream):
every body and event is validated against the spec (`Response`, `ResponseStreamEvent`,
`ErrorResponse`) at teardown by the `wire` recorder; each CreateResponse parameter Router One
cannot honour is refused with a 400 naming it; a Response's `usage` is what was billed."""
from __future__ import annotations

import json

import openai
import orjson
import pytest

from money_procs import OUT_MICROS, SMALL
from protocol_helpers import sse_events, wire  # noqa: F401 (fixture)
from raw_upstream import chunked, gateway_over, json_reply, scripted_upstream, usage_rows

MODEL = SMALL


@pytest.fixture(scope="module")
def up():
    with scripted_upstream() as state:
        yield state


@pytest.fixture
def gw(up, tmp_path):
    up["requests"].clear()
    with gateway_over(up["server"], tmp_path, http1=True) as gw:
        yield gw


@pytest.fixture
def account(gw):
    return gw.new_key(balance_micros=10_000_000)


@pytest.fixture
def client(gw, account, wire):
    c = openai.OpenAI(base_url=gw.base_url, api_key=account[0], max_retries=0, timeout=30, http_client=wire.client())
    yield c
    c.close()


def completion(message: dict, finish: str = "stop", usage: dict | None = None) -> bytes:
    return json_reply(orjson.dumps({
        "id": "chatcmpl-c", "object": "chat.completion", "created": 1, "model": "fake-small",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish,
                     "logprobs": None}],
        "usage": usage or {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}))


def stream(deltas: list[dict], finish: str = "stop", usage: dict | None = None,
           error: bool = False) -> bytes | list:
    def chunk(delta: dict, reason: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                                         "model": "fake-small",
                                         "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}) + b"\n\n"
    out = [chunk({"role": "assistant", "content": ""})] + [chunk(d) for d in deltas]
    if error:            # the content first (the answer has begun), then the error event
        err = b'data: {"error": {"message": "upstream broke", "type": "server_error", "code": "server_error"}}\n\n'
        return [chunked(b"".join(out), terminator=False), 0.3, b"%x\r\n" % len(err) + err + b"\r\n0\r\n\r\n"]
    out.append(chunk({}, finish))
    out.append(b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                                         "model": "fake-small", "choices": [],
                                         "usage": usage or {"prompt_tokens": 7, "completion_tokens": 3,
                                                            "total_tokens": 10}}) + b"\n\n")
    return chunked(b"".join(out) + b"data: [DONE]\n\n")


def raw_stream(gw, account, wire, body: dict) -> list[dict]:
    with wire.client() as http:
        r = http.post(gw.base_url + "/responses", json={"model": MODEL, "stream": True, **body},
                      headers={"Authorization": f"Bearer {account[0]}"})
    assert r.status_code == 200, r.text
    return [d for _, d in sse_events(r.content)]


# -- refusals ---------------------------------------------------------------------------------------

def test_a_refusal_is_a_refusal_part_not_output_text(up, client):
    up["reply"] = completion({"content": None, "refusal": "I can't help with that."})
    resp = client.responses.create(model=MODEL, input="Something forbidden")
    [msg] = resp.output
    assert [p.model_dump(exclude_none=True) for p in msg.content] == [
        {"type": "refusal", "refusal": "I can't help with that."}]
    assert resp.output_text == ""           # the SDK's answer text is not the refusal
    up["reply"] = completion({"content": "Fine."})
    client.responses.create(model=MODEL, input="Something else then", previous_response_id=resp.id)
    assert up["requests"][-1]["messages"][1] == {"role": "assistant", "content": "I can't help with that."}


def test_a_streamed_refusal_is_streamed_as_refusal_events(up, client):
    up["reply"] = stream([{"refusal": "I can't "}, {"refusal": "help with that."}])
    with client.responses.stream(model=MODEL, input="Something forbidden") as s:
        types = [ev.type for ev in s]
        final = s.get_final_response()
    assert types.count("response.refusal.delta") == 2 and "response.refusal.done" in types
    assert "response.output_text.delta" not in types
    assert final.output[0].content[0].type == "refusal"
    assert final.output[0].content[0].refusal == "I can't help with that."
    assert client.responses.retrieve(final.id).output[0].content[0].refusal == "I can't help with that."


# -- incomplete, failed, structured output -----------------------------------------------------------

def test_max_output_tokens_hit_is_incomplete(up, client):
    up["reply"] = completion({"content": "It was a dark"}, finish="length")
    resp = client.responses.create(model=MODEL, input="Tell a story", max_output_tokens=16)
    assert resp.status == "incomplete" and resp.incomplete_details.reason == "max_output_tokens"
    assert resp.max_output_tokens == 16 and resp.output_text == "It was a dark"
    assert up["requests"][-1]["max_tokens"] == 16
    up["reply"] = stream([{"content": "It was "}, {"content": "a dark"}], finish="length")
    with client.responses.stream(model=MODEL, input="Tell a story", max_output_tokens=16) as s:
        events = list(s)            # the SDK's get_final_response() wants response.completed: not this
    final = events[-1].response
    assert events[-1].type == "response.incomplete" and final.output_text == "It was a dark"
    assert final.status == "incomplete" and final.incomplete_details.reason == "max_output_tokens"


def test_an_error_mid_stream_is_response_failed(up, gw, account, wire):
    up["reply"] = stream([{"content": "Half an "}], error=True)
    events = raw_stream(gw, account, wire, {"input": "hi"})
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed" and events[-1]["response"]["error"]["code"] == "server_error"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_json_schema_format_is_translated_and_echoed(up, client):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    up["reply"] = completion({"content": '{"city": "Paris"}'})
    resp = client.responses.create(model=MODEL, input="Capital of France?",
                                   text={"format": {"type": "json_schema", "name": "capital", "schema": schema,
                                                    "strict": True}})
    assert json.loads(resp.output_text) == {"city": "Paris"}
    assert resp.text.format.type == "json_schema" and resp.text.format.name == "capital"
    assert up["requests"][-1]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "capital", "schema": schema, "strict": True}}


def test_sdk_parse_with_a_pydantic_format(up, client):
    from pydantic import BaseModel

    class Capital(BaseModel):
        city: str
    up["reply"] = completion({"content": '{"city": "Paris"}'})
    resp = client.responses.parse(model=MODEL, input="Capital of France?", text_format=Capital)
    assert resp.output_parsed == Capital(city="Paris")
    sent = up["requests"][-1]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Capital"
    assert sent["json_schema"]["strict"] is True
    assert sent["json_schema"]["schema"]["properties"] == {"city": {"title": "City", "type": "string"}}


def test_text_verbosity_is_passed_on_and_echoed(up, client):
    up["reply"] = completion({"content": "Short."})
    resp = client.responses.create(model=MODEL, input="Explain", text={"verbosity": "low"})
    assert up["requests"][-1]["verbosity"] == "low"
    assert resp.text.verbosity == "low" and resp.text.format.type == "text"


def test_reasoning_effort_is_passed_on_and_echoed(up, client):
    up["reply"] = completion({"content": "42"}, usage={
        "prompt_tokens": 7, "completion_tokens": 30, "total_tokens": 37,
        "completion_tokens_details": {"reasoning_tokens": 27}})
    resp = client.responses.create(model=MODEL, input="Think hard", reasoning={"effort": "low"},
                                   include=["reasoning.encrypted_content"])
    assert up["requests"][-1]["reasoning_effort"] == "low"
    assert resp.reasoning.effort == "low"
    assert resp.usage.output_tokens_details.reasoning_tokens == 27


def test_instructions_are_echoed_and_sent_first(up, client):
    up["reply"] = completion({"content": "Oui."})
    resp = client.responses.create(model=MODEL, input="Yes?", instructions="Answer in French.")
    assert resp.instructions == "Answer in French."
    assert up["requests"][-1]["messages"][0] == {"role": "system", "content": "Answer in French."}


# -- parameters Router One cannot honour: a 400 naming each, nothing sent upstream ------------------

REFUSED = {
    "conversation": {"conversation": "conv_123"},
    "prompt": {"prompt": {"id": "pmpt_123", "version": "2"}},
    "background": {"background": True},
    "top_logprobs": {"top_logprobs": 3},
    "moderation": {"moderation": {"model": "omni-moderation-latest"}},
    "tools[0]": {"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]},
    "tool_choice": {"tool_choice": {"type": "web_search_preview"}},
}


@pytest.mark.parametrize("param", list(REFUSED))
def test_a_parameter_that_changes_the_answer_is_refused(up, client, param):
    up["reply"] = completion({"content": "unused"})
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="hi", extra_body=REFUSED[param])
    assert info.value.body["param"] == param, info.value.body
    assert up["requests"] == []


INVALID = {   # each a 400 naming the parameter as the caller wrote it (not its chat translation)
    "text.format.name": {"text": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
    "text.format.schema": {"text": {"format": {"type": "json_schema", "name": "x"}}},
    "metadata": {"metadata": {"a": 1}},
    "tool_choice": {"tool_choice": "required"},
    "truncation": {"truncation": "sometimes"},
    "max_output_tokens": {"max_output_tokens": 5000},            # over the model's maximum output (100)
    "tools[0].name": {"tools": [{"type": "function", "parameters": {"type": "object"}}]},
    "input[1].output[1]": {"input": [        # a tool's image result: chat's tool messages hold text only
        {"type": "function_call", "call_id": "c1", "name": "snap", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [
            {"type": "input_text", "text": "the chart:"},
            {"type": "input_image", "image_url": "https://example.com/chart.png"}]}]},
}


@pytest.mark.parametrize("param", list(INVALID))
def test_an_invalid_parameter_is_a_400_naming_it(up, client, param):
    up["reply"] = completion({"content": "unused"})
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="hi", extra_body=INVALID[param])
    assert info.value.body["param"] == param, info.value.body
    assert up["requests"] == []


def test_harmless_parameters_are_accepted(up, client):
    up["reply"] = completion({"content": "ok"})
    resp = client.responses.create(
        model=MODEL, input="hi", background=False, top_logprobs=0, truncation="disabled", max_tool_calls=3,
        stream_options=None, include=["message.output_text.logprobs"], prompt_cache_key="k1",
        safety_identifier="user-1", prompt_cache_retention="24h", service_tier="auto", metadata={"a": "b"},
        reasoning={"summary": "auto"}, context_management=[{"type": "compaction", "compact_threshold": 100000}])
    assert resp.status == "completed" and resp.metadata == {"a": "b"}
    sent = up["requests"][-1]
    assert sent["prompt_cache_key"] == "k1" and sent["safety_identifier"] == "user-1"
    assert sent["prompt_cache_retention"] == "24h"      # chat has it too (other upstreams drop it)


def test_unsupported_endpoints_are_clean_404s(up, client):
    up["reply"] = completion({"content": "ok"})
    resp = client.responses.create(model=MODEL, input="hi")
    with pytest.raises(openai.BadRequestError) as info:     # replaying a stored response's events: not kept
        list(client.responses.retrieve(resp.id, stream=True))
    assert info.value.body["param"] == "stream"
    with pytest.raises(openai.NotFoundError) as info:   # was a 405 "POST is not allowed" (GET was)
        client.responses.compact(model=MODEL, input="hi")
    assert info.value.body["code"] == "not_supported"
    # input_items, cancel and input_tokens are served: tests/e2e/test_responses_endpoints.py


# -- usage is what was billed -------------------------------------------------------------------------

USAGE = {"prompt_tokens": 1200, "completion_tokens": 40, "total_tokens": 1240,
         "prompt_tokens_details": {"cached_tokens": 1024}, "completion_tokens_details": {"reasoning_tokens": 8}}


@pytest.mark.parametrize("streamed", [False, True])
def test_usage_is_what_was_billed(up, gw, account, client, streamed):
    if streamed:
        up["reply"] = stream([{"content": "a"}, {"content": "b"}], usage=USAGE)
        with client.responses.with_streaming_response.create(model=MODEL, input="hi", stream=True) as raw:
            cost_header = raw.headers.get("x-routerone-cost")
            events = [json.loads(line[5:]) for line in raw.iter_lines() if line.startswith("data:")]
        usage = events[-1]["response"]["usage"]
    else:
        up["reply"] = completion({"content": "ab"}, usage=USAGE)
        raw = client.responses.with_raw_response.create(model=MODEL, input="hi")
        cost_header, usage = raw.headers.get("x-routerone-cost"), raw.parse().usage.model_dump()
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (1200, 40, 1240)
    assert usage["input_tokens_details"]["cached_tokens"] == 1024
    assert usage["output_tokens_details"]["reasoning_tokens"] == 8
    [row] = usage_rows(gw, account[1])
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (1200, 40, 1024)
    assert row.cost_micros == 40 * OUT_MICROS and row.protocol == "responses" and row.stream is streamed
    assert round(usage["cost"] * 1e6) == row.cost_micros
    if cost_header is not None:            # a stream's cost is known only at its end
        assert round(float(cost_header) * 1e6) == row.cost_micros



def test_a_failed_stream_shows_what_was_billed(up, gw, account, wire):
    """A stream that fails after its first words is billed for them: response.failed says how much."""
    up["reply"] = stream([{"content": "Half an "}, {"content": "answer"}], error=True)
    events = raw_stream(gw, account, wire, {"input": "hi"})
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    [row] = usage_rows(gw, account[1])
    assert row.status == 502 and row.cost_micros > 0
    usage = failed.get("usage")
    assert usage is not None, "response.failed does not say what the failed stream cost"
    assert (usage["input_tokens"], usage["output_tokens"]) == (row.prompt_tokens, row.completion_tokens)
    assert round(usage["cost"] * 1e6) == row.cost_micros


# -- reasoning from an OpenAI-compatible upstream ---------------------------------------------------

@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])     # DeepSeek's, vLLM's
def test_an_openai_compatible_upstream_s_reasoning_is_a_reasoning_item(gw, account, client, up, field):
    usage = {"prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16,
             "completion_tokens_details": {"reasoning_tokens": 6}}
    up["reply"] = completion({"content": "Paris.", field: "The capital of France is Paris."}, usage=usage)
    resp = client.responses.create(model=MODEL, input="Capital of France?")
    assert [o.type for o in resp.output] == ["reasoning", "message"] and resp.output_text == "Paris."
    assert resp.output[0].content[0].text == "The capital of France is Paris." and resp.output[0].summary == []
    assert resp.usage.output_tokens_details.reasoning_tokens == 6
    up["reply"] = stream([{field: "The capital "}, {field: "is Paris."}, {"content": "Paris."}], usage=usage)
    events = list(client.responses.create(model=MODEL, input="Capital of France?", stream=True))
    assert "".join(e.delta for e in events if e.type == "response.reasoning_text.delta") == "The capital is Paris."
    done = events[-1].response
    assert done.output_text == "Paris." and [o.type for o in done.output] == ["reasoning", "message"]
    assert done.usage.output_tokens_details.reasoning_tokens == 6

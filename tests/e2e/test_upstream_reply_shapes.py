"""The defects test_upstream_fuzz.py found, one test each: upstream replies that read, but whose
fields a client relies on were missing or of the wrong type, and reached the client as sent.

- an OpenAI-compatible reply without `refusal` / `logprobs` / the message's role, with its own
  finish_reason (TGI's "eos_token") or an index that is not a number: /v1/chat/completions gave it
  on as sent (not a ChatCompletion: a typed client cannot read it); now the fields are OpenAI's;
- the same in a stream's chunks (a finish_reason of its own, `logprobs: ""`, `delta: null`, a role
  other than assistant); a choice index that is not an integer is a malformed chunk (an error);
- a tool call without an id reached /v1/messages as a tool_use block with an empty id;
- /v1/messages passes an Anthropic upstream's message and events on as they came: a message whose
  id is not text, whose role is missing, a tool_use whose input is null, a message_start without a
  message, a content_block_delta without its index were relayed (the anthropic SDK's stream helper
  raised TypeError on them); now they are the upstream's failure (502, or the stream's error event);
- ...and its usage as sent, without the fields Anthropic's Usage requires (`server_tool_use`...)
  or with them of the wrong type (`cache_creation: []`); now complete, the wrong types Router One's.

Real gateway on a real socket, the official SDKs; only the upstream is faked (raw bytes)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import anthropic
import openai
import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import SMALL, settled_rows  # noqa: E402
from protocol_helpers import sse_events, wire  # noqa: E402,F401 (fixture)
from raw_upstream import RawUpstream, gateway_over_protocols  # noqa: E402
from upstream_mutations import (ANT_MODEL, UPSTREAM_KEYS, anthropic_events, anthropic_reply, chunk_frames,  # noqa: E402
                                openai_events, openai_reply, sse_body, whole)


@pytest.fixture(scope="module")
def served():
    """{"pieces": [...]}: what the upstream answers next (raw bytes)."""
    state: dict = {"pieces": []}
    up = RawUpstream(lambda request: state["pieces"])
    state["up"] = up
    yield state
    up.stop()


@pytest.fixture
def gw(served, tmp_path):
    with gateway_over_protocols(served["up"], tmp_path, UPSTREAM_KEYS) as gw:
        yield gw


def _oai(gw, key, wire) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30, http_client=wire.client())


def _ant(gw, key, wire) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30, http_client=wire.client())


HI = [{"role": "user", "content": "hi"}]


def _ends_as_malformed(gw, served, wire, events: list) -> None:
    """An OpenAI-compatible stream of `events` reaches the openai SDK as an APIError (the stream's
    error event), and is settled once as an upstream failure (502)."""
    served["pieces"] = chunk_frames([sse_body("openai", events)])
    key, account_id = gw.new_key()
    with pytest.raises(openai.APIError):
        list(_oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=50, messages=HI, stream=True))
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 502


def _ant_stream_ends_as_malformed(gw, wire) -> None:
    """The served Anthropic stream reaches the anthropic SDK's stream helper as an APIError (the
    stream's error event), and is settled once as an upstream failure (502)."""
    key, account_id = gw.new_key()
    with pytest.raises(anthropic.APIError):
        with _ant(gw, key, wire).messages.stream(model=ANT_MODEL, max_tokens=50, messages=HI) as stream:
            stream.get_final_message()
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 502


@pytest.mark.parametrize("finish, expected", [("eos_token", "stop"), ("max_tokens", "length"), ("<eos>", "stop"),
                                              ("stop", "stop"), ("tool_calls", "tool_calls")])
def test_a_reply_without_refusal_logprobs_or_role_reaches_chat_completions_as_openai_s(gw, served, wire, finish,
                                                                                       expected):
    reply = openai_reply()
    choice = reply["choices"][0]
    del choice["logprobs"], choice["message"]["refusal"], choice["message"]["role"]
    choice["finish_reason"], choice["index"] = finish, ""
    served["pieces"] = whole(orjson.dumps(reply))
    key, account_id = gw.new_key()
    out = _oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=50, messages=HI)
    [body] = [orjson.loads(bytes(r.body)) for r in wire.responses]
    got = body["choices"][0]
    assert (got["index"], got["logprobs"], got["finish_reason"]) == (0, None, expected)
    assert got["message"]["role"] == "assistant" and got["message"]["refusal"] is None
    assert out.choices[0].message.content == reply["choices"][0]["message"]["content"]
    settled_rows(gw, account_id, 1)


def test_a_reply_with_logprobs_of_the_wrong_type_has_none(gw, served, wire):
    reply = openai_reply()
    reply["choices"][0]["logprobs"] = ""
    served["pieces"] = whole(orjson.dumps(reply))
    key, _ = gw.new_key()
    _oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=50, messages=HI)
    assert orjson.loads(bytes(wire.responses[0].body))["choices"][0]["logprobs"] is None


def test_streamed_chunks_with_their_own_finish_reason_role_and_logprobs_reach_the_client_as_openai_s(
        gw, served, wire):
    events = openai_events()
    events[0]["choices"][0]["delta"]["role"] = "bot"
    events[1]["choices"][0]["logprobs"] = ""
    events[2]["choices"][0]["delta"] = None           # nothing in it
    events[3]["choices"][0]["finish_reason"] = "eos_token"
    del events[1]["choices"][0]["index"]
    served["pieces"] = chunk_frames([sse_body("openai", events)])
    key, account_id = gw.new_key()
    chunks = list(_oai(gw, key, wire).chat.completions.create(
        model=SMALL, max_tokens=50, messages=HI, stream=True, stream_options={"include_usage": True}))
    data = [d for _, d in sse_events(bytes(wire.responses[0].body)) if isinstance(d, dict)]
    assert data[0]["choices"][0]["delta"]["role"] == "assistant"
    assert data[1]["choices"][0]["logprobs"] is None and data[1]["choices"][0]["index"] == 0
    assert data[2]["choices"][0]["delta"] == {}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    settled_rows(gw, account_id, 1)


@pytest.mark.parametrize("index", [0.5, "0", None])
def test_a_streamed_choice_whose_index_is_not_an_integer_is_a_malformed_chunk(gw, served, wire, index):
    events = openai_events()
    events[2]["choices"][0]["index"] = index
    _ends_as_malformed(gw, served, wire, events)


def test_a_tool_call_without_an_id_is_a_tool_use_with_one_on_messages(gw, served, wire):
    reply = openai_reply(tools=True)
    del reply["choices"][0]["message"]["tool_calls"][0]["id"]
    served["pieces"] = whole(orjson.dumps(reply))
    key, _ = gw.new_key()
    msg = _ant(gw, key, wire).messages.create(model=SMALL, max_tokens=50, messages=HI)
    [block] = msg.content
    assert block.type == "tool_use" and re.fullmatch(r"(toolu|call)_[0-9a-f]{24}", block.id)
    assert block.name == "get" and block.input == {"city": "Paris"}


def _without(obj: dict, *path):
    *parents, last = path
    for k in parents:
        obj = obj[k]
    del obj[last]


ANT_REPLIES = {   # an Anthropic upstream's message, changed so: (path, value or None to delete it)
    "id_number": (("id",), -1), "id_null": (("id",), None), "no_role": (("role",), "DELETE"),
    "block_type_garbage": (("content", 0, "type"), "<script>"),
}
ANT_TOOL_REPLIES = {"tool_input_null": (("content", 0, "input"), None), "tool_id_empty": (("content", 0, "id"), "")}


@pytest.mark.parametrize("name", sorted(ANT_REPLIES) + sorted(ANT_TOOL_REPLIES))
def test_an_anthropic_message_of_the_wrong_shape_is_a_502_on_messages_and_not_charged(gw, served, wire, name):
    tools = name in ANT_TOOL_REPLIES
    path, value = (ANT_TOOL_REPLIES if tools else ANT_REPLIES)[name]
    msg = anthropic_reply(tools)
    if value == "DELETE":
        _without(msg, *path)
    else:
        target = msg
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = value
    served["pieces"] = whole(orjson.dumps(msg))
    key, account_id = gw.new_key()
    with pytest.raises(anthropic.APIStatusError) as ei:
        _ant(gw, key, wire).messages.create(model=ANT_MODEL, max_tokens=50, messages=HI)
    assert ei.value.status_code == 502 and ei.value.body["error"]["type"] == "api_error"
    [row] = settled_rows(gw, account_id, 1)
    assert (row.status, row.cost_micros) == (502, 0)


def _anthropic_stream(change) -> list:
    events = anthropic_events()
    change(events)
    return chunk_frames([sse_body("anthropic", events)])


def test_a_message_start_without_a_message_is_a_502_before_the_stream(gw, served, wire):
    served["pieces"] = _anthropic_stream(lambda evs: evs[0].update(message=None))
    key, account_id = gw.new_key()
    with pytest.raises(anthropic.APIStatusError) as ei:
        with _ant(gw, key, wire).messages.stream(model=ANT_MODEL, max_tokens=50, messages=HI) as stream:
            stream.get_final_message()
    assert ei.value.status_code == 502
    settled_rows(gw, account_id, 1)


@pytest.mark.parametrize("change", ["delta_no_index", "delta_index_text", "block_start_list", "block_start_id_object"])
def test_a_passed_through_event_without_what_the_sdk_reads_ends_the_stream_with_an_error(gw, served, wire, change):
    """The anthropic SDK's stream helper (which builds the message from the events) raised TypeError
    or IndexError on these relayed events; now the stream ends with an `error` event (APIError)."""
    def edit(evs):
        if change == "delta_no_index":
            del evs[4]["index"]
        elif change == "delta_index_text":
            evs[4]["index"] = "x"
        elif change == "block_start_list":
            evs[2]["content_block"] = []
        else:
            evs[2]["content_block"] = {"type": "tool_use", "id": {}, "name": "get", "input": {}}
    served["pieces"] = _anthropic_stream(edit)
    _ant_stream_ends_as_malformed(gw, wire)


USAGE_REQUIRED = {"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                  "cache_creation", "inference_geo", "output_tokens_details", "server_tool_use", "service_tier"}


@pytest.mark.parametrize("usage", [None, "DELETE", {"input_tokens": 9, "output_tokens": 5},
                                   {"input_tokens": 9, "output_tokens": 5, "cache_creation": [], "server_tool_use": 5,
                                    "service_tier": 7, "future_field": "kept"}])
def test_a_passed_through_usage_has_every_field_of_anthropic_s_usage(gw, served, wire, usage):
    msg = anthropic_reply()
    if usage == "DELETE":
        del msg["usage"]
    else:
        msg["usage"] = usage
    served["pieces"] = whole(orjson.dumps(msg))
    key, account_id = gw.new_key()
    out = _ant(gw, key, wire).messages.create(model=ANT_MODEL, max_tokens=50, messages=HI)
    got = orjson.loads(bytes(wire.responses[0].body))["usage"]
    assert USAGE_REQUIRED <= set(got)
    assert got["cache_creation"] is None and got["server_tool_use"] is None
    if isinstance(usage, dict) and "future_field" in usage:
        assert got["future_field"] == "kept" and got["service_tier"] == "standard"     # Router One's own
    [row] = settled_rows(gw, account_id, 1)
    assert out.usage.output_tokens == row.completion_tokens


def test_a_streamed_usage_without_server_tool_use_is_complete_in_message_delta(gw, served, wire):
    def edit(evs):
        evs[0]["message"]["usage"] = [1]          # not an object: none counted yet
        del evs[-2]["usage"]["server_tool_use"]
        evs[-2]["usage"]["output_tokens_details"] = 5
    served["pieces"] = _anthropic_stream(edit)
    key, account_id = gw.new_key()
    with _ant(gw, key, wire).messages.stream(model=ANT_MODEL, max_tokens=50, messages=HI) as stream:
        final = stream.get_final_message()
    events = sse_events(bytes(wire.responses[0].body))
    start = next(d for n, d in events if n == "message_start")["message"]["usage"]
    delta = next(d for n, d in events if n == "message_delta")["usage"]
    assert start["input_tokens"] == 0 and USAGE_REQUIRED <= set(start)
    assert delta["server_tool_use"] is None and delta["output_tokens_details"] is None
    assert "cache_creation" not in delta and "service_tier" not in delta      # not in MessageDeltaUsage
    [row] = settled_rows(gw, account_id, 1)
    assert final.usage.output_tokens == row.completion_tokens


@pytest.mark.parametrize("delta", [{"type": "text_delta"}, {"type": "text_delta", "text": None}])
def test_a_passed_through_text_delta_without_its_text_ends_the_stream_with_an_error(gw, served, wire, delta):
    """The anthropic SDK's stream helper appends a text_delta's text to its block: TypeError on these."""
    served["pieces"] = _anthropic_stream(lambda evs: evs[4].update(delta=delta))
    _ant_stream_ends_as_malformed(gw, wire)


def test_a_passed_through_message_start_s_usage_has_integer_counts_and_every_field(gw, served, wire):
    def edit(evs):
        msg = evs[0]["message"]
        msg["usage"] = {"input_tokens": None, "output_tokens": "1", "cache_read_input_tokens": 3.0}
        del msg["container"], msg["stop_details"]
    served["pieces"] = _anthropic_stream(edit)
    key, _ = gw.new_key()
    with _ant(gw, key, wire).messages.stream(model=ANT_MODEL, max_tokens=50, messages=HI) as stream:
        stream.get_final_message()
    start = next(d for n, d in sse_events(bytes(wire.responses[0].body)) if n == "message_start")["message"]
    assert USAGE_REQUIRED <= set(start["usage"])
    assert (start["usage"]["input_tokens"], start["usage"]["output_tokens"],
            start["usage"]["cache_read_input_tokens"]) == (0, 0, 3)
    assert start["container"] is None and start["stop_details"] is None


def test_a_passed_through_message_without_container_or_stop_details_has_them(gw, served, wire):
    msg = anthropic_reply()
    del msg["container"], msg["stop_details"], msg["stop_sequence"]
    served["pieces"] = whole(orjson.dumps(msg))
    key, _ = gw.new_key()
    _ant(gw, key, wire).messages.create(model=ANT_MODEL, max_tokens=50, messages=HI)
    got = orjson.loads(bytes(wire.responses[0].body))
    assert (got["container"], got["stop_details"], got["stop_sequence"]) == (None, None, None)


@pytest.mark.parametrize("fingerprint, tier", [(True, "premium"), (5, ["a"]), ({"a": 1}, {"b": 2})])
def test_a_reply_s_fingerprint_service_tier_and_tool_call_type_are_openai_s(gw, served, wire, fingerprint, tier):
    reply = openai_reply(tools=True)
    reply["system_fingerprint"], reply["service_tier"] = fingerprint, tier
    reply["choices"][0]["message"]["tool_calls"][0]["type"] = "func"
    served["pieces"] = whole(orjson.dumps(reply))
    key, _ = gw.new_key()
    _oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=50, messages=HI)
    got = orjson.loads(bytes(wire.responses[0].body))
    assert "system_fingerprint" not in got and got["service_tier"] is None
    assert got["choices"][0]["message"]["tool_calls"][0]["type"] == "function"


@pytest.mark.parametrize("fingerprint, tier", [(True, "premium"), (5, ["a"])])
def test_streamed_chunks_fingerprint_service_tier_and_tool_call_type_are_openai_s(gw, served, wire, fingerprint, tier):
    events = openai_events(tools=True)
    for ev in events:
        ev["system_fingerprint"], ev["service_tier"] = fingerprint, tier
    events[0]["choices"][0]["delta"]["tool_calls"][0]["type"] = "func"
    served["pieces"] = chunk_frames([sse_body("openai", events)])
    key, account_id = gw.new_key()
    list(_oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=50, messages=HI, stream=True))
    data = [d for _, d in sse_events(bytes(wire.responses[0].body)) if isinstance(d, dict)]
    assert {("system_fingerprint" in d, d["service_tier"]) for d in data} == {(False, None)}
    assert data[0]["choices"][0]["delta"]["tool_calls"][0]["type"] == "function"
    settled_rows(gw, account_id, 1)


@pytest.mark.parametrize("calls", ["", {}, 0])
def test_streamed_tool_calls_that_are_not_a_list_are_a_malformed_chunk(gw, served, wire, calls):
    events = openai_events()
    events[2]["choices"][0]["delta"]["tool_calls"] = calls
    _ends_as_malformed(gw, served, wire, events)


@pytest.mark.parametrize("end", ["no_message_stop", "message_stop_type_nul"])
def test_a_passed_through_stream_that_ends_after_message_delta_still_ends_with_message_stop(gw, served, wire, end):
    def edit(evs):
        if end == "no_message_stop":
            del evs[-1]
        else:
            evs[-1]["type"] = "a\x00b"             # not an event name: nothing to relay
    served["pieces"] = _anthropic_stream(edit)
    key, account_id = gw.new_key()
    with _ant(gw, key, wire).messages.stream(model=ANT_MODEL, max_tokens=50, messages=HI) as stream:
        final = stream.get_final_message()
    names = [n for n, _ in sse_events(bytes(wire.responses[0].body))]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert final.stop_reason == "end_turn"
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200


@pytest.mark.parametrize("call_id", [None, "", "DELETE"])
def test_a_tool_call_without_an_id_gets_one_on_chat_completions(gw, served, wire, call_id):
    reply = openai_reply(tools=True)
    call = reply["choices"][0]["message"]["tool_calls"][0]
    if call_id == "DELETE":
        del call["id"]
    else:
        call["id"] = call_id
    served["pieces"] = whole(orjson.dumps(reply))
    key, _ = gw.new_key()
    out = _oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=50, messages=HI)
    got = out.choices[0].message.tool_calls[0]
    assert got.id.startswith("call_") and len(got.id) > 5 and got.function.name == "get"


def test_a_streamed_empty_finish_reason_is_none(gw, served, wire):
    events = openai_events()
    events[1]["choices"][0]["finish_reason"] = ""
    served["pieces"] = chunk_frames([sse_body("openai", events)])
    key, _ = gw.new_key()
    chunks = list(_oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=50, messages=HI, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None, None, None, "stop"]


@pytest.mark.parametrize("tools", [False, True])
def test_a_reply_whose_finish_reason_is_null_says_why_it_ended(gw, served, wire, tools):
    reply = openai_reply(tools=tools)
    reply["choices"][0]["finish_reason"] = None
    if tools:
        del reply["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    served["pieces"] = whole(orjson.dumps(reply))
    key, _ = gw.new_key()
    out = _oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=50, messages=HI)
    assert out.choices[0].finish_reason == ("tool_calls" if tools else "stop")
    if tools:
        assert out.choices[0].message.tool_calls[0].function.arguments == "{}"


def test_streamed_chunks_without_finish_reason_have_it_and_object_arguments_are_malformed(gw, served, wire):
    events = openai_events()
    del events[1]["choices"][0]["finish_reason"]
    served["pieces"] = chunk_frames([sse_body("openai", events)])
    key, _ = gw.new_key()
    list(_oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=50, messages=HI, stream=True))
    data = [d for _, d in sse_events(bytes(wire.responses[0].body)) if isinstance(d, dict) and d.get("choices")]
    assert all("finish_reason" in d["choices"][0] for d in data)
    events = openai_events(tools=True)
    events[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] = {}
    _ends_as_malformed(gw, served, wire, events)


def test_tool_calls_null_are_left_out_of_replies_and_chunks(gw, served, wire):
    reply = openai_reply()
    reply["choices"][0]["message"]["tool_calls"] = None
    served["pieces"] = whole(orjson.dumps(reply))
    key, _ = gw.new_key()
    _oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=50, messages=HI)
    assert "tool_calls" not in orjson.loads(bytes(wire.responses[0].body))["choices"][0]["message"]
    events = openai_events()
    events[1]["choices"][0]["delta"]["tool_calls"] = None
    served["pieces"] = chunk_frames([sse_body("openai", events)])
    list(_oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=50, messages=HI, stream=True))
    data = [d for _, d in sse_events(bytes(wire.responses[1].body)) if isinstance(d, dict) and d.get("choices")]
    assert not any("tool_calls" in d["choices"][0]["delta"] for d in data)


def test_an_anthropic_reply_with_unreadable_output_count_bills_its_thinking_text_too(gw, served, wire):
    """output_tokens that is not a number: Router One counts the reply, thinking (reasoning_content,
    billed as output by Anthropic) included, not only its answer text."""
    from routerone.tokens import count_text_tokens
    thought = "First I weigh every option carefully, one by one, before I answer. " * 8
    msg = anthropic_reply()
    msg["content"].insert(0, {"type": "thinking", "thinking": thought, "signature": "EqQBsig"})
    msg["usage"]["output_tokens"] = "many"
    served["pieces"] = whole(orjson.dumps(msg))
    key, account_id = gw.new_key()
    out = _oai(gw, key, wire).chat.completions.create(model=ANT_MODEL, max_tokens=4000, messages=HI,
                                                      reasoning_effort="low")
    assert out.choices[0].message.model_extra["reasoning_content"] == thought
    [row] = settled_rows(gw, account_id, 1)
    assert row.completion_tokens >= count_text_tokens(thought) + count_text_tokens(out.choices[0].message.content)


@pytest.mark.parametrize("stream", [False, True])
def test_a_vllm_reply_s_reasoning_text_is_billed_when_it_reports_no_usage(gw, served, wire, stream):
    """vLLM's reasoning parsers send the reasoning as `reasoning` (DeepSeek's `reasoning_content`):
    an upstream without usage is counted by Router One, that text included (output tokens)."""
    from routerone.tokens import count_text_tokens
    thought = "First I weigh every option carefully, one by one, before I answer. " * 3
    if stream:
        events = openai_events()[:-1]                      # no usage chunk
        events.insert(1, {**events[1], "choices": [{"index": 0, "delta": {"reasoning": thought}, "finish_reason": None}]})
        served["pieces"] = chunk_frames([sse_body("openai", events)])
    else:
        reply = openai_reply()
        reply["choices"][0]["message"]["reasoning"] = thought
        del reply["usage"]
        served["pieces"] = whole(orjson.dumps(reply))
    key, account_id = gw.new_key()
    out = _oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=100, messages=HI, stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in out if c.choices)
    else:
        text = out.choices[0].message.content
    [row] = settled_rows(gw, account_id, 1)
    assert row.completion_tokens >= count_text_tokens(thought + text)     # was the text's alone


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_sent_as_both_reasoning_and_reasoning_content_is_billed_once(gw, served, wire, stream):
    """vLLM while it renamed the field (and mlx-vlm's server) send the same text as `reasoning` and as
    `reasoning_content`: without usage Router One counted it twice (203 output tokens for 102, past
    max_tokens: the whole hold charged)."""
    from routerone.tokens import count_text_tokens
    thought = "First I weigh every option carefully, one by one, before I answer. " * 3
    if stream:
        events = openai_events()[:-1]                      # no usage chunk
        events.insert(1, {**events[1], "choices": [{"index": 0, "delta": {"reasoning": thought,
                                                                           "reasoning_content": thought},
                                                    "finish_reason": None}]})
        served["pieces"] = chunk_frames([sse_body("openai", events)])
    else:
        reply = openai_reply()
        reply["choices"][0]["message"].update(reasoning=thought, reasoning_content=thought)
        del reply["usage"]
        served["pieces"] = whole(orjson.dumps(reply))
    key, account_id = gw.new_key()
    out = _oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=100, messages=HI, stream=stream)
    if stream:
        chunks = list(out)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        text = out.choices[0].message.content
    [row] = settled_rows(gw, account_id, 1)
    # the reply's own parts, counted as Router One counts a reply (its texts joined by a line break)
    assert row.completion_tokens == count_text_tokens(thought + ("" if stream else "\n") + text)


def test_a_vllm_stream_s_reasoning_reaches_the_client_before_its_answer(gw, served, wire):
    """`delta.reasoning` is output, as `reasoning_content` is: the stream commits on it (the hold
    waited for content, up to stream_hold_ms, while a reasoning model thought)."""
    import time
    events = openai_events()
    first = sse_body("openai", [events[0], {**events[1], "choices": [
        {"index": 0, "delta": {"reasoning": "Let me think."}, "finish_reason": None}]}]).removesuffix(b"data: [DONE]\n\n")
    rest = sse_body("openai", events[1:])
    served["pieces"] = chunk_frames([first], terminator=False) + [1.5, b"%x\r\n" % len(rest) + rest + b"\r\n0\r\n\r\n"]
    key, _ = gw.new_key()
    t0 = time.monotonic()
    stream = _oai(gw, key, wire).chat.completions.create(model=SMALL, max_tokens=50, messages=HI, stream=True)
    seen = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.model_extra.get("reasoning"):
            seen.append(time.monotonic() - t0)
    assert len(seen) == 1 and seen[0] < 1.2, seen

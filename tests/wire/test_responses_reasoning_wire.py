"""A chat answer's reasoning text (`reasoning_content`: Anthropic's thinking, Gemini's thoughts,
DeepSeek's; vLLM's `reasoning`) as a Responses `reasoning` output item (its `content` of
`reasoning_text` parts, `summary` empty), before the message; streamed as that item's events. Every
Response and event validates against OpenAI's spec."""
from __future__ import annotations

import json

import orjson
import pytest
from jsonschema import Draft202012Validator

from openai_schema import validate_openai
from routerone.http.apidoc import build_document
from routerone.wire.responses import completion_to_response, context_items, response_shell, responses_to_chat
from routerone.wire.responses_stream import ResponsesStreamEncoder

BODY = {"model": "claude-sonnet-4", "input": "Say hello", "reasoning": {"effort": "low"}}
USAGE = {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17,
         "completion_tokens_details": {"reasoning_tokens": 9}}


def _events(data: bytes) -> list[dict]:
    out = []
    for block in data.decode().split("\n\n"):
        if block.strip():
            name, payload = block.split("\n", 1)
            ev = json.loads(payload.removeprefix("data: "))
            assert name.removeprefix("event: ") == ev["type"]
            validate_openai(ev, "ResponseStreamEvent")
            out.append(ev)
    return out


def _stream(*deltas: dict, finish: str = "stop") -> tuple[list[dict], ResponsesStreamEncoder]:
    enc = ResponsesStreamEncoder(response_shell(BODY, "resp_r", 1, "claude-sonnet-4"))
    chunks = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "claude-sonnet-4",
               "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    chunks.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "claude-sonnet-4",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    chunks.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "claude-sonnet-4",
                   "choices": [], "usage": USAGE})
    raw = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    return _events(enc.feed(raw)), enc


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reply_reasoning_is_an_item_before_the_message(field):
    completion = {"id": "c", "model": "claude-sonnet-4", "usage": USAGE, "choices": [{
        "index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "Hello!", field: "Let me think."}}]}
    resp = completion_to_response(completion, BODY, "resp_1", 1)
    validate_openai(resp, "Response")
    reasoning, message = resp["output"]
    assert reasoning == {"type": "reasoning", "id": reasoning["id"], "summary": [], "status": "completed",
                         "content": [{"type": "reasoning_text", "text": "Let me think."}]}
    assert reasoning["id"].startswith("rs_")
    assert message["type"] == "message" and message["content"][0]["text"] == "Hello!"
    assert resp["usage"]["output_tokens_details"] == {"reasoning_tokens": 9}
    # the next turn of the chain: the reasoning item is not sent on (no provider takes it back as text)
    nxt = responses_to_chat({"model": "claude-sonnet-4", "input": "And?"}, context_items([], BODY, resp))
    assert nxt.messages == [{"role": "user", "content": "Say hello"}, {"role": "assistant", "content": "Hello!"},
                            {"role": "user", "content": "And?"}]


def test_reply_without_reasoning_has_no_reasoning_item():
    completion = {"id": "c", "model": "m", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "Hi", "reasoning_content": ""}}]}
    assert [o["type"] for o in completion_to_response(completion, BODY, "resp_1", 1)["output"]] == ["message"]


def test_streamed_reasoning_then_answer():
    events, enc = _stream({"role": "assistant", "reasoning_content": "Let me "}, {"reasoning_content": "think."},
                          {"content": "Hel"}, {"content": "lo!"})
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.reasoning_text.delta", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    added = events[2]
    assert added["output_index"] == 0 and added["item"]["type"] == "reasoning" and added["item"]["content"] == []
    assert events[3]["part"] == {"type": "reasoning_text", "text": ""}
    assert [e["delta"] for e in events[4:6]] == ["Let me ", "think."]
    assert {e["item_id"] for e in events[3:8]} == {added["item"]["id"]}
    assert all(e["output_index"] == 0 and e["content_index"] == 0 for e in events[3:8])
    assert events[6]["text"] == "Let me think." and events[7]["part"]["text"] == "Let me think."
    assert events[8]["item"]["status"] == "completed"
    assert all(e["output_index"] == 1 for e in events[9:16])
    final = events[-1]["response"]
    assert final == enc.final
    assert final["output"][0]["content"] == [{"type": "reasoning_text", "text": "Let me think."}]
    assert final["output"][1]["content"][0]["text"] == "Hello!"
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 9}


def test_streamed_reasoning_then_tool_call():
    events, enc = _stream({"reasoning": "Weather: call the tool."},
                          {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                           "function": {"name": "get_weather", "arguments": "{}"}}]},
                          finish="tool_calls")
    types = [e["type"] for e in events]
    assert types.index("response.output_item.done") < types.index("response.function_call_arguments.delta")
    assert [(o["type"], o["status"]) for o in enc.final["output"]] == [("reasoning", "completed"),
                                                                       ("function_call", "completed")]


def test_reasoning_after_the_answer_started_is_a_new_item():
    events, enc = _stream({"content": "Hi."}, {"reasoning_content": "More thought."}, {"content": " Bye."})
    assert [o["type"] for o in enc.final["output"]] == ["message", "reasoning", "message"]
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.added"] == [0, 1, 2]


def test_stream_failing_while_reasoning_keeps_what_was_streamed():
    enc = ResponsesStreamEncoder(response_shell(BODY, "resp_f", 1, "m"))
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"reasoning_content": "Half a thou"}, "finish_reason": None}]}
    events = _events(enc.feed(b"data: " + orjson.dumps(chunk) + b"\n\n"
                              + b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n'))
    assert events[-1]["type"] == "response.failed"
    assert enc.final["output"][0]["content"] == [{"type": "reasoning_text", "text": "Half a thou"}]
    validate_openai(enc.final, "Response")


def test_router_ones_own_document_describes_the_reasoning_item_and_events():
    """/openapi.json's Response and ResponseStreamEvent name the reasoning item and its events."""
    schemas = build_document()["components"]["schemas"]
    events, enc = _stream({"reasoning_content": "Hm."}, {"content": "Hi"})
    Draft202012Validator({**schemas["Response"], "components": {"schemas": schemas}}).validate(enc.final)
    names = set(schemas["ResponseStreamEvent"]["properties"]["event"]["enum"])
    assert {e["type"] for e in events} <= names

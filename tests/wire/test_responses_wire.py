"""wire/responses.py and wire/responses_stream.py from fixture files (no server): Responses request
(+ a previous_response_id chain's items) -> chat body, chat completion -> Response, chat stream ->
semantic events. Everything produced is checked against OpenAI's spec."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from openai_schema import validate_openai
from routerone.errors import InvalidRequest
from routerone.wire.responses import completion_to_response, context_items, response_shell, responses_to_chat
from routerone.wire.responses_stream import ResponsesStreamEncoder

FIXTURES = Path(__file__).parent / "fixtures"


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


def test_items_request_translation():
    fx = json.loads((FIXTURES / "responses" / "items_request.json").read_text())
    # (not validated as CreateResponse: the spec's InputItem oneOf matches a message item under two
    # branches, EasyInputMessage and InputMessage, so every multi-part message "fails" oneOf)
    req = responses_to_chat(fx["responses"], fx["prior"])
    assert req.body == fx["chat"] and req.protocol == "responses" and req.max_tokens == 64


@pytest.mark.parametrize("body,param", [
    ({"model": "m", "input": []}, "input"),
    ({"input": "hi"}, "model"),
    ({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0]"),
    ({"model": "m", "input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0]"),
    ({"model": "m", "input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "https://x"}]}]},
     "input[0].content"),
    ({"model": "m", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
     "input[0].content[0].image_url"),
])
def test_request_errors_name_the_field(body, param):
    with pytest.raises(InvalidRequest) as info:
        responses_to_chat(body, [])
    assert info.value.param == param


def test_completion_to_response_and_the_next_turns_context():
    body = {"model": "gpt-4o", "input": "Weather?", "instructions": "Be brief.",
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}
    completion = {"id": "chatcmpl-1", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "tool_calls",
                  "message": {"role": "assistant", "content": "Checking.", "tool_calls": [
                      {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}}],
                  "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14,
                            "prompt_tokens_details": {"cached_tokens": 2}, "cost": 0.01}}
    resp = completion_to_response(completion, body, "resp_1", 1700000000)
    validate_openai(resp, "Response")
    assert resp["status"] == "completed" and resp["instructions"] == "Be brief."
    assert [o["type"] for o in resp["output"]] == ["message", "function_call"]
    assert resp["output"][1]["call_id"] == "call_9"
    assert resp["usage"] == {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
                             "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0},
                             "total_tokens": 14, "cost": 0.01}
    ctx = context_items([], body, resp)
    assert ctx[0] == {"type": "message", "role": "user", "content": "Weather?", "id": ctx[0]["id"]}
    assert ctx[0]["id"].startswith("msg_") and ctx[1:] == resp["output"]
    nxt = responses_to_chat({"model": "gpt-4o", "input": [{"type": "function_call_output", "call_id": "call_9",
                                                           "output": "18C"}]}, ctx)
    assert [m["role"] for m in nxt.messages] == ["user", "assistant", "tool"]      # instructions not carried
    cut = completion_to_response({**completion, "choices": [{**completion["choices"][0], "finish_reason": "length"}]},
                                 body, "resp_2", 1)
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    validate_openai(cut, "Response")


def test_stream_events_from_a_chat_stream():
    sse = (FIXTURES / "messages" / "text_then_tools_stream.sse").read_bytes()
    enc = ResponsesStreamEncoder(response_shell({"model": "auto", "input": "hi"}, "resp_s", 1, "auto"))
    events = _events(b"".join(enc.feed(f + b"\n\n") for f in sse.split(b"\n\n") if f.strip()))
    types = [e["type"] for e in events]
    assert types == ["response.created", "response.in_progress",
                     "response.output_item.added", "response.content_part.added",
                     "response.output_text.delta", "response.output_text.delta",
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.output_item.added", "response.function_call_arguments.delta",
                     "response.function_call_arguments.delta",
                     "response.output_item.added", "response.function_call_arguments.delta",
                     "response.function_call_arguments.done", "response.output_item.done",
                     "response.function_call_arguments.done", "response.output_item.done",
                     "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert final == enc.final and final["model"] == "gpt-4o" and final["usage"]["cost"] == 0.0002
    assert final["output"][0]["content"][0]["text"] == "Let me check."
    assert [(o["type"], o.get("call_id"), o.get("arguments")) for o in final["output"][1:]] == [
        ("function_call", "call_a", '{"city":"Paris"}'), ("function_call", "call_b", "{}")]


def test_stream_error_fails_the_response():
    sse = (FIXTURES / "messages" / "error_stream.sse").read_bytes()
    enc = ResponsesStreamEncoder(response_shell({"model": "m", "input": "hi"}, "resp_e", 1, "m"))
    events = _events(enc.feed(sse))
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "The upstream provider is unavailable"}


def test_a_long_streamed_answer_costs_linear_time():
    """The open message's text (and a call's arguments) grew by `+=` on a dict value: a copy of all of
    it per delta, quadratic (400,000 deltas of 8 characters: ~640 GB copied, minutes of the event
    loop). Pieces are now kept and joined once, when the item is done."""
    import time

    enc = ResponsesStreamEncoder(response_shell({"model": "m"}, "resp_1", 1, "m"))

    def frame(delta: dict, finish=None) -> bytes:
        return b"data: " + orjson.dumps({"id": "c", "choices": [{"index": 0, "delta": delta,
                                                                 "finish_reason": finish}]}) + b"\n\n"
    text, args = frame({"content": "abcdefgh"}), frame({"tool_calls": [{"index": 0, "function": {"arguments": "12345678"}}]})
    t0 = time.monotonic()
    for _ in range(200_000):
        enc.feed(text)
    enc.feed(frame({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}))
    for _ in range(200_000):
        enc.feed(args)
    enc.feed(frame({}, "tool_calls") + b"data: [DONE]\n\n")
    elapsed = time.monotonic() - t0
    message, call = enc.final["output"]
    assert message["content"][0]["text"] == "abcdefgh" * 200_000 and call["arguments"] == "12345678" * 200_000
    assert elapsed < 15, f"{elapsed:.1f} s"

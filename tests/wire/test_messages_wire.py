"""wire/messages.py and wire/messages_stream.py from fixture files (no server): Anthropic request ->
chat body, chat completion -> Message, chat stream -> Anthropic events (translated and
pass-through). Every Message and event produced is checked against Anthropic's spec."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from providers.anthropic_schema import validate_anthropic, validate_stream_event
from routerone.errors import InvalidRequest, RouterOneError
from routerone.providers.anthropic_stream import AnthropicStream
from routerone.providers.sse import SSEDecoder
from routerone.wire.messages import completion_to_message, error_body, messages_to_chat, parse_messages_request
from routerone.wire.messages_stream import MessagesStreamEncoder

FIXTURES = Path(__file__).parent / "fixtures" / "messages"
ANTHROPIC_FIXTURES = Path(__file__).parents[1] / "providers" / "fixtures" / "anthropic"


def _load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _events(data: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in data.decode().split("\n\n"):
        if block.strip():
            name, payload = block.split("\n", 1)
            out.append((name.removeprefix("event: "), json.loads(payload.removeprefix("data: "))))
    return out


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*_request.json")))
def test_request_translation(name):
    fx = _load(name)
    validate_anthropic(fx["messages"], "CreateMessageParams")
    assert messages_to_chat(fx["messages"]) == fx["chat"]


def test_parsed_request_keeps_the_original_body_and_version_headers():
    body = _load("tool_round_trip_request.json")["messages"]
    req = parse_messages_request(orjson.dumps(body), {"anthropic-version": "2023-06-01", "anthropic-beta": "x,y",
                                                      "x-api-key": "secret"})
    assert req.protocol == "messages" and req.model == "gpt-4o" and req.max_tokens == 512
    assert req.native == {"body": body, "headers": {"anthropic-version": "2023-06-01", "anthropic-beta": "x,y"}}


@pytest.mark.parametrize("case", _load("request_errors.json")["cases"], ids=lambda c: c["param"])
def test_request_errors_name_the_field(case):
    with pytest.raises(InvalidRequest) as info:
        parse_messages_request(orjson.dumps(case["body"]))
    assert info.value.param == case["param"] and info.value.status == 400


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*_response.json")))
def test_response_translation(name):
    fx = _load(name)
    msg = completion_to_message(fx["chat"])
    assert msg == fx["message"]
    validate_anthropic(msg, "Message")


def test_pass_through_message_keeps_upstream_blocks_with_public_model_and_cost():
    native = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514-upstream",
              "content": [{"type": "thinking", "thinking": "hmm", "signature": "c2ln"},
                          {"type": "text", "text": "Hi", "citations": None}],
              "stop_reason": "end_turn", "stop_sequence": None, "stop_details": None, "container": None,
              "usage": {"input_tokens": 3, "output_tokens": 5, "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0, "cache_creation": None, "inference_geo": None,
                        "output_tokens_details": None, "server_tool_use": None, "service_tier": "standard"}}
    msg = completion_to_message({"model": "claude-sonnet-4-20250514", "usage": {"cost": 0.5}, "_native": native})
    assert msg["content"] == native["content"] and msg["model"] == "claude-sonnet-4-20250514"
    assert msg["usage"]["cost"] == 0.5 and msg["id"] == "msg_01"
    validate_anthropic(msg, "Message")


@pytest.mark.parametrize("status,kind", [(400, "invalid_request_error"), (401, "authentication_error"),
                                         (402, "billing_error"), (403, "permission_error"), (404, "not_found_error"),
                                         (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"),
                                         (502, "api_error"), (503, "overloaded_error"), (504, "timeout_error")])
def test_error_types_follow_the_status(status, kind):
    exc = RouterOneError("nope", code="some_code")
    exc.status = status
    body = orjson.loads(error_body(exc, "req_1"))
    assert body == {"type": "error", "error": {"type": kind, "message": "nope (some_code)"}, "request_id": "req_1"}


def _encode(sse: bytes, per_event: bool = True) -> list[tuple[str, dict]]:
    enc = MessagesStreamEncoder()
    frames = [f + b"\n\n" for f in sse.split(b"\n\n") if f.strip()]
    out = b"".join(enc.feed(f) for f in frames) if per_event else enc.feed(sse)
    events = _events(out)
    for name, data in events:
        validate_stream_event(name, data)
    return events


def test_translated_stream_event_sequence():
    sse = (FIXTURES / "text_then_tools_stream.sse").read_bytes()
    events = _encode(sse)
    assert _encode(sse, per_event=False) == events          # however the writes are split
    names = [n for n, _ in events]
    assert names == ["message_start", "ping",
                     "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_start", "content_block_delta",      # tool_use blocks stay open to the end
                     "content_block_stop", "content_block_stop",
                     "message_delta", "message_stop"]
    assert [d["index"] for n, d in events if n == "content_block_stop"] == [0, 1, 2]
    assert events[0][1]["message"]["id"] == "msg_req_s1" and events[0][1]["message"]["model"] == "gpt-4o"
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use", "tool_use"]
    assert (starts[1]["id"], starts[1]["name"]) == ("call_a", "get_weather")
    json_parts = "".join(d["delta"].get("partial_json", "") for n, d in events
                         if n == "content_block_delta" and d["index"] == 1)
    assert json.loads(json_parts) == {"city": "Paris"}
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"] == {"input_tokens": 30, "output_tokens": 12, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 0, "output_tokens_details": None,
                              "server_tool_use": None, "cost": 0.0002}


def test_stream_error_becomes_an_error_event():
    events = _encode((FIXTURES / "error_stream.sse").read_bytes())
    assert [n for n, _ in events][-1] == "error"
    assert events[-1][1]["error"] == {"type": "api_error", "message": "The upstream provider is unavailable"}
    assert "message_stop" not in [n for n, _ in events]


@pytest.mark.parametrize("fixture", ["cache_usage_stream.sse", "thinking_stream.sse", "tool_call_stream.sse"])
def test_pass_through_stream_relays_upstream_events(fixture):
    """Anthropic upstream events -> AnthropicStream(native) -> chat frames (as ChatStream writes
    them) -> the encoder: the client gets the upstream's own events, thinking and signatures
    included, with the public model id and Router One's cost in the last message_delta."""
    raw = (ANTHROPIC_FIXTURES / fixture).read_bytes()
    translator, decoder = AnthropicStream(native=True), SSEDecoder()
    frames = b""
    for ev in decoder.feed(raw):
        for chunk in translator.feed(ev):
            chunk.update({"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 1, "model": "public-model"})
            frames += b"data: " + orjson.dumps(chunk) + b"\n\n"
    billed = {**translator.usage.to_openai(), "cost": 0.25}     # the usage chunk ChatStream writes
    frames += b'data: {"choices":[],"usage":' + orjson.dumps(billed) + b'}\n\ndata: [DONE]\n\n'
    events = _encode(frames, per_event=False)
    upstream = [(e.event, orjson.loads(e.data)) for e in SSEDecoder().feed(raw)]
    assert [n for n, _ in events] == [n for n, _ in upstream]
    for (name, got), (_, want) in zip(events, upstream):
        if name == "message_start":
            assert got["message"] == {**want["message"], "model": "public-model"}
        elif name == "message_delta":     # cumulative counts: the billed ones (an upstream's null filled in)
            start = next(d for n, d in upstream if n == "message_start")["message"]["usage"]
            counts = {k: start.get(k) or 0 for k in ("input_tokens", "cache_creation_input_tokens",
                                                     "cache_read_input_tokens")}
            assert got == {**want, "usage": {**want["usage"], **counts, "cost": 0.25}}
        else:
            assert got == want

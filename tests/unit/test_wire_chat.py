"""`parse_chat_request`: the seed's rules with `param` naming the field, type checks of the other
OpenAI fields, and pass-through of everything else untouched."""
from __future__ import annotations

import orjson
import pytest

from routerone.errors import InvalidRequest
from routerone.wire.chat import parse_chat_request

HI = [{"role": "user", "content": "hi"}]


def parse(**body):
    return parse_chat_request(orjson.dumps({"model": "gpt-4o", "messages": HI, **body}))


def rejected(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as exc:
        parse_chat_request(raw)
    assert exc.value.status == 400 and exc.value.type == "invalid_request_error"
    return exc.value


def test_minimal_request():
    req = parse()
    assert (req.model, req.messages, req.stream, req.include_usage, req.max_tokens) == ("gpt-4o", HI, False, False, None)
    assert req.fallback_models == [] and req.strategy is None


def test_body_is_kept_as_received_including_unknown_fields():
    body = {"model": "gpt-4o", "messages": HI, "top_k": 3, "x_vendor": {"a": [1, None]}, "temperature": 0.2}
    assert parse_chat_request(orjson.dumps(body)).body == body


@pytest.mark.parametrize("body, param", [
    ({"messages": HI}, "model"),
    ({"model": "", "messages": HI}, "model"),
    ({"model": ["gpt-4o"], "messages": HI}, "model"),
    ({"model": "gpt-4o"}, "messages"),
    ({"model": "gpt-4o", "messages": []}, "messages"),
    ({"model": "gpt-4o", "messages": {"role": "user"}}, "messages"),
    ({"model": "gpt-4o", "messages": [None]}, "messages[0]"),
    ({"model": "gpt-4o", "messages": [*HI, {"role": "critic", "content": "x"}]}, "messages[1].role"),
    ({"model": "gpt-4o", "messages": [{"role": "developer", "content": None}]}, "messages[0].content"),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    ({"model": "gpt-4o", "messages": [{"role": "tool", "content": "x", "tool_call_id": 7}]}, "messages[0].tool_call_id"),
    ({"model": "gpt-4o", "messages": HI, "temperature": 2.000001}, "temperature"),
    ({"model": "gpt-4o", "messages": HI, "temperature": -1}, "temperature"),
    ({"model": "gpt-4o", "messages": HI, "top_p": 1.5}, "top_p"),
    ({"model": "gpt-4o", "messages": HI, "top_p": False}, "top_p"),
    ({"model": "gpt-4o", "messages": HI, "max_tokens": 0}, "max_tokens"),
    ({"model": "gpt-4o", "messages": HI, "max_tokens": True}, "max_tokens"),
    ({"model": "gpt-4o", "messages": HI, "max_tokens": 1.5}, "max_tokens"),
    ({"model": "gpt-4o", "messages": HI, "stream_options": {}}, "stream_options"),
    ({"model": "gpt-4o", "messages": HI, "stream": False, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"model": "gpt-4o", "messages": HI, "stream": True, "stream_options": []}, "stream_options"),
    ({"model": "gpt-4o", "messages": HI, "stream": True, "stream_options": {"include_usage": 1}},
     "stream_options.include_usage"),
    ({"model": "gpt-4o", "messages": HI, "stream": 1}, "stream"),
    ({"model": "gpt-4o", "messages": HI, "n": 129}, "n"),
    ({"model": "gpt-4o", "messages": HI, "top_logprobs": -1}, "top_logprobs"),
    ({"model": "gpt-4o", "messages": HI, "stop": []}, "stop"),
    ({"model": "gpt-4o", "messages": HI, "response_format": "json"}, "response_format"),
    ({"model": "gpt-4o", "messages": HI, "response_format": {}}, "response_format.type"),
    ({"model": "gpt-4o", "messages": HI, "tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
     "tools[0].function.parameters"),
    ({"model": "gpt-4o", "messages": HI, "models": "gpt-4o-mini"}, "models"),
    ({"model": "gpt-4o", "messages": HI, "route": 3}, "route"),
])
def test_rule_names_the_param(body, param):
    assert rejected(orjson.dumps(body)).param == param


def test_error_body_is_openai_shaped():
    err = rejected(orjson.dumps({"model": "gpt-4o", "messages": HI, "top_p": 2}))
    assert orjson.loads(err.body()) == {"error": {"message": err.message, "type": "invalid_request_error",
                                                  "param": "top_p", "code": "invalid_value"}}


@pytest.mark.parametrize("raw", [b"", b"{", b"{'model': 'x'}", b"\xff\xfe"])
def test_malformed_json(raw):
    err = rejected(raw)
    assert err.code == "invalid_json" and err.param is None


@pytest.mark.parametrize("raw", [b"[]", b"null", b"1", b'"s"'])
def test_body_must_be_an_object(raw):
    assert rejected(raw).param is None


@pytest.mark.parametrize("fields", [
    {"temperature": 0}, {"temperature": 2}, {"temperature": 1.5}, {"top_p": 0}, {"top_p": 1}, {"max_tokens": 1},
    {"temperature": None, "top_p": None, "max_tokens": None, "stream_options": None, "stream": None},
    {"stop": "END"}, {"stop": ["a", "b", "c", "d"]}, {"n": 1}, {"seed": -3}, {"logit_bias": {"1": 5}},
    {"tool_choice": "required", "tools": [{"type": "custom", "custom": {"name": "grep"}}]},
    {"response_format": {"type": "json_object"}}, {"reasoning_effort": "high"},
])
def test_valid_values_pass(fields):
    assert parse(**fields).body == {"model": "gpt-4o", "messages": HI, **fields}


def test_stream_and_include_usage():
    assert parse(stream=True).include_usage is False
    req = parse(stream=True, stream_options={"include_usage": True})
    assert (req.stream, req.include_usage) == (True, True)


def test_max_completion_tokens_wins_over_max_tokens():
    assert parse(max_tokens=10).max_tokens == 10
    assert parse(max_completion_tokens=7, max_tokens=10).max_tokens == 7
    assert parse(max_tokens=5.0).max_tokens == 5


def test_router_fields():
    req = parse(models=["gpt-4o-mini", "gpt-4.1"], route="cost")
    assert req.fallback_models == ["gpt-4o-mini", "gpt-4.1"] and req.strategy == "cost"


def test_every_role_and_part_kind_is_accepted():
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "s"}]},
        {"role": "developer", "content": "d"},
        {"role": "user", "name": "ann", "content": [
            {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            {"type": "file", "file": {"file_id": "file-1"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "42"}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        {"role": "function", "name": "f", "content": None},
    ]
    req = parse_chat_request(orjson.dumps({"model": "auto", "messages": messages}))
    assert req.messages == messages
    assert req.has_images


def test_derived_properties():
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    req = parse(tools=[tool], response_format={"type": "json_schema", "json_schema": {"name": "x"}},
                messages=[{"role": "user", "content": "first"},
                          {"role": "assistant", "content": None, "tool_calls": [
                              {"id": "c", "type": "function", "function": {"name": "lookup", "arguments": '{"q":1}'}}]},
                          {"role": "user", "content": [{"type": "text", "text": "second"}]}])
    assert req.has_tools and req.wants_json_schema and not req.has_images
    assert req.last_user_text() == "second"
    text = req.prompt_text()
    assert "first" in text and "second" in text and 'lookup{"q":1}' in text and '"name":"lookup"' in text

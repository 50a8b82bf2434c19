"""Property-based: arbitrary JSON thrown at the chat request validator and at every translator, both
ways (Router One -> provider request; provider reply, stream event or error -> OpenAI). Every
outcome is a value or a `RouterOneError` in the seed's error shape, never another exception.

Derandomised (a fixed seed) so the suite is deterministic; ROUTERONE_FUZZ_EXAMPLES=5000 for a longer run.
"""
from __future__ import annotations

import os

import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

from routerone.errors import RouterOneError, UpstreamError
from routerone.providers.adapters import ADAPTERS
from routerone.providers.base import Deployment, ProviderResult, SSEEvent, UpstreamRequest, Vendor
from routerone.providers.status import retry_after_s
from routerone.wire.chat import ChatRequest, parse_chat_request, validate_body

EXAMPLES = int(os.environ.get("ROUTERONE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DEPLOYMENTS = {
    "openai": Deployment("m", Vendor("openai", "openai", "https://api.example/v1", api_key="k"), "m"),
    "anthropic": Deployment("m", Vendor("anthropic", "anthropic", "https://api.example/v1", auth="x-api-key",
                                        api_key="k"), "claude-x"),
    "gemini": Deployment("m", Vendor("gemini", "gemini", "https://api.example/v1beta", auth="x-goog-api-key",
                                     api_key="k"), "gemini-x"),
}

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 63), max_value=2 ** 64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
           | st.sampled_from(["text", "image_url", "function", "user", "assistant", "tool", "system", "auto",
                              "none", "required", "json_schema", "json_object", "url", "data:image/png;base64,AA"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8) | st.sampled_from(
                               ["type", "text", "name", "arguments", "function", "id", "url", "image_url",
                                "content", "role", "parameters", "properties"]), inner, max_size=4),
                           max_leaves=20)

ROLES = ["system", "developer", "user", "assistant", "tool", "function", "bogus"]
MESSAGE_KEYS = ["content", "tool_calls", "tool_call_id", "name", "function_call", "refusal"]
BODY_KEYS = ["temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "stream", "stream_options",
             "tools", "tool_choice", "response_format", "stop", "models", "route", "logprobs", "top_logprobs",
             "seed", "user", "metadata", "parallel_tool_calls", "logit_bias", "frequency_penalty"]

part = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "refusal", "file"]) | json_values},
                             optional={"text": json_values, "image_url": json_values | st.fixed_dictionaries(
                                 {"url": st.text(max_size=10) | json_values}), "refusal": json_values})
tool_call = st.fixed_dictionaries({"id": st.text(max_size=5) | json_values},
                                  optional={"type": st.just("function") | json_values,
                                            "function": st.fixed_dictionaries(
                                                {"name": st.text(max_size=5) | json_values,
                                                 "arguments": st.text(max_size=10) | json_values})})
message = st.fixed_dictionaries(
    {"role": st.sampled_from(ROLES) | json_values},
    optional={"content": st.text(max_size=20) | st.lists(part, max_size=3) | json_values,
              "tool_calls": st.lists(tool_call, max_size=2) | json_values,
              "tool_call_id": st.text(max_size=5) | json_values, "name": st.text(max_size=5) | json_values})
tool = st.fixed_dictionaries({"type": st.sampled_from(["function", "custom"]) | json_values},
                             optional={"function": st.fixed_dictionaries(
                                 {"name": st.text(max_size=6) | json_values},
                                 optional={"parameters": json_values, "description": json_values})})
chat_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o", "auto", ""]) | json_values,
     "messages": st.lists(message, min_size=1, max_size=4) | json_values},
    optional={k: json_values for k in BODY_KEYS} | {
        "tools": st.lists(tool, max_size=2) | json_values,
        "response_format": st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "json_schema"])},
                                                 optional={"json_schema": json_values}) | json_values,
        "stream": st.booleans(), "stream_options": st.fixed_dictionaries({}, optional={"include_usage": json_values})})


def assert_seed_shape(exc: RouterOneError) -> None:
    err = orjson.loads(exc.body())["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"] and isinstance(err["type"], str)
    assert err["param"] is None or isinstance(err["param"], str)
    assert 400 <= exc.status <= 599
    for k, v in exc.headers.items():
        assert isinstance(k, str) and isinstance(v, str) and v.isascii()


def check_request(body) -> None:
    try:
        req = validate_body(body)
    except RouterOneError as exc:
        assert_seed_shape(exc)
        return
    assert isinstance(req, ChatRequest)
    assert isinstance(req.prompt_text(), str) and isinstance(req.last_user_text(), str)
    assert isinstance(req.has_images, bool) and isinstance(req.has_tools, bool)
    for protocol, dep in DEPLOYMENTS.items():
        for stream in (False, True):
            try:
                up = ADAPTERS[protocol].build_request(req, dep, stream=stream)
            except RouterOneError as exc:
                assert_seed_shape(exc)
                continue
            assert isinstance(up, UpstreamRequest) and isinstance(up.body, bytes)


@FUZZ
@given(json_values)
def test_any_json_value_as_a_chat_body(body):
    check_request(body)


@FUZZ
@given(chat_bodies)
def test_chat_shaped_bodies(body):
    check_request(body)


@FUZZ
@given(st.binary(max_size=64) | json_values.map(orjson.dumps))
def test_raw_bytes_as_a_chat_body(raw):
    try:
        parse_chat_request(raw)
    except RouterOneError as exc:
        assert_seed_shape(exc)


# -- upstream -> Router One -------------------------------------------------------------------

usage_like = st.fixed_dictionaries({}, optional={k: json_values | st.integers(min_value=-10, max_value=2 ** 40) for k in (
    "prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens", "promptTokenCount",
    "candidatesTokenCount", "cache_read_input_tokens", "prompt_tokens_details", "completion_tokens_details")})
reply_like = st.fixed_dictionaries({}, optional={
    "choices": st.lists(st.fixed_dictionaries({}, optional={"message": json_values, "delta": json_values,
                                                            "finish_reason": json_values, "index": json_values}),
                        max_size=2) | json_values,
    "content": st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "tool_use", "thinking"]) | json_values},
                                              optional={"text": json_values, "input": json_values,
                                                        "name": json_values, "id": json_values}), max_size=2),
    "candidates": st.lists(st.fixed_dictionaries({}, optional={"content": json_values, "finishReason": json_values}),
                           max_size=2) | json_values,
    "usage": usage_like | json_values, "usageMetadata": usage_like | json_values, "stop_reason": json_values, "type": json_values,
    "error": json_values, "message": json_values, "delta": json_values, "index": json_values,
    "content_block": json_values, "id": json_values, "model": json_values})
upstream_json = reply_like | json_values


def _ok_or_router_error(fn, *args):
    try:
        return fn(*args)
    except RouterOneError as exc:
        assert_seed_shape(exc)
        return None


@FUZZ
@given(st.sampled_from(sorted(DEPLOYMENTS)), upstream_json.map(orjson.dumps) | st.binary(max_size=40))
def test_any_upstream_reply_body(protocol, body):
    result = _ok_or_router_error(ADAPTERS[protocol].parse_response, body, DEPLOYMENTS[protocol])
    if result is not None:
        assert isinstance(result, ProviderResult) and isinstance(result.response, dict)
        orjson.dumps(result.response)


REQ = validate_body({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                     "tools": [{"type": "function", "function": {"name": "f"}}]})
EVENTS = [None, "message_start", "content_block_start", "content_block_delta", "message_delta", "message_stop",
          "error", "ping"]


@FUZZ
@given(st.sampled_from(sorted(DEPLOYMENTS)),
       st.lists(st.tuples(st.sampled_from(EVENTS), upstream_json.map(lambda v: orjson.dumps(v).decode())
                          | st.text(max_size=10) | st.just("[DONE]")), min_size=1, max_size=6))
def test_any_upstream_stream_events(protocol, events):
    translator = ADAPTERS[protocol].stream_translator(REQ, DEPLOYMENTS[protocol])
    for name, data in events:
        out = _ok_or_router_error(translator.feed, SSEEvent(name, data))
        if out is None:
            return
        assert isinstance(out, list) and all(isinstance(c, dict) for c in out)
        orjson.dumps(out)


retry_after_text = st.sampled_from(["nan", "inf", "-inf", "-1", "1e999", "0", "2.5", "soon",
                                    "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 99 Oct 2099 99:28:00 GMT"]) | st.text(max_size=12)


@FUZZ
@given(st.sampled_from(sorted(DEPLOYMENTS)), st.integers(min_value=400, max_value=599),
       st.dictionaries(st.sampled_from(["Retry-After", "retry-after-ms", "x-other"]), retry_after_text, max_size=2),
       upstream_json.map(orjson.dumps) | st.binary(max_size=40))
def test_any_upstream_error(protocol, status, headers, body):
    err = ADAPTERS[protocol].map_error(status, headers, body, DEPLOYMENTS[protocol])
    assert isinstance(err, UpstreamError)
    assert_seed_shape(err)
    ra = retry_after_s(headers)
    assert ra is None or 0 <= ra <= 3600

"""Gemini response -> OpenAI `chat.completion`: one test per behaviour, each pinned by its fixture.

Both sides of every fixture are validated: the upstream body against the discovery document
(`GenerateContentResponse`), the adapter's output against OpenAI's `CreateChatCompletionResponse`.
"""
from __future__ import annotations

import json
import time

import orjson
import pytest

from gemini_fixtures import ADAPTER, DEP, load, normalize
from gemini_schema import gemini_validator, validate_gemini
from openai_schema import validate_openai
from routerone.errors import UpstreamError
from routerone.providers.gemini_response import FINISH_REASONS, finish_reason


def parsed(fixture: str) -> dict:
    fx = load(fixture)
    validate_gemini(fx["gemini_response"], "GenerateContentResponse")
    result = ADAPTER.parse_response(orjson.dumps(fx["gemini_response"]), DEP)
    validate_openai(result.response, "CreateChatCompletionResponse")
    assert abs(result.response["created"] - time.time()) < 60
    got = normalize(result.response)
    assert got == fx["openai_response"]
    validate_openai(fx["openai_response"], "CreateChatCompletionResponse")
    if result.usage is not None:
        assert result.usage.to_openai() == fx["openai_response"]["usage"]
    return result.response


def test_text_response():
    parsed("text_response.json")


def test_function_call():
    resp = parsed("function_call.json")
    assert json.loads(resp["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Paris", "unit": "celsius"}


def test_parallel_function_calls():
    resp = parsed("parallel_function_calls.json")
    ids = [tc["id"] for tc in resp["choices"][0]["message"]["tool_calls"]]
    assert len(set(ids)) == 3 and all(i.startswith("call_") for i in ids)


def test_max_tokens():
    parsed("max_tokens.json")


def test_safety_block():
    parsed("safety_block.json")


def test_recitation():
    parsed("recitation.json")


def test_prompt_blocked():
    parsed("prompt_blocked.json")


def test_usage_cached_thoughts():
    resp = parsed("usage_cached_thoughts.json")
    usage = ADAPTER.parse_response(orjson.dumps(load("usage_cached_thoughts.json")["gemini_response"]), DEP).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens) == (2068, 317, 1536, 312)
    assert "Weighing" not in resp["choices"][0]["message"]["content"]


def test_multiple_candidates():
    parsed("multiple_candidates.json")


def test_logprobs_response():
    parsed("logprobs_response.json")


def test_thought_signature_response():
    parsed("thought_signature_response.json")


def test_json_response():
    resp = parsed("json_response.json")
    assert json.loads(resp["choices"][0]["message"]["content"])["name"] == "Ada"


def test_every_discovery_finish_reason_is_mapped():
    enum = gemini_validator("Candidate").schema["$defs"]["Candidate"]["properties"]["finishReason"]["enum"]
    assert set(enum) == set(FINISH_REASONS)
    assert finish_reason("STOP", True) == "tool_calls"
    assert finish_reason("MAX_TOKENS", True) == "length"
    assert finish_reason(None, False) == "stop"
    for reason in ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"):
        assert finish_reason(reason, False) == "content_filter"
    for reason in ("MALFORMED_FUNCTION_CALL", "OTHER", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"):
        assert finish_reason(reason, False) == "stop"


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[]", b'{"usageMetadata": {"promptTokenCount": 3}}'])
def test_malformed_bodies_are_upstream_errors(body):
    with pytest.raises(UpstreamError) as info:
        ADAPTER.parse_response(body, DEP)
    assert info.value.retryable

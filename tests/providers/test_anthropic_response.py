"""Anthropic `Message` -> OpenAI `chat.completion`, one fixture per behaviour (no server).

Each `fixtures/anthropic/<behaviour>.json` of kind `response` holds an upstream Message and the
OpenAI object the adapter must produce (`created` is the gateway clock, so it is checked apart).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest

from openai_schema import validate_completion
from routerone.errors import UpstreamUnavailable
from routerone.providers.anthropic import AnthropicAdapter
from routerone.providers.base import Deployment, Vendor
from routerone.wire.types import Usage

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
DEP = Deployment("claude-sonnet-4", Vendor(name="anthropic", protocol="anthropic",
                                           base_url="https://api.anthropic.com", auth="x-api-key"),
                 "claude-sonnet-4-20250514")
RESPONSES = sorted(p.stem for p in FIXTURES.glob("*.json") if json.loads(p.read_text()).get("kind") == "response")


@pytest.mark.parametrize("name", RESPONSES)
def test_response_fixture(name: str) -> None:
    fx = json.loads((FIXTURES / f"{name}.json").read_text())
    before = int(time.time())
    result = AnthropicAdapter().parse_response(orjson.dumps(fx["anthropic"]), DEP)
    out = dict(result.response)
    assert before <= out.pop("created") <= int(time.time()) + 1
    assert out == fx["openai"], fx["doc"]
    validate_completion(result.response)
    assert result.usage is not None
    assert result.usage.to_openai() == fx["openai"]["usage"]


def test_cache_usage_fields() -> None:
    fx = json.loads((FIXTURES / "cache_usage.json").read_text())
    usage = AnthropicAdapter().parse_response(orjson.dumps(fx["anthropic"]), DEP).usage
    assert usage == Usage(prompt_tokens=2350, completion_tokens=4, cached_tokens=2000, cache_write_tokens=300)


def test_lean_real_world_message_without_optional_fields() -> None:
    """Deployed API versions omit fields the spec marks required (stop_details, container, cache fields)."""
    lean = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 1}}
    result = AnthropicAdapter().parse_response(orjson.dumps(lean), DEP)
    validate_completion(result.response)
    assert result.response["choices"][0]["message"]["content"] == "Hi"
    assert result.usage == Usage(prompt_tokens=3, completion_tokens=1)


@pytest.mark.parametrize("body", [b"<html>bad gateway</html>", b"[]", b'{"type": "error"}'])
def test_unexpected_body_is_upstream_unavailable(body: bytes) -> None:
    with pytest.raises(UpstreamUnavailable) as info:
        AnthropicAdapter().parse_response(body, DEP)
    assert info.value.retryable


@pytest.mark.parametrize("details, reasoning", [
    ({"thinking_tokens": 500}, 40), ({"thinking_tokens": 12}, 12), ({"thinking_tokens": -5}, 0),
    ({"thinking_tokens": "12"}, 0), ({"thinking_tokens": 1e30}, 0), ([12], 0), ("12", 0), (None, 0)])
def test_thinking_tokens_are_a_part_of_the_output_tokens_never_more(details, reasoning) -> None:
    """An upstream's `output_tokens_details` of the wrong type or value: no reasoning tokens; more
    thinking tokens than output tokens (reasoning_tokens above completion_tokens for the client) are
    the output tokens at most."""
    from routerone.providers.anthropic_response import usage_from_anthropic
    usage = usage_from_anthropic({"input_tokens": 3, "output_tokens": 40, "output_tokens_details": details})
    assert (usage.completion_tokens, usage.reasoning_tokens) == (40, reasoning)

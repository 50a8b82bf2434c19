"""`reasoning_effort` on a Gemini model, end to end: the official `openai` SDK -> a real Router One ->
the fake Gemini upstream, which thinks as the real API does (thoughtsTokenCount always; the thought
text as `thought: true` parts, over several stream events, only when `includeThoughts` is asked for).

Covered: the request asks for thoughts (`thinkingConfig.includeThoughts`) beside the budget; the
thought text reaches the client as `message.reasoning_content` / `delta.reasoning_content`, before
the answer and never in `content`; thoughts are billed as output tokens (completion_tokens =
candidates + thoughts) and reported as reasoning_tokens; `reasoning_effort: "none"` asks for none.
"""
from __future__ import annotations

import pytest
from openai import OpenAI

from chat_helpers import charges, everything_validates  # noqa: F401
from routerone.testing.fake_gemini import FakeGeminiServer
from routerone.testing.fake_gemini_content import FAKE_THOUGHT

KEY = "gemini-test-key"
FLASH = "gemini-2.5-flash"
REPLY = "Hello! This is a reply from the fake Gemini upstream."   # the fake's 12-piece answer
THOUGHTS_TOKENS = 40
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def upstream():
    with FakeGeminiServer(api_key=KEY, thoughts_tokens=THOUGHTS_TOKENS) as fake:
        yield fake


@pytest.fixture
def gw(gateway, upstream):
    return gateway(providers={"gemini": (upstream.base_url, KEY)}, max_retries=0)


def flash_cost_micros(prompt: int, completion: int) -> int:
    """gemini-2.5-flash: $0.30 in, $2.50 out per 1M tokens; rounded up once."""
    return -(-(prompt * 300_000 + completion * 2_500_000) // 1_000_000)


def test_reasoning_effort_non_streaming(gw, funded_key, openai_client: OpenAI, upstream):
    resp = openai_client.chat.completions.create(model=FLASH, messages=HELLO, reasoning_effort="low")
    assert upstream.requests[-1]["body"]["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024, "includeThoughts": True}
    msg = resp.choices[0].message
    assert msg.content == REPLY
    assert msg.model_extra["reasoning_content"] == FAKE_THOUGHT
    u = resp.usage
    assert u.completion_tokens == 12 + THOUGHTS_TOKENS, "thoughts are output tokens"
    assert u.completion_tokens_details.reasoning_tokens == THOUGHTS_TOKENS
    assert charges(gw, funded_key[1]) == [-flash_cost_micros(u.prompt_tokens, 12 + THOUGHTS_TOKENS)]


def test_reasoning_effort_streaming(gw, funded_key, openai_client: OpenAI, upstream):
    chunks = list(openai_client.chat.completions.create(
        model=FLASH, messages=HELLO, reasoning_effort="medium", stream=True, stream_options={"include_usage": True}))
    assert upstream.requests[-1]["body"]["generationConfig"]["thinkingConfig"]["includeThoughts"] is True
    *body, last = chunks
    deltas = [c.choices[0].delta for c in body if c.choices]
    assert "".join(d.content or "" for d in deltas) == REPLY
    reasoning = [d.model_extra.get("reasoning_content") for d in deltas]
    assert "".join(r or "" for r in reasoning) == FAKE_THOUGHT
    assert len([r for r in reasoning if r]) > 1, "the fake streams its thoughts over several events"
    first_content = next(i for i, d in enumerate(deltas) if d.content)
    assert all(r is None for r in reasoning[first_content:]), "the thoughts come before the answer"
    assert last.usage.completion_tokens == 12 + THOUGHTS_TOKENS
    assert last.usage.completion_tokens_details.reasoning_tokens == THOUGHTS_TOKENS
    assert charges(gw, funded_key[1]) == [-flash_cost_micros(last.usage.prompt_tokens, 12 + THOUGHTS_TOKENS)]


def test_reasoning_effort_none_asks_for_no_thoughts(gw, funded_key, openai_client: OpenAI, upstream):
    resp = openai_client.chat.completions.create(model=FLASH, messages=HELLO, reasoning_effort="none")
    assert upstream.requests[-1]["body"]["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    assert resp.choices[0].message.content == REPLY
    assert "reasoning_content" not in (resp.choices[0].message.model_extra or {})
    assert resp.usage.completion_tokens == 12, "a budget of 0 thinks nothing"


def test_responses_returns_the_thoughts_as_a_reasoning_item(gw, funded_key, openai_client: OpenAI, upstream):
    resp = openai_client.responses.create(model=FLASH, input="Say hello", reasoning={"effort": "low"})
    reasoning, message = resp.output
    assert reasoning.type == "reasoning" and [c.text for c in reasoning.content] == [FAKE_THOUGHT]
    assert resp.output_text == REPLY and message.type == "message"
    assert resp.usage.output_tokens_details.reasoning_tokens == THOUGHTS_TOKENS
    events = list(openai_client.responses.create(model=FLASH, input="Say hello", reasoning={"effort": "low"},
                                                 stream=True))
    assert "".join(e.delta for e in events if e.type == "response.reasoning_text.delta") == FAKE_THOUGHT
    assert events[-1].response.output_text == REPLY

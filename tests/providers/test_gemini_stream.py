"""Gemini SSE stream -> OpenAI chunks: one test per behaviour, each pinned by `<name>.sse` + `<name>.json`.

Every upstream event validates against the discovery document (`GenerateContentResponse`, or the error
envelope); every chunk the translator emits validates against OpenAI's `CreateChatCompletionStreamResponse`.
"""
from __future__ import annotations

import orjson
import pytest

from gemini_fixtures import ADAPTER, DEP, chat_request, load, normalize, sse_events
from gemini_schema import validate_gemini
from openai_schema import validate_openai
from routerone.errors import UpstreamError
from routerone.providers.base import SSEEvent

_DEFAULT_REQUEST = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def translate(name: str):
    fx = load(f"{name}.json")
    translator = ADAPTER.stream_translator(chat_request(fx.get("openai_request", _DEFAULT_REQUEST)), DEP)
    chunks, done_after, error = [], [], None
    for ev in sse_events(f"{name}.sse"):
        payload = orjson.loads(ev.data)
        validate_gemini(payload, "ErrorEnvelope" if "error" in payload else "GenerateContentResponse")
        assert ev.event is None   # Gemini streams are data-only
        try:
            chunks.extend(translator.feed(ev))
        except UpstreamError as exc:
            error = exc
            break
        done_after.append(translator.done)
    for chunk in chunks:
        validate_openai(chunk, "CreateChatCompletionStreamResponse")
    for chunk in fx["openai_chunks"]:
        validate_openai(chunk, "CreateChatCompletionStreamResponse")
    assert normalize(chunks) == fx["openai_chunks"]
    assert len({c["id"] for c in chunks}) <= 1 and len({c["created"] for c in chunks}) <= 1
    assert translator.done is fx["done"]
    usage = translator.usage.to_openai() if translator.usage else None
    assert usage == fx["usage"]
    if "done_after_event" in fx:
        assert done_after == fx["done_after_event"]
    return translator, chunks, error, fx


def test_text_stream():
    translate("text_stream")


def test_function_call_stream():
    _, chunks, _, _ = translate("function_call_stream")
    ids = [tc["id"] for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", ())]
    assert len(set(ids)) == 3


def test_max_tokens_stream():
    translate("max_tokens_stream")


def test_prompt_blocked_stream():
    translate("prompt_blocked_stream")


def test_safety_stream():
    translate("safety_stream")


def test_thoughts_stream():
    translate("thoughts_stream")


def test_multiple_candidates_stream():
    translate("multiple_candidates_stream")


def test_logprobs_stream():
    translate("logprobs_stream")


def test_stream_cut():
    translator, _, error, _ = translate("stream_cut")
    assert error is None and not translator.done
    # the chat service calls decoder.close() at end of body: the torn event is then malformed JSON
    with pytest.raises(UpstreamError) as info:
        translator.feed(SSEEvent(None, '{"candidates":[{"content":{"role":"model","parts":[{"text":"er'))
    assert info.value.retryable


def test_stream_error():
    _, _, error, fx = translate("stream_error")
    expected = fx["error"]
    assert type(error).__name__ == expected["class"]
    assert (error.status, error.code, error.retryable, error.upstream_status) == (
        expected["status"], expected["code"], expected["retryable"], expected["upstream_status"])


def test_keepalive_and_blank_events_are_ignored():
    translator = ADAPTER.stream_translator(chat_request(_DEFAULT_REQUEST), DEP)
    assert translator.feed(SSEEvent(None, "")) == []
    assert translator.usage is None and not translator.done


def test_thoughts_after_the_last_usage_are_counted_by_router_one():
    """Thought text after the last usageMetadata: that count was not the final one (as for content)."""
    translator = ADAPTER.stream_translator(chat_request(_DEFAULT_REQUEST), DEP)
    translator.feed(SSEEvent(None, orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Hm", "thought": True}]}}], "usageMetadata": {"promptTokenCount": 3, "thoughtsTokenCount": 1}}).decode()))
    chunks = translator.feed(SSEEvent(None, orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": " more thinking", "thought": True}]}}]}).decode()))
    assert chunks[0]["choices"][0]["delta"] == {"reasoning_content": " more thinking"}
    assert "completion_tokens" in translator.usage.unreadable


@pytest.mark.parametrize("name", ["text_stream", "function_call_stream", "max_tokens_stream", "thoughts_stream",
                                  "multiple_candidates_stream", "logprobs_stream", "safety_stream"])
def test_no_event_of_a_recorded_stream_is_quiet(name):
    """`quiet` (a keep-alive for the idle timeout) is for events that say nothing; none of a real
    stream's are."""
    translator = ADAPTER.stream_translator(chat_request(_DEFAULT_REQUEST), DEP)
    for ev in sse_events(f"{name}.sse"):
        translator.feed(ev)
        assert not translator.quiet, (name, ev)


@pytest.mark.parametrize("event,quiet", [
    ({"candidates": [{"content": {"role": "model", "parts": []}}]}, True),
    ({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "index": 0}]}, True),
    ({"candidates": [{"index": 0}]}, True),
    ({}, True),
    ({"usageMetadata": {"promptTokenCount": 3, "thoughtsTokenCount": 9}}, False),      # thinking: the totals grew
    ({"candidates": [{"content": {"parts": [{"text": "", "thoughtSignature": "c2ln"}]}}]}, False),
    ({"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}]}, False),
])
def test_quiet_events(event, quiet):
    translator = ADAPTER.stream_translator(chat_request(_DEFAULT_REQUEST), DEP)
    translator.feed(SSEEvent(None, orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Hi"}]}}], "usageMetadata": {"promptTokenCount": 3, "thoughtsTokenCount": 1}}).decode()))
    translator.feed(SSEEvent(None, orjson.dumps(event).decode()))
    assert translator.quiet is quiet

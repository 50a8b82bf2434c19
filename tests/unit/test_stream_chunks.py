"""spec_chunk (services/stream_chunks.py): one walk of an OpenAI-protocol chunk says whether a
choice finished and whether the chunk says anything to the client (what tells a keep-alive chunk
from activity: services/streaming.py's idle timeout)."""
from __future__ import annotations

import pytest

from routerone.services.stream_chunks import spec_chunk


def _put(chunk: dict) -> tuple[bool, bool]:
    return spec_chunk(chunk, None, lambda text, log=True: None)


@pytest.mark.parametrize("chunk", [
    {"choices": [{"delta": {}}]},
    {"choices": [{"delta": None}]},
    {"choices": [{"index": 0}]},
    {"choices": [{"delta": {"role": "assistant"}}]},
    {"choices": [{"delta": {"role": "user", "content": ""}}]},
    {"choices": [{"delta": {"content": None, "tool_calls": None}, "finish_reason": ""}]},
    {"choices": [{"delta": {"content": [{"type": "text", "text": ""}]}}]},
    {"choices": []},
    {"usage": None},
    {},
], ids=repr)
def test_a_chunk_that_says_nothing(chunk):
    assert _put(chunk) == (False, False)


@pytest.mark.parametrize("chunk", [
    {"choices": [{"delta": {"content": "hi"}}]},
    {"choices": [{"delta": {"content": [{"type": "text", "text": "hi"}]}}]},
    {"choices": [{"delta": {"reasoning_content": "hmm"}}]},
    {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}}]},
    {"choices": [{"delta": {"refusal": "no"}}]},
    {"choices": [{"delta": {"audio": {"id": "a"}}}]},
    {"choices": [{"delta": {}}, {"index": 1, "delta": {"content": "x"}}]},
    {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
], ids=repr)
def test_a_chunk_that_says_something(chunk):
    assert _put(chunk) == (False, True)


@pytest.mark.parametrize("finish", ["stop", "length", "some_vendor_reason", "error"])
def test_a_finish_says_something(finish):
    assert _put({"choices": [{"delta": {}, "finish_reason": finish}]}) == (True, True)

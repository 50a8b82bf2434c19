"""Anthropic SSE -> OpenAI chunks, one `.sse` fixture per behaviour (no server).

Raw upstream bytes go through the shared `SSEDecoder` in small uneven pieces, then the adapter's
translator; every chunk must be a valid `CreateChatCompletionStreamResponse`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from openai_schema import validate_chunk
from routerone.errors import UpstreamError
from routerone.providers.anthropic import AnthropicAdapter
from routerone.providers.anthropic_stream import AnthropicStream
from routerone.providers.base import Deployment, Vendor
from routerone.providers.sse import SSEDecoder
from routerone.wire.types import Usage

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
DEP = Deployment("claude-sonnet-4", Vendor(name="anthropic", protocol="anthropic",
                                           base_url="https://api.anthropic.com", auth="x-api-key"),
                 "claude-sonnet-4-20250514")


def translate(name: str, *, piece_bytes: int = 7) -> tuple[list[dict], AnthropicStream]:
    raw = (FIXTURES / f"{name}.sse").read_bytes()
    decoder, stream = SSEDecoder(), AnthropicAdapter().stream_translator(None, DEP)  # type: ignore[arg-type]
    chunks: list[dict] = []
    for i in range(0, len(raw), piece_bytes):
        for event in decoder.feed(raw[i:i + piece_bytes]):
            chunks += stream.feed(event)
    for event in decoder.close():
        chunks += stream.feed(event)
    return chunks, stream


def accumulate(chunks: list[dict]) -> dict:
    """What an OpenAI SDK client reassembles from the chunks."""
    out: dict = {"role": None, "content": "", "reasoning": "", "thinking_blocks": [], "tool_calls": {},
                 "finish_reason": None}
    for chunk in chunks:
        validate_chunk(chunk)
        assert chunk["id"] == chunks[0]["id"] and chunk["created"] == chunks[0]["created"]
        (choice,) = chunk["choices"]
        assert out["finish_reason"] is None, "nothing may follow the finish chunk"
        delta = choice["delta"]
        out["role"] = out["role"] or delta.get("role")
        out["content"] += delta.get("content") or ""
        out["reasoning"] += delta.get("reasoning_content") or ""
        out["thinking_blocks"] += delta.get("thinking_blocks") or []
        for call in delta.get("tool_calls") or ():
            slot = out["tool_calls"].setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
            if "id" in call:
                assert slot["id"] is None, "id only on the first fragment"
                slot["id"], slot["name"] = call["id"], call["function"]["name"]
                assert call["type"] == "function" and call["function"]["arguments"] == ""
            slot["arguments"] += (call.get("function") or {}).get("arguments") or ""
        out["finish_reason"] = choice["finish_reason"]
    out["tool_calls"] = [out["tool_calls"][k] for k in sorted(out["tool_calls"])]
    return out


CASES = {
    "text_stream": ("Hello! How can I help?", [], "stop", Usage(12, 9)),
    "tool_call_stream": ("I'll check the weather.", [("toolu_01NRLabs", "get_weather", '{"city": "Paris"}')],
                         "tool_calls", Usage(377, 65)),
    "parallel_tool_calls_stream": ("Checking both.", [("toolu_01Paris", "get_weather", '{"city": "Paris"}'),
                                                      ("toolu_01Tokyo", "get_weather", '{"city": "Tokyo"}'),
                                                      ("toolu_01Time", "get_time", "")], "tool_calls", Usage(420, 140)),
    "max_tokens_stream": ("The history of Rome", [], "length", Usage(20, 4)),
    "stop_sequence_stream": ("1, 2, 3, ", [], "stop", Usage(15, 7)),
    "cache_usage_stream": ("Cached.", [], "stop", Usage(2350, 4, cached_tokens=2000, cache_write_tokens=300)),
    "json_schema_stream": ('{"city": "Paris", "temp_c": 18.5}', [], "stop", Usage(90, 25)),
    "thinking_stream": ("4", [], "stop", Usage(10, 40)),
    "refusal_stream": ("I can't", [], "content_filter", Usage(30, 8)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_stream_fixture(name: str) -> None:
    content, tool_calls, finish, usage = CASES[name]
    chunks, stream = translate(name)
    got = accumulate(chunks)
    assert got["role"] == "assistant" and chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert got["content"] == content
    assert [(c["id"], c["name"], c["arguments"]) for c in got["tool_calls"]] == tool_calls
    assert got["finish_reason"] == finish
    assert stream.usage == usage
    assert stream.done
    assert all(c.get("usage") is None for c in chunks), "usage travels on .usage, never in chunks"


def test_thinking_streams_as_reasoning_content_never_content() -> None:
    """thinking_delta -> delta.reasoning_content (LiteLLM/DeepSeek convention); redacted_thinking
    gives no text; a second thinking block is set off by a blank line."""
    chunks, stream = translate("thinking_stream")
    got = accumulate(chunks)
    assert (got["content"], got["reasoning"]) == ("4", "2 + 2 is 4.")
    chunks, stream = translate("redacted_thinking_stream", piece_bytes=5)
    got = accumulate(chunks)
    assert got["content"] == "" and got["reasoning"] == "I need the weather first.\n\nThen the time."
    assert [(c["id"], c["arguments"]) for c in got["tool_calls"]] == [("toolu_01W", '{"city": "Paris"}')]
    assert got["finish_reason"] == "tool_calls"
    assert stream.usage == Usage(10, 90, reasoning_tokens=60)
    # each signed block, whole, once it is complete (LiteLLM's thinking_blocks; sent back, it keeps thinking on)
    assert got["thinking_blocks"] == [
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIw"},
        {"type": "thinking", "thinking": "I need the weather first.", "signature": "EqQBCgIYAhIMa"},
        {"type": "thinking", "thinking": "Then the time.", "signature": "EqQBCgIYAhIMb"}]
    assert accumulate(translate("thinking_stream")[0])["thinking_blocks"] == [
        {"type": "thinking", "thinking": "2 + 2 is 4.", "signature": "EqQBCgIYAhIM"}]


def test_tool_call_index_is_position_among_tool_calls_not_block_index() -> None:
    chunks, _ = translate("parallel_tool_calls_stream")
    starts = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or () if "id" in tc]
    assert [(tc["index"], tc["id"]) for tc in starts] == [(0, "toolu_01Paris"), (1, "toolu_01Tokyo"), (2, "toolu_01Time")]


def test_chunks_carry_upstream_id_and_model() -> None:
    chunks, _ = translate("text_stream")
    assert {c["id"] for c in chunks} == {"msg_01TextStream"}
    assert {c["model"] for c in chunks} == {"claude-sonnet-4-20250514"}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


@pytest.mark.parametrize("piece_bytes", [1, 3, 64, 100000])
def test_translation_does_not_depend_on_network_chunking(piece_bytes: int) -> None:
    assert accumulate(translate("tool_call_stream", piece_bytes=piece_bytes)[0]) == accumulate(translate("tool_call_stream")[0])


def test_error_event_raises_retryable_overloaded_after_partial_output() -> None:
    raw = (FIXTURES / "error_event_stream.sse").read_bytes()
    stream = AnthropicAdapter().stream_translator(None, DEP)  # type: ignore[arg-type]
    chunks: list[dict] = []
    with pytest.raises(UpstreamError) as info:
        for event in SSEDecoder().feed(raw):
            chunks += stream.feed(event)
    assert accumulate(chunks)["content"] == "Partial answer"
    err = info.value
    assert (err.status, err.code, err.retryable) == (503, "upstream_overloaded", True)
    assert "Overloaded" in err.message and not stream.done
    assert stream.usage == Usage(12, 1)


def test_json_schema_stream_emits_no_tool_calls() -> None:
    chunks, _ = translate("json_schema_stream")
    assert not any("tool_calls" in c["choices"][0]["delta"] for c in chunks)


def test_ping_and_unknown_events_are_ignored() -> None:
    from routerone.providers.base import SSEEvent
    stream = AnthropicStream()
    assert stream.feed(SSEEvent("ping", '{"type": "ping"}')) == []
    assert stream.feed(SSEEvent("future_event", '{"type": "future_event", "x": 1}')) == []
    assert stream.usage is None and not stream.done


def test_malformed_event_is_upstream_error() -> None:
    from routerone.providers.base import SSEEvent
    with pytest.raises(UpstreamError):
        AnthropicStream().feed(SSEEvent("message_start", "{not json"))


def test_lean_real_world_stream_without_optional_fields() -> None:
    """Events as deployed APIs send them (no citations/caller/stop_details, usage without cache fields)."""
    from routerone.providers.base import SSEEvent
    events = [
        '{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",'
        '"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}',
        '{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}',
        '{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}}',
        '{"type":"content_block_stop","index":0}',
        '{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":7}}',
        '{"type":"message_stop"}',
    ]
    stream = AnthropicStream()
    chunks = [c for data in events for c in stream.feed(SSEEvent(None, data))]
    got = accumulate(chunks)
    assert got["tool_calls"] == [{"id": "toolu_1", "name": "f", "arguments": "{}"}]
    assert got["finish_reason"] == "tool_calls" and stream.done and stream.usage == Usage(5, 7)


def test_a_thinking_block_too_long_to_keep_is_not_given_back_cut(monkeypatch) -> None:
    from routerone.providers import anthropic_stream
    monkeypatch.setattr(anthropic_stream, "SIGNED_BLOCK_CAP_CHARS", 8)
    got = accumulate(translate("thinking_stream")[0])
    assert got["reasoning"] == "2 + 2 is 4." and got["thinking_blocks"] == []
    monkeypatch.setattr(anthropic_stream, "SIGNED_BLOCK_CAP_CHARS", 100)
    assert len(accumulate(translate("thinking_stream")[0])["thinking_blocks"]) == 1


def test_pass_through_keeps_no_thinking_blocks() -> None:
    """/v1/messages relays the events themselves: the translator keeps no copy of the thinking."""
    stream = AnthropicStream(native=True)
    raw = (FIXTURES / "thinking_stream.sse").read_bytes()
    chunks = [c for e in SSEDecoder().feed(raw) for c in stream.feed(e)]
    assert not any("thinking_blocks" in ch["delta"] for c in chunks for ch in c["choices"])
    assert "".join(ch["delta"].get("reasoning_content") or "" for c in chunks for ch in c["choices"]) == "2 + 2 is 4."
    assert stream._signed == {}


def test_a_block_stop_with_an_index_that_is_not_a_number_is_ignored() -> None:
    from routerone.providers.base import SSEEvent
    stream = AnthropicStream()
    assert stream.feed(SSEEvent("content_block_stop", '{"type": "content_block_stop", "index": [0]}')) == []


def test_thinking_blocks_never_stopped_keep_at_most_the_cap_together() -> None:
    """A hostile upstream opening thinking block after thinking block, none of them stopped, each
    just under the cap: the kept text grew by the cap per block (2 MB each, no bound in all)."""
    import orjson
    from routerone.providers import anthropic_stream
    from routerone.providers.base import SSEEvent
    cap = anthropic_stream.SIGNED_BLOCK_CAP_CHARS
    stream = AnthropicStream()
    piece = "x" * (cap // 4)
    relayed = 0
    for index in range(6):
        stream.feed(SSEEvent("content_block_start", orjson.dumps({
            "type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": ""}})))
        for _ in range(3):
            for c in stream.feed(SSEEvent("content_block_delta", orjson.dumps({
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "thinking_delta", "thinking": piece}}))):
                relayed += len(c["choices"][0]["delta"].get("reasoning_content") or "")
    kept = sum(len(p) for b in stream._signed.values() for f in ("thinking", "signature") for p in b[f] if p)
    assert kept <= cap
    assert relayed >= 6 * 3 * len(piece)          # the reasoning text itself is all relayed


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.sse")))
def test_in_recorded_streams_only_pings_are_quiet(name: str) -> None:
    """`quiet` (a keep-alive for the idle timeout) marks events that say nothing; in real streams
    those are the pings and a tool call's first delta, `partial_json: ""` (a signature delta or a
    block's start or stop relays little, but is work)."""
    from routerone.providers.base import SSEEvent
    decoder, stream = SSEDecoder(), AnthropicStream()
    for event in [*decoder.feed((FIXTURES / f"{name}.sse").read_bytes()), *decoder.close()]:
        try:
            stream.feed(event)
        except UpstreamError:
            break
        empty = event.event == "ping" or '"partial_json":""' in event.data.replace(" ", "")
        assert stream.quiet is (empty and not stream.done), (name, event)
    assert stream.feed(SSEEvent("content_block_delta", '{"type": "content_block_delta", "index": 0, '
                                '"delta": {"type": "signature_delta", "signature": "EqQB"}}')) == [] and not stream.quiet


@pytest.mark.parametrize("data,quiet", [
    ('{"type": "ping"}', True),
    ('{}', True),
    ('{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ""}}', True),
    ('{"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": ""}}', True),
    ('{"type": "message_delta", "delta": {}}', True),
    ('{"type": "message_delta", "delta": {}, "usage": {"output_tokens": 3}}', False),
    ('{"type": "future_event", "x": 1}', False),
    ('{"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {}}}', False),
])
def test_quiet_events(data: str, quiet: bool) -> None:
    from routerone.providers.base import SSEEvent
    stream = AnthropicStream()
    stream.feed(SSEEvent("message", data))
    assert stream.quiet is quiet

"""StreamNumbering (providers/guarded.py): a chat stream's choices and tool calls numbered 0, 1, ...
as the openai SDK's stream helper needs them, in memory that a hostile upstream cannot grow without
limit (it remembered every choice index, every tool call index and every call id, whole, for the
stream's life: 16 MiB ids, 10**6 indices)."""
from __future__ import annotations

import tracemalloc

import orjson
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from routerone.providers.guarded import StreamNumbering


def _call(index: int, call_id: str | None = None, name: str | None = None, args: str = "") -> dict:
    tc: dict = {"index": index, "function": {"arguments": args}}
    if call_id is not None:
        tc["id"], tc["type"], tc["function"]["name"] = call_id, "function", name
    return tc


def _grown_bytes(feed) -> int:
    tracemalloc.start()
    try:
        feed()
        before = tracemalloc.get_traced_memory()[0]
        feed()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_many_distinct_call_indices_with_long_ids_keep_memory_bounded():
    numbering = StreamNumbering()
    n = [0]

    def feed() -> None:
        for _ in range(2_000):
            i = n[0] = n[0] + 1
            numbering.call(0, _call(i, f"call_{i}_" + "x" * 10_000, "f", "{}"))

    grown = _grown_bytes(feed)
    assert grown < 1 << 20, f"{grown} bytes kept for 2,000 more calls"


def test_many_distinct_choice_indices_keep_memory_bounded():
    numbering = StreamNumbering()
    n = [0]

    def feed() -> None:
        for _ in range(20_000):
            i = n[0] = n[0] + 1
            numbering.call(numbering.choice(i), _call(0, f"call_{i}", "f", "{}"))

    grown = _grown_bytes(feed)
    assert grown < 1 << 20, f"{grown} bytes kept for 20,000 more choices"


def test_a_long_stream_of_sequential_calls_is_numbered_in_order():
    """20,000 calls (test_hostile_upstream's s_many_calls), each an opening delta and its arguments."""
    numbering = StreamNumbering()
    for i in range(20_000):
        assert numbering.call(0, _call(i, f"call_{i}", "f", "")) == i
        assert numbering.call(0, _call(i, args='{"a": 1}')) == i


def test_interleaved_parallel_calls_keep_their_numbers():
    numbering = StreamNumbering()
    first = numbering.choice(3)
    ids = range(10**9, 10**9 + 200)           # numbered oddly: 0, 1, ... still
    assert [numbering.call(first, _call(k, f"call_{k}", "f", "")) for k in ids] == list(range(200))
    for _ in range(3):
        assert [numbering.call(first, _call(k, args="x")) for k in reversed(ids)] == list(range(199, -1, -1))
    second = numbering.choice(-1)
    assert (first, second) == (0, 1)
    assert numbering.call(second, _call(0, "other", "g", "")) == 0
    assert numbering.choice(3) == 0 and numbering.choice(-1) == 1 and numbering.choice(9) == 2


def _chunk(choice: int, tc: dict) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate({
        "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": choice, "delta": {"role": "assistant", "tool_calls": [tc]}, "finish_reason": None}]})


def test_the_openai_sdk_stream_helper_accepts_what_it_numbers_even_past_its_memory():
    """Calls numbered far apart, then more calls than it remembers (each opened, then its arguments
    in a second delta): the SDK's helper files every delta where it belongs."""
    numbering = StreamNumbering()
    state = ChatCompletionStreamState()
    n_calls = 300
    for i in range(n_calls):
        k = i * 1_000_003
        for tc in (_call(k, f"call_{i}", f"f{i}", ""), _call(k, args=orjson.dumps({"i": i}).decode())):
            tc["index"] = numbering.call(numbering.choice(5), tc)
            state.handle_chunk(_chunk(numbering.choice(5), tc))
    [choice] = state.current_completion_snapshot.choices
    calls = choice.message.tool_calls
    assert [(c.id, c.function.name, orjson.loads(c.function.arguments)) for c in calls] == \
        [(f"call_{i}", f"f{i}", {"i": i}) for i in range(n_calls)]
    late = _call(0, args="{}")                 # the first call's, long forgotten: a new call, no harm
    late["index"] = numbering.call(numbering.choice(5), late)
    assert late["index"] == n_calls
    state.handle_chunk(_chunk(0, late))
    assert len(state.current_completion_snapshot.choices[0].message.tool_calls) == n_calls + 1

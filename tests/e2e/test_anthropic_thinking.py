"""`reasoning_effort` (chat) and `reasoning.effort` (responses) on an Anthropic model, end to end:
the official `openai` SDK -> a real Router One -> the fake Anthropic upstream, which thinks as the
real API does (a signed thinking block, thinking_delta events, thinking tokens inside output_tokens)
and refuses what the real API refuses with thinking on.

Covered: the Messages request carries `thinking: {type: enabled, budget_tokens}` (the budget clamped
to half of the catalog's default max_tokens); the thinking text reaches the client as
`message.reasoning_content` / `delta.reasoning_content`, never as content; thinking tokens are billed
as completion tokens and reported as reasoning_tokens; the signed blocks come back as
`thinking_blocks` and, sent back (the SDK's own message object does), keep thinking on in a tool
loop, streamed or not; without them that turn goes through with thinking off; a
temperature thinking refuses is a 400 naming it, with no upstream call; a stream that fails during the
thinking bills at least the reasoning already relayed; /v1/responses with `reasoning.effort`: the
thinking as a `reasoning` output item (streamed: its events), a chain continued past it.
"""
from __future__ import annotations

import json

import openai
import pytest
from openai import OpenAI
from openai.types.responses import ResponseReasoningItem, ResponseReasoningTextDeltaEvent, ResponseReasoningTextDoneEvent

from chat_helpers import charges, everything_validates  # noqa: F401
from routerone.testing.fake_anthropic import serve_fake_anthropic
from routerone.tokens import count_text_tokens

KEY = "sk-ant-test"
SONNET = "claude-sonnet-4-20250514"          # catalog default max_tokens 8192
REPLY = "Hello! This is a reply from the fake Claude. Ask"
THOUGHT = "Let me think this through step by step."   # the fake's thinking text, 9 tokens (one per delta)
THOUGHT_TOKENS = 9
HELLO = [{"role": "user", "content": "Say hello"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def fake_anthropic():
    with serve_fake_anthropic(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def upstream(fake_anthropic):
    fake_anthropic.requests.clear()
    fake_anthropic.fake.faults.clear()
    return fake_anthropic


@pytest.fixture
def gw(gateway, upstream):
    """Overrides conftest's `gw`: a Router One whose only provider is the fake Anthropic."""
    return gateway(providers={"anthropic": (upstream.url, KEY)}, max_retries=0)


def sonnet_cost_micros(prompt: int, completion: int) -> int:
    """claude-sonnet-4: $3 in, $15 out per 1M tokens; rounded up once."""
    return -(-(prompt * 3_000_000 + completion * 15_000_000) // 1_000_000)


def test_reasoning_effort_non_streaming(gw, funded_key, openai_client: OpenAI, upstream):
    resp = openai_client.chat.completions.create(model=SONNET, messages=HELLO, reasoning_effort="high")
    [sent] = upstream.requests
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096} and sent["max_tokens"] == 8192
    msg = resp.choices[0].message
    assert msg.content == REPLY and THOUGHT not in msg.content
    assert msg.model_extra["reasoning_content"] == THOUGHT
    u = resp.usage
    assert u.completion_tokens == 12 + THOUGHT_TOKENS, "thinking tokens are output tokens"
    assert u.completion_tokens_details.reasoning_tokens == THOUGHT_TOKENS
    assert charges(gw, funded_key[1]) == [-sonnet_cost_micros(u.prompt_tokens, u.completion_tokens)]


def test_reasoning_effort_streaming(gw, funded_key, openai_client: OpenAI, upstream):
    chunks = list(openai_client.chat.completions.create(
        model=SONNET, messages=HELLO, reasoning_effort="medium", max_completion_tokens=20000, stream=True,
        stream_options={"include_usage": True}))
    assert upstream.requests[-1]["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    *body, last = chunks
    deltas = [c.choices[0].delta for c in body]
    assert "".join(d.content or "" for d in deltas) == REPLY
    reasoning = [d.model_extra.get("reasoning_content") for d in deltas]
    assert "".join(r or "" for r in reasoning) == THOUGHT
    first_content = next(i for i, d in enumerate(deltas) if d.content)
    assert all(r is None for r in reasoning[first_content:]), "the thinking comes before the answer"
    assert last.usage.completion_tokens == 12 + THOUGHT_TOKENS
    assert last.usage.completion_tokens_details.reasoning_tokens == THOUGHT_TOKENS
    assert charges(gw, funded_key[1]) == [-sonnet_cost_micros(last.usage.prompt_tokens, 12 + THOUGHT_TOKENS)]
    assert gw.account(funded_key[1])["reserved_micros"] == 0


def test_tool_loop_continued_with_the_sdk_message_keeps_thinking_on(openai_client: OpenAI, upstream):
    """Appending the reply's message object (the openai SDK sends its extra fields back) carries
    the signed thinking blocks (`thinking_blocks`): Anthropic gets them unchanged, thinking stays on."""
    history = [{"role": "user", "content": "Weather in Paris?"}]
    first = openai_client.chat.completions.create(model=SONNET, messages=history, tools=[WEATHER],
                                                  reasoning_effort="low")
    msg = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and msg.model_extra["reasoning_content"] == THOUGHT
    [block] = msg.model_extra["thinking_blocks"]
    assert block["type"] == "thinking" and block["thinking"] == THOUGHT and block["signature"]
    history += [msg, {"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": "18C"}]
    second = openai_client.chat.completions.create(model=SONNET, messages=history, tools=[WEATHER],
                                                   reasoning_effort="low")
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content == REPLY
    sent = upstream.requests[1]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["messages"][1]["content"][0] == block, "the signed block opens the assistant turn, unchanged"
    assert second.choices[0].message.model_extra["reasoning_content"] == THOUGHT


def test_tool_loop_continued_without_thinking_blocks_turns_thinking_off(openai_client: OpenAI, upstream):
    """A client that rebuilds the assistant message (content and tool calls only) cannot give the
    signed blocks back: that turn goes without thinking (else Anthropic refuses it); the next user
    turn thinks again."""
    history = [{"role": "user", "content": "Weather in Paris?"}]
    first = openai_client.chat.completions.create(model=SONNET, messages=history, tools=[WEATHER],
                                                  reasoning_effort="low", stream=True)
    calls: dict = {}
    for chunk in first:
        for tc in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            slot = calls.setdefault(tc.index, {"id": tc.id, "arguments": ""})
            slot["arguments"] += tc.function.arguments or ""
    call = calls[0]
    history += [{"role": "assistant", "content": None, "tool_calls": [
                    {"id": call["id"], "type": "function", "function": {"name": "get_weather", "arguments": call["arguments"]}}]},
                {"role": "tool", "tool_call_id": call["id"], "content": "18C"}]
    second = openai_client.chat.completions.create(model=SONNET, messages=history, tools=[WEATHER],
                                                   reasoning_effort="low")
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content == REPLY
    assert upstream.requests[0]["thinking"]["type"] == "enabled"
    assert "thinking" not in upstream.requests[1]
    assert "reasoning_content" not in (second.choices[0].message.model_extra or {})
    history += [second.choices[0].message, {"role": "user", "content": "Thanks"}]
    third = openai_client.chat.completions.create(model=SONNET, messages=history, tools=[WEATHER],
                                                  reasoning_effort="low")
    assert third.choices[0].message.model_extra["reasoning_content"] == THOUGHT
    assert upstream.requests[2]["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def test_streamed_thinking_blocks_sent_back_keep_thinking_on(openai_client: OpenAI, upstream):
    """Streamed, each signed block arrives whole in one `delta.thinking_blocks`; sent back on the
    assistant message, thinking stays on for the tool loop's next turn."""
    history = [{"role": "user", "content": "Weather in Paris?"}]
    blocks, calls = [], {}
    for chunk in openai_client.chat.completions.create(model=SONNET, messages=history, tools=[WEATHER],
                                                       reasoning_effort="low", stream=True):
        for choice in chunk.choices:
            blocks += (choice.delta.model_extra or {}).get("thinking_blocks") or []
            for tc in choice.delta.tool_calls or ():
                slot = calls.setdefault(tc.index, {"id": tc.id, "arguments": ""})
                slot["arguments"] += tc.function.arguments or ""
    assert [b["thinking"] for b in blocks] == [THOUGHT]
    call = calls[0]
    history += [{"role": "assistant", "content": None, "thinking_blocks": blocks, "tool_calls": [
                    {"id": call["id"], "type": "function", "function": {"name": "get_weather", "arguments": call["arguments"]}}]},
                {"role": "tool", "tool_call_id": call["id"], "content": "18C"}]
    second = openai_client.chat.completions.create(model=SONNET, messages=history, tools=[WEATHER],
                                                   reasoning_effort="low")
    assert second.choices[0].message.content == REPLY
    assert upstream.requests[1]["thinking"]["type"] == "enabled"
    assert upstream.requests[1]["messages"][1]["content"][0] == blocks[0]


def test_what_thinking_refuses_is_a_400_without_upstream_call(gw, funded_key, openai_client: OpenAI, upstream):
    with pytest.raises(openai.BadRequestError) as ei:
        openai_client.chat.completions.create(model=SONNET, messages=HELLO, reasoning_effort="high",
                                              temperature=0.2, stream=True)
    assert ei.value.body["param"] == "temperature" and ei.value.body["code"] == "unsupported_parameter"
    assert upstream.requests == [] and charges(gw, funded_key[1]) == []


@pytest.fixture
def paced_gw(gateway):
    with serve_fake_anthropic(api_key=KEY, chunk_interval_ms=15) as fake:
        yield gateway(providers={"anthropic": (fake.url, KEY)}, max_retries=0), fake


def test_stream_failing_during_thinking_bills_the_reasoning_relayed(paced_gw, make_openai_client):
    gw, _ = paced_gw
    key, account_id = gw.new_key()
    client = make_openai_client(gw, key)
    relayed = ""
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
                model=SONNET, stream=True, reasoning_effort="low",
                messages=[{"role": "user", "content": "Hi [[stream_error:6]]"}]):
            relayed += "".join(c.delta.model_extra.get("reasoning_content") or "" for c in chunk.choices)
    assert relayed == "Let me think this through step"
    [charge] = charges(gw, account_id)
    prompt = count_text_tokens("Hi [[stream_error:6]]")
    assert -charge >= sonnet_cost_micros(prompt, count_text_tokens(relayed))


def test_responses_reasoning_effort(gw, funded_key, openai_client: OpenAI, upstream):
    """/v1/responses: the thinking is a `reasoning` item (raw reasoning text: `content` of
    reasoning_text parts, no summary) before the message; `output_text` is the answer only."""
    resp = openai_client.responses.create(model=SONNET, input="Say hello", reasoning={"effort": "medium"},
                                          max_output_tokens=20000)
    assert upstream.requests[-1]["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert resp.output_text == REPLY
    reasoning, message = resp.output
    assert isinstance(reasoning, ResponseReasoningItem) and reasoning.summary == []
    assert [c.text for c in reasoning.content] == [THOUGHT] and reasoning.id.startswith("rs_")
    assert message.type == "message" and THOUGHT not in json.dumps(message.model_dump())
    assert resp.usage.output_tokens == 12 + THOUGHT_TOKENS
    assert resp.usage.output_tokens_details.reasoning_tokens == THOUGHT_TOKENS
    assert charges(gw, funded_key[1]) == [-sonnet_cost_micros(resp.usage.input_tokens, 12 + THOUGHT_TOKENS)]


def test_responses_stream_reasoning_events(openai_client: OpenAI, upstream):
    """Streamed: the reasoning item's events (output_item.added, content_part.added,
    reasoning_text.delta/.done, ...) at output_index 0, then the message's at 1; every event is
    one the SDK knows (parsed into its own event class)."""
    events = list(openai_client.responses.create(model=SONNET, input="Say hello", reasoning={"effort": "high"},
                                                 stream=True))
    assert upstream.requests[-1]["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    for e in events:
        assert type(e).__module__.startswith("openai.types.responses.") and type(e).__name__.endswith("Event"), e
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    n_thought = THOUGHT_TOKENS
    assert types[:7] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added", *["response.reasoning_text.delta"] * 3]
    assert types[2 + 2 + n_thought:2 + 2 + n_thought + 3] == [
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done"]
    deltas = [e for e in events if isinstance(e, ResponseReasoningTextDeltaEvent)]
    assert "".join(e.delta for e in deltas) == THOUGHT and {e.output_index for e in deltas} == {0}
    [done_text] = [e for e in events if isinstance(e, ResponseReasoningTextDoneEvent)]
    assert done_text.text == THOUGHT and done_text.item_id == events[2].item.id
    assert {e.output_index for e in events if e.type == "response.output_text.delta"} == {1}
    done = events[-1].response
    assert events[-1].type == "response.completed" and done.output_text == REPLY
    assert [o.type for o in done.output] == ["reasoning", "message"]
    assert done.output[0].content[0].text == THOUGHT
    assert done.usage.output_tokens == 12 + THOUGHT_TOKENS
    assert done.usage.output_tokens_details.reasoning_tokens == THOUGHT_TOKENS


@pytest.mark.parametrize("stream", [False, True])
def test_responses_chain_with_a_reasoning_item_continues(openai_client: OpenAI, upstream, stream):
    """A stored response's reasoning item does not break the next turn: it is not sent on (its text
    alone is no Anthropic input); the earlier answer is, as an assistant turn."""
    first = openai_client.responses.create(model=SONNET, input="Say hello", reasoning={"effort": "low"},
                                           stream=stream)
    if stream:
        first = [e for e in first if e.type == "response.completed"][0].response
    assert first.output[0].type == "reasoning"
    second = openai_client.responses.create(model=SONNET, input="Again", previous_response_id=first.id,
                                            reasoning={"effort": "low"})
    assert second.output_text == REPLY and second.previous_response_id == first.id
    sent = upstream.requests[-1]
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}, {"role": "assistant", "content": REPLY},
                                {"role": "user", "content": "Again"}]
    items = openai_client.responses.input_items.list(second.id, order="asc").data
    assert [i.type for i in items] == ["message", "reasoning", "message", "message"]


def test_responses_tool_loop_past_a_reasoning_item(openai_client: OpenAI, upstream):
    """A function_call answer with its reasoning item, continued with the tool's output: the chain
    translates (the reasoning item dropped); without its signed blocks, Anthropic gets that turn with
    thinking off (what it allows), and the answer comes back."""
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
    first = openai_client.responses.create(model=SONNET, input="Weather in Paris?", tools=[tool],
                                           reasoning={"effort": "low"})
    assert [o.type for o in first.output] == ["reasoning", "message", "function_call"]
    call = first.output[-1]
    second = openai_client.responses.create(model=SONNET, previous_response_id=first.id, tools=[tool],
                                            reasoning={"effort": "low"},
                                            input=[{"type": "function_call_output", "call_id": call.call_id,
                                                    "output": "18C"}])
    assert second.status == "completed" and second.output_text == REPLY
    sent = upstream.requests[-1]
    assert "thinking" not in sent
    assert [b["type"] for b in sent["messages"][1]["content"]] == ["text", "tool_use"]

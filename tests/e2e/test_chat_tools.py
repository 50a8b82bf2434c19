"""Tool calling through the OpenAI SDK, streamed and not, sync and async: tools -> assistant
tool_calls -> tool messages -> final answer. Streamed tool-call deltas must accumulate (by `index`)
to the right id / name / arguments, parallel calls use index 0 and 1, and the SDK's own stream
accumulator must agree with a hand-rolled one."""
from __future__ import annotations

import json

import pytest
from openai import OpenAI

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a timezone",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}, "utc_offset": {"type": "integer"}}}}}
FINAL = "Hello! This is a reply from the fake upstream. Ask"


def accumulate(chunks) -> tuple[dict[int, dict], str | None]:
    """Tool calls by index from streamed deltas, the way OpenAI's protocol defines them."""
    calls: dict[int, dict] = {}
    finish = None
    for chunk in chunks:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or ():
                slot = calls.setdefault(tc.index, {"id": None, "type": None, "name": None, "arguments": "", "firsts": 0})
                if tc.id is not None:
                    assert slot["id"] is None, f"call {tc.index} got a second id"
                    slot["id"], slot["type"] = tc.id, tc.type
                    slot["firsts"] += 1
                if tc.function is not None:
                    if tc.function.name:
                        slot["name"] = tc.function.name
                    slot["arguments"] += tc.function.arguments or ""
            finish = choice.finish_reason or finish
    return calls, finish


def tool_messages(calls: list[dict]) -> list[dict]:
    return [{"role": "tool", "tool_call_id": c["id"], "content": json.dumps({"result": i})} for i, c in enumerate(calls)]


def test_tool_round_trip_sync(openai_client: OpenAI, fake_requests):
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = openai_client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    assistant = choice.message.model_dump(exclude_none=True)
    calls = [{"id": call.id}]
    messages += [assistant, *tool_messages(calls)]
    final = openai_client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == FINAL
    assert not final.choices[0].message.tool_calls
    sent = fake_requests[-1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": '{"result": 0}'}


async def test_parallel_tool_round_trip_async(async_openai_client):
    messages = [{"role": "user", "content": "Weather and time, please [[tools:2]]"}]
    first = await async_openai_client.chat.completions.create(model="gpt-4.1", messages=messages, tools=[WEATHER, TIME])
    calls = first.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[1].function.arguments) == {"tz": "Paris", "utc_offset": 1}
    assert len({c.id for c in calls}) == 2
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 *tool_messages([{"id": c.id} for c in calls])]
    final = await async_openai_client.chat.completions.create(model="gpt-4.1", messages=messages, tools=[WEATHER, TIME])
    assert final.choices[0].message.content == FINAL


def test_streamed_tool_round_trip_sync(openai_client: OpenAI, fake_requests):
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    chunks = list(openai_client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER],
                                                        stream=True, stream_options={"include_usage": True}))
    calls, finish = accumulate(chunks)
    assert finish == "tool_calls"
    assert list(calls) == [0]
    call = calls[0]
    assert call["firsts"] == 1 and call["type"] == "function" and call["id"].startswith("call_")
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0

    messages += [{"role": "assistant", "content": None, "tool_calls": [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        *tool_messages([call])]
    final = list(openai_client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in final if c.choices) == FINAL
    assert final[-1].choices[0].finish_reason == "stop"
    assert fake_requests[-1]["messages"][-1]["tool_call_id"] == call["id"]


async def test_streamed_parallel_tool_calls_async(async_openai_client):
    messages = [{"role": "user", "content": "Both, please [[tools:2]]"}]
    stream = await async_openai_client.chat.completions.create(
        model="gpt-4o", messages=messages, tools=[WEATHER, TIME], stream=True)
    chunks = [c async for c in stream]
    calls, finish = accumulate(chunks)
    assert finish == "tool_calls"
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert all(calls[i]["firsts"] == 1 and calls[i]["type"] == "function" for i in (0, 1))
    assert calls[0]["id"] != calls[1]["id"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert json.loads(calls[1]["arguments"]) == {"tz": "Paris", "utc_offset": 1}
    # arguments really arrive in fragments, each carrying only the index after the first
    fragments = [tc for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or () if tc.id is None]
    assert fragments and all(tc.function.name is None for tc in fragments)

    messages += [{"role": "assistant", "content": None, "tool_calls": [
        {"id": calls[i]["id"], "type": "function", "function": {"name": calls[i]["name"], "arguments": calls[i]["arguments"]}}
        for i in (0, 1)]}, *tool_messages([calls[0], calls[1]])]
    final = await async_openai_client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER, TIME])
    assert final.choices[0].finish_reason == "stop"


def test_sdk_stream_accumulator_agrees(openai_client: OpenAI):
    messages = [{"role": "user", "content": "Both [[tools:2]]"}]
    with openai_client.chat.completions.stream(model="gpt-4o", messages=messages, tools=[WEATHER, TIME]) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Paris", "utc_offset": 1})]
    assert [e.index for e in done] == [0, 1]
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_choice_names_one_function(openai_client: OpenAI, fake_requests, stream):
    tool_choice = {"type": "function", "function": {"name": "get_time"}}
    result = openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}],
                                                   tools=[WEATHER, TIME], tool_choice=tool_choice, stream=stream)
    if stream:
        calls, _ = accumulate(list(result))
        names = [calls[i]["name"] for i in sorted(calls)]
    else:
        names = [c.function.name for c in result.choices[0].message.tool_calls]
    assert names == ["get_time"]
    assert fake_requests[-1]["tool_choice"] == tool_choice


def test_parallel_tool_calls_false_is_forwarded(openai_client: OpenAI, fake_requests):
    result = openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "[[tools:2]]"}],
                                                   tools=[WEATHER, TIME], parallel_tool_calls=False)
    assert len(result.choices[0].message.tool_calls) == 1
    assert fake_requests[-1]["parallel_tool_calls"] is False

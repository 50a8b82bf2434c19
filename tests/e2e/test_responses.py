"""Issue 14, /v1/responses end to end: the official `openai` SDK's `responses.create` (plain, streamed,
function calling, previous_response_id chains) and `responses.retrieve/delete` -> a real Router One ->
fake OpenAI-compatible, Anthropic and Gemini upstreams (translated onto the chat pipeline). Every
body and event validates against OpenAI's spec (`Response`, `ResponseStreamEvent`, `ErrorResponse`)."""
from __future__ import annotations

import json

import openai
import pytest
from openai import OpenAI

from protocol_helpers import key, protocol_gateway, sse_events, wait_usage_rows, wire  # noqa: F401 (fixtures)
from routerone.testing import fake_openai
from routerone.testing.fake_anthropic import serve_fake_anthropic
from routerone.testing.fake_gemini import FakeGeminiServer
from routerone.testing.threaded import ThreadedServer

ANT_KEY, OAI_KEY, GEM_KEY = "sk-ant-fake", "sk-oai-fake-0123456789", "gem-fake-key"
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-20250514", "gemini": "gemini-2.5-flash"}
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city", "strict": False,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def fakes():
    with serve_fake_anthropic(api_key=ANT_KEY) as ant, \
            ThreadedServer(lambda: fake_openai.make_app(api_key=OAI_KEY, natural_length=True)) as oai, \
            FakeGeminiServer(api_key=GEM_KEY) as gem:
        yield {"anthropic": ant, "openai": oai, "gemini": gem}


def oai_requests(fakes) -> list[dict]:
    return fakes["openai"].app["fake"].requests


@pytest.fixture
def gw(gateway, fakes):
    oai_requests(fakes).clear()
    return protocol_gateway(gateway, fakes, {"anthropic": ANT_KEY, "openai": OAI_KEY, "gemini": GEM_KEY})


@pytest.fixture
def client(gw, key, wire):
    c = OpenAI(base_url=gw.base_url, api_key=key[0], max_retries=0, http_client=wire.client())
    yield c
    c.close()


@pytest.mark.parametrize("provider", list(MODELS))
def test_plain_response_over_every_upstream(gw, key, client, provider):
    raw = client.responses.with_raw_response.create(model=MODELS[provider], input="Say hello",
                                                    instructions="Be brief.")
    resp = raw.parse()
    assert resp.object == "response" and resp.status == "completed" and resp.model == MODELS[provider]
    assert resp.output_text and resp.output[0].type == "message"
    assert resp.instructions == "Be brief." and resp.id.startswith("resp_")
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    cost = float(raw.headers["x-routerone-cost"])
    assert cost > 0 and abs(resp.usage.model_extra["cost"] - cost) < 1e-9
    assert raw.headers["x-routerone-provider"] == provider
    rows = wait_usage_rows(gw, key[1], 1)
    assert [(r["protocol"], r["routed_model"], r["cost_micros"]) for r in rows] == [
        ("responses", MODELS[provider], round(cost * 1e6))]


def test_translation_sent_upstream(gw, key, client, fakes):
    client.responses.create(model="gpt-4o", instructions="Be brief.", max_output_tokens=50, temperature=0.5,
                            input=[{"role": "developer", "content": "Answer in French."},
                                   {"role": "user", "content": [{"type": "input_text", "text": "Hi"},
                                                                {"type": "input_image",
                                                                 "image_url": "https://example.com/cat.png"}]}])
    sent = oai_requests(fakes)[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]
    assert sent["max_tokens"] == 50 and sent["temperature"] == 0.5


def test_streamed_event_sequence(gw, key, client):
    with client.responses.stream(model="gpt-4o", input="Say hello") as stream:
        types = [ev.type for ev in stream]
        final = stream.get_final_response()
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    deltas = [t for t in types if t == "response.output_text.delta"]
    assert len(deltas) >= 2 and final.output_text and final.status == "completed"
    assert final.usage.model_extra["cost"] > 0
    # the streamed response was stored as it completed
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_raw_stream_sequence_numbers(gw, key, wire):
    with wire.client() as http:
        r = http.post(gw.base_url + "/responses", headers={"Authorization": f"Bearer {key[0]}"},
                      json={"model": "gemini-2.5-flash", "input": "hi", "stream": True})
    events = sse_events(r.content)
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    assert all(name == d["type"] for name, d in events)


@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("stream", [False, True])
def test_function_calling_round_trip(gw, key, client, provider, stream):
    model = MODELS[provider]
    if stream:
        with client.responses.stream(model=model, input="Weather in Paris?", tools=[WEATHER]) as s:
            types = [ev.type for ev in s]
            first = s.get_final_response()
        assert "response.function_call_arguments.delta" in types and "response.function_call_arguments.done" in types
    else:
        first = client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls and all(c.name == "get_weather" and isinstance(json.loads(c.arguments), dict) for c in calls)
    outputs = [{"type": "function_call_output", "call_id": c.call_id, "output": '{"temp_c": 18}'} for c in calls]
    second = client.responses.create(model=model, previous_response_id=first.id, input=outputs, tools=[WEATHER])
    assert second.status == "completed" and second.output_text
    assert second.previous_response_id == first.id


def test_function_call_items_sent_without_a_chain(gw, key, client, fakes):
    first = client.responses.create(model="gpt-4o", input="Weather in Paris?", tools=[WEATHER], store=False)
    call = [o for o in first.output if o.type == "function_call"][0]
    client.responses.create(model="gpt-4o", tools=[WEATHER], input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "18C"}])
    msgs = oai_requests(fakes)[-1]["messages"]
    assert msgs[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": call.call_id, "type": "function", "function": {"name": "get_weather", "arguments": call.arguments}}]}
    assert msgs[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "18C"}


def test_previous_response_id_across_two_turns(gw, key, client, fakes):
    first = client.responses.create(model="gpt-4o", input="My name is Ada.", instructions="Be terse.")
    second = client.responses.create(model="gpt-4o", input="What is my name?", previous_response_id=first.id)
    msgs = oai_requests(fakes)[-1]["messages"]
    # instructions are not carried over; the first turn's input and output are
    assert msgs == [{"role": "user", "content": "My name is Ada."},
                    {"role": "assistant", "content": first.output_text},
                    {"role": "user", "content": "What is my name?"}]
    third = client.responses.create(model="claude-sonnet-4-20250514", input="And again?",
                                    previous_response_id=second.id)
    assert third.output_text
    sent = fakes["anthropic"].requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]


def test_store_false_is_not_kept(gw, key, client):
    resp = client.responses.create(model="gpt-4o", input="hi", store=False)
    assert resp.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="gpt-4o", input="again", previous_response_id=resp.id)
    assert info.value.body["param"] == "previous_response_id"


def test_get_and_delete_scoped_to_the_account(gw, key, client, wire):
    resp = client.responses.create(model="gpt-4o", input="hi")
    assert client.responses.retrieve(resp.id).output_text == resp.output_text
    other = OpenAI(base_url=gw.base_url, api_key=gw.new_key()[0], max_retries=0, http_client=wire.client())
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(resp.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(resp.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="gpt-4o", input="steal", previous_response_id=resp.id)
    # a second key on the same account may read it
    same = OpenAI(base_url=gw.base_url, api_key=gw.admin("POST", "/admin/keys", {"account_id": key[1]})["data"]["key"],
                  max_retries=0, http_client=wire.client())
    assert same.responses.retrieve(resp.id).id == resp.id
    with wire.client() as http:
        r = http.delete(f"{gw.base_url}/responses/{resp.id}", headers={"Authorization": f"Bearer {key[0]}"})
    assert r.status_code == 200 and r.json() == {"id": resp.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)


def test_refusals(gw, key, client, wire):
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4o", input="hi", tools=[{"type": "web_search"}])
    assert info.value.body["param"] == "tools[0]"
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4o", input=[])
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=gw.base_url, api_key="sk-ro-bad", max_retries=0,
               http_client=wire.client()).responses.create(model="gpt-4o", input="hi")
    poor = OpenAI(base_url=gw.base_url, api_key=gw.new_key(balance_micros=0)[0], max_retries=0,
                  http_client=wire.client())
    with pytest.raises(openai.APIStatusError) as info:
        poor.responses.create(model="gpt-4o", input="hi")
    assert info.value.status_code == 402


def test_codex_shaped_request(gw, key, wire, fakes):
    """What Codex CLI sends: streamed, store false, long instructions, developer + user items, function
    tools, reasoning/include/prompt_cache_key hints; the upstream gets a plain chat translation."""
    tools = [{"type": "function", "name": "shell", "description": "Runs a shell command", "strict": False,
              "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}},
                                                              "workdir": {"type": "string"}},
                             "required": ["command"], "additionalProperties": False}},
             {"type": "function", "name": "update_plan", "description": "Updates the plan", "strict": False,
              "parameters": {"type": "object", "properties": {"plan": {"type": "array", "items": {"type": "string"}}}}}]
    body = {"model": "gpt-4o", "instructions": "You are Codex, a coding agent. " * 50, "stream": True, "store": False,
            "input": [{"type": "message", "role": "developer",
                       "content": [{"type": "input_text", "text": "<environment_context>cwd=/repo</environment_context>"}]},
                      {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List the files"}]}],
            "tools": tools, "tool_choice": "auto", "parallel_tool_calls": False,
            "reasoning": {"effort": "medium", "summary": "auto"}, "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "0199-session"}
    with wire.client() as http:
        r = http.post(gw.base_url + "/responses", json=body, headers={"Authorization": f"Bearer {key[0]}"})
    assert r.status_code == 200, r.text
    events = sse_events(r.content)
    done = [d for _, d in events if d["type"] == "response.output_item.done"]
    assert done and done[0]["item"]["type"] == "function_call" and done[0]["item"]["name"] in ("shell", "update_plan")
    completed = events[-1][1]
    assert completed["type"] == "response.completed" and completed["response"]["usage"]["cost"] > 0
    sent = oai_requests(fakes)[-1]
    assert [m["role"] for m in sent["messages"]] == ["system", "system", "user"]
    assert sent["messages"][2]["content"] == [{"type": "text", "text": "List the files"}]
    assert [t["function"]["name"] for t in sent["tools"]] == ["shell", "update_plan"]
    assert sent["parallel_tool_calls"] is False and sent["prompt_cache_key"] == "0199-session"
    assert "reasoning" not in sent and "include" not in sent


def test_a_store_failure_still_returns_the_paid_answer(gw, key, client):
    import sqlite3
    db = sqlite3.connect(gw.settings.database_url.removeprefix("sqlite:///"))
    db.execute("DROP TABLE responses")        # the next write fails
    db.commit()
    db.close()
    resp = client.responses.create(model="gpt-4o", input="hi")
    assert resp.status == "completed" and resp.output_text
    assert gw.account(key[1])["balance_micros"] < 10_000_000


@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("stream", [False, True])
def test_max_output_tokens_hit_over_every_upstream(gw, key, client, wire, provider, stream):
    """A reply cut at max_output_tokens is `incomplete` (reason max_output_tokens) whichever
    upstream answered, streamed (`response.incomplete`) or not; its usage is what was billed."""
    body = {"model": MODELS[provider], "input": "Tell me a long story " + "[[words:60]]", "max_output_tokens": 16}
    if stream:
        with wire.client() as http:
            r = http.post(gw.base_url + "/responses", json={**body, "stream": True},
                          headers={"Authorization": f"Bearer {key[0]}"})
        events = [d for _, d in sse_events(r.content)]
        assert events[-1]["type"] == "response.incomplete", [e["type"] for e in events]
        resp = events[-1]["response"]
    else:
        resp = client.responses.create(**body).model_dump()
    assert resp["status"] == "incomplete" and resp["incomplete_details"] == {"reason": "max_output_tokens"}
    assert 0 < resp["usage"]["output_tokens"] <= 16
    [row] = wait_usage_rows(gw, key[1], 1)
    assert row["completion_tokens"] == resp["usage"]["output_tokens"]
    assert row["cost_micros"] == round(resp["usage"]["cost"] * 1e6)

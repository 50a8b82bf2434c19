"""The Responses API's endpoints around a stored response, through the official openai SDK over a
real socket (every body checked against OpenAI's spec at teardown by the `wire` recorder):
`responses.input_items.list` (paged with after/before/limit/order, include checked),
`responses.input_tokens.count` (Router One's own count: no upstream call, no charge),
`responses.cancel` (nothing is ever a background response: OpenAI's 400 for a synchronous one),
and GET/DELETE by id (the caller's account only; deleted is gone everywhere)."""
from __future__ import annotations

import httpx2
import openai
import orjson
import pytest

from money_procs import SMALL
from protocol_helpers import wire  # noqa: F401 (fixture)
from raw_upstream import gateway_over, json_reply, scripted_upstream, usage_rows

MODEL = SMALL
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city", "strict": False,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def completion(message: dict) -> bytes:
    return json_reply(orjson.dumps({
        "id": "chatcmpl-e", "object": "chat.completion", "created": 1, "model": "fake-small",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop",
                     "logprobs": None}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}))


@pytest.fixture(scope="module")
def up():
    with scripted_upstream(completion({"content": "Hello Ada."})) as state:
        yield state


@pytest.fixture
def gw(up, tmp_path):
    up["requests"].clear()
    up["reply"] = completion({"content": "Hello Ada."})
    with gateway_over(up["server"], tmp_path, http1=True) as gw:
        yield gw


@pytest.fixture
def account(gw):
    return gw.new_key(balance_micros=10_000_000)


def sdk(gw, secret: str, wire) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=secret, max_retries=0, timeout=30, http_client=wire.client())


@pytest.fixture
def client(gw, account, wire):
    c = sdk(gw, account[0], wire)
    yield c
    c.close()


@pytest.fixture
def chain(client):
    """Two turns: a string input, then a developer and a user item (two text parts) continuing it."""
    first = client.responses.create(model=MODEL, input="My name is Ada.", instructions="Be terse.")
    second = client.responses.create(model=MODEL, previous_response_id=first.id, input=[
        {"role": "developer", "content": "Answer in English."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is my name?"},
            {"type": "input_text", "text": "Spell it."}]}])
    return first, second


def _text(item) -> str:
    return "".join(getattr(p, "text", "") for p in item.content)


# -- input_items ------------------------------------------------------------------------------------

def test_input_items_are_the_chain_and_this_turn_newest_first(client, chain):
    first, second = chain
    page = client.responses.input_items.list(second.id)
    items = page.data
    # desc (the default): this turn's items, then the first turn's output and input; no instructions
    assert [(i.type, i.role) for i in items] == [("message", "user"), ("message", "developer"),
                                                 ("message", "assistant"), ("message", "user")]
    assert _text(items[0]) == "What is my name?Spell it." and items[0].content[1].type == "input_text"
    assert _text(items[2]) == first.output_text and items[2].id == first.output[0].id
    assert _text(items[3]) == "My name is Ada."
    assert page.has_more is False and page.first_id == items[0].id and page.last_id == items[-1].id
    assert len({i.id for i in items}) == 4 and all(i.id for i in items)
    # the same ids every time (they are what `after` pages on), and the first turn's input has the
    # same id in the first response's own list
    assert [i.id for i in client.responses.input_items.list(second.id).data] == [i.id for i in items]
    assert [i.id for i in client.responses.input_items.list(first.id).data] == [items[3].id]
    asc = client.responses.input_items.list(second.id, order="asc").data
    assert [i.id for i in asc] == [i.id for i in reversed(items)]


def test_input_items_pages_with_after_before_and_limit(client, chain):
    _, second = chain
    every = [i.id for i in client.responses.input_items.list(second.id, order="asc").data]
    page = client.responses.input_items.list(second.id, order="asc", limit=3)
    assert [i.id for i in page.data] == every[:3] and page.has_more is True
    assert [i.id for i in page.get_next_page().data] == every[3:]
    # the SDK's auto-pagination walks every page with `after`
    assert [i.id for i in client.responses.input_items.list(second.id, order="asc", limit=1)] == every
    assert [i.id for i in client.responses.input_items.list(second.id, limit=1)] == every[::-1]
    after = client.responses.input_items.list(second.id, order="asc", after=every[0], limit=2)
    assert [i.id for i in after.data] == every[1:3] and after.has_more is True
    # `before` (older SDKs send it): the items just before the cursor in the same order
    before = client.responses.input_items.list(second.id, order="asc", limit=2, extra_query={"before": every[3]})
    assert [i.id for i in before.data] == every[1:3] and before.has_more is True
    with_include = client.responses.input_items.list(second.id, include=["message.input_image.image_url"])
    assert [i.id for i in with_include.data] == every[::-1]          # images are kept as sent anyway


def test_input_items_with_one_id_twice_page_to_the_end(client):
    """Items sent with an id another item has (a client that sends a reply's output back beside
    previous_response_id, or its own ids twice): `after` found the first of them every time, so the
    SDK's auto-pagination returned the second for ever. In the list each id now names one item: a
    repeat gets an id of its own (the same on every call)."""
    import itertools
    first = client.responses.create(model=MODEL, input="Hi")
    again = [{"type": "message", "id": first.output[0].id, "role": "assistant", "content": "Hello Ada."}]
    dup = {"type": "message", "id": "msg_mine", "role": "user"}
    second = client.responses.create(model=MODEL, previous_response_id=first.id, input=again + [
        {**dup, "content": "one"}, {**dup, "content": "two"}, {**dup, "content": "three"}])
    walked = list(itertools.islice(client.responses.input_items.list(second.id, order="asc", limit=1), 20))
    assert [_text(i) for i in walked] == ["Hi", "Hello Ada.", "Hello Ada.", "one", "two", "three"]
    ids = [i.id for i in walked]
    assert len(set(ids)) == len(ids) and ids[1] == first.output[0].id and ids[3] == "msg_mine"
    assert [i.id for i in client.responses.input_items.list(second.id, order="asc").data] == ids
    assert [i.id for i in client.responses.input_items.list(second.id, limit=2)] == ids[::-1]


def test_input_items_of_function_calls_fit_the_spec(up, client):
    up["reply"] = completion({"content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]})
    first = client.responses.create(model=MODEL, input="Weather in Oslo?", tools=[WEATHER])
    up["reply"] = completion({"content": "Sunny."})
    second = client.responses.create(model=MODEL, previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"}])
    items = client.responses.input_items.list(second.id, order="asc").data
    assert [i.type for i in items] == ["message", "function_call", "function_call_output"]
    assert items[1].id == first.output[0].id and items[1].call_id == "call_1"
    assert items[2].output == "sunny, 21C" and items[2].status == "completed" and items[2].id


@pytest.mark.parametrize("query,param", [
    ({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"limit": "ten"}, "limit"),
    ({"order": "sideways"}, "order"), ({"after": "msg_nope"}, "after"), ({"before": "msg_nope"}, "before"),
    ({"include": ["no.such.field"]}, "include")])
def test_input_items_bad_query_is_a_400_naming_it(client, chain, query, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.input_items.list(chain[1].id, extra_query=query)
    assert info.value.body["param"] == param and info.value.body["type"] == "invalid_request_error"


def test_a_page_past_the_end_is_empty(gw, account, chain):
    url, auth = f"{gw.base_url}/responses/{chain[1].id}/input_items", {"Authorization": f"Bearer {account[0]}"}
    with httpx2.Client(timeout=30) as http:
        last = http.get(url, params={"order": "asc"}, headers=auth).json()["last_id"]
        r = http.get(url, params={"order": "asc", "after": last}, headers=auth)
    assert r.status_code == 200
    assert r.json() == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


# -- another account's, unknown, unstored and deleted responses ------------------------------------------

def test_only_the_callers_account_sees_a_stored_response(gw, client, chain, wire):
    _, second = chain
    other = sdk(gw, gw.new_key()[0], wire)
    for call in (lambda c: c.responses.input_items.list(second.id), lambda c: c.responses.retrieve(second.id),
                 lambda c: c.responses.cancel(second.id), lambda c: c.responses.delete(second.id),
                 lambda c: c.responses.input_tokens.count(model=MODEL, input="hi", previous_response_id=second.id),
                 lambda c: c.responses.create(model=MODEL, input="hi", previous_response_id=second.id)):
        with pytest.raises(openai.NotFoundError) as info:
            call(other)
        assert info.value.body["type"] == "invalid_request_error" and second.id not in ("", None)
    assert client.responses.retrieve(second.id).id == second.id      # still there for its owner


def test_deleted_is_gone_everywhere(client, chain):
    first, second = chain
    assert client.responses.delete(second.id) is None           # the SDK returns None on 200
    for call in (lambda: client.responses.retrieve(second.id), lambda: client.responses.input_items.list(second.id),
                 lambda: client.responses.cancel(second.id), lambda: client.responses.delete(second.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model=MODEL, input="again", previous_response_id=second.id)
    assert info.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.input_tokens.count(model=MODEL, input="again", previous_response_id=second.id)
    assert info.value.body["param"] == "previous_response_id"
    assert client.responses.retrieve(first.id).id == first.id    # the rest of the chain stays


def test_unstored_and_unknown_ids_are_404(client):
    unstored = client.responses.create(model=MODEL, input="hi", store=False)
    for rid in (unstored.id, "resp_unknown", "x" * 300):
        with pytest.raises(openai.NotFoundError):
            client.responses.input_items.list(rid)
        with pytest.raises(openai.NotFoundError):
            client.responses.cancel(rid)


# -- cancel -------------------------------------------------------------------------------------------

def test_cancel_a_stored_response_is_openais_400_for_a_synchronous_one(client, chain):
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.cancel(chain[1].id)
    assert info.value.body == {"message": "Cannot cancel a synchronous response.", "type": "invalid_request_error",
                               "param": None, "code": None}
    assert client.responses.retrieve(chain[1].id).status == "completed"      # unchanged


# -- input_tokens -------------------------------------------------------------------------------------

def test_input_tokens_count_is_local_and_free(up, gw, account, client):
    balance = gw.account(account[1])["balance_micros"]
    one = client.responses.input_tokens.count(model=MODEL, input="Tell me a joke.")
    assert one.object == "response.input_tokens" and one.input_tokens > 0
    more = client.responses.input_tokens.count(model=MODEL, input="Tell me a joke. " * 50, instructions="Be brief.",
                                               tools=[WEATHER])
    assert more.input_tokens > one.input_tokens + 50
    auto = client.responses.input_tokens.count(model="auto", input="Tell me a joke.")
    assert auto.input_tokens == one.input_tokens
    assert up["requests"] == []                                          # no upstream call
    assert gw.account(account[1])["balance_micros"] == balance            # no charge
    client.responses.create(model=MODEL, input="hi")                     # one usage row, and only that one
    assert [row.protocol for row in usage_rows(gw, account[1], 1)] == ["responses"]


def test_input_tokens_count_includes_the_chain(client, chain):
    _, second = chain
    alone = client.responses.input_tokens.count(model=MODEL, input="And again?")
    chained = client.responses.input_tokens.count(model=MODEL, input="And again?", previous_response_id=second.id)
    assert chained.input_tokens > alone.input_tokens


def test_input_tokens_count_refusals(gw, client, wire):
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.input_tokens.count(model="no-such-model", input="hi")
    assert info.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.input_tokens.count(model=MODEL, input=[])
    assert info.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.input_tokens.count(model=MODEL, input="hi", conversation="conv_1")
    assert info.value.body["param"] == "conversation"
    with pytest.raises(openai.AuthenticationError):
        sdk(gw, "sk-ro-bad", wire).responses.input_tokens.count(model=MODEL, input="hi")
    limited = sdk(gw, gw.new_key(allowed_models=["gpt-4o"])[0], wire)
    with pytest.raises(openai.PermissionDeniedError):
        limited.responses.input_tokens.count(model=MODEL, input="hi")


REASONING_ONLY = [{"type": "reasoning", "id": "rs_1", "summary": [],
                   "content": [{"type": "reasoning_text", "text": "thought"}]}]


@pytest.mark.parametrize("items", [REASONING_ONLY, [{"role": "user", "content": "x"}] * 10_001],
                         ids=["only_reasoning", "too_many"])
def test_an_input_refused_names_input_not_chats_messages(up, client, items):
    """Input with nothing to send (a reasoning item alone: it is dropped) or too many items was a 400
    naming 'messages', a parameter /v1/responses does not have; create and input_tokens alike."""
    for call in (lambda: client.responses.create(model=MODEL, input=items),
                 lambda: client.responses.input_tokens.count(model=MODEL, input=items)):
        with pytest.raises(openai.BadRequestError) as info:
            call()
        assert info.value.body["param"] == "input", info.value.body
        assert "'messages'" not in info.value.body["message"]
    assert up["requests"] == []

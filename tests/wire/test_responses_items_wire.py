"""wire/responses_items.py (no server): a stored context -> the response's input items as OpenAI's
`ItemResource`s (checked against the spec), paged as `ResponseItemList`, and the list's query checked."""
from __future__ import annotations

import pytest

from openai_schema import validate_openai
from routerone.errors import InvalidRequest
from routerone.wire.responses import context_items
from routerone.wire.responses_items import ItemsQuery, input_item_resources, item_page, parse_items_query

# a context as stored before input items were given ids: two turns, the output of each last
LEGACY = [{"type": "message", "role": "user", "content": "My name is Ada."},
          {"type": "message", "id": "msg_out1", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": "Hi Ada.", "annotations": [], "logprobs": []}]},
          {"role": "developer", "content": [{"type": "input_text", "text": "Be terse."}]},
          {"role": "user", "content": [{"type": "input_text", "text": "Look:"},
                                       {"type": "input_image", "image_url": "https://example.com/a.png"}]},
          {"role": "assistant", "content": "An earlier answer, replayed."},
          {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}"},
          {"type": "function_call_output", "call_id": "call_1", "output": "42"},
          {"type": "reasoning", "id": "rs_1", "summary": []},
          {"type": "message", "id": "msg_out2", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": "Done.", "annotations": [], "logprobs": []}]}]


def test_input_items_are_the_context_less_the_output_shaped_as_item_resources():
    items = input_item_resources("resp_1", LEGACY, n_output=1)
    assert len(items) == len(LEGACY) - 1
    for item in items:
        validate_openai(item, "ItemResource")
    assert items[0]["content"] == [{"type": "input_text", "text": "My name is Ada."}]
    assert items[0]["status"] == "completed" and items[0]["id"].startswith("msg_")
    assert items[1] == LEGACY[1]                                   # an output item as it was returned
    assert items[3]["content"][1]["detail"] == "auto"
    assert items[4]["content"] == [{"type": "output_text", "text": "An earlier answer, replayed.",
                                    "annotations": [], "logprobs": []}]
    assert items[5]["id"] == "fc_1" and items[5]["status"] == "completed"
    assert items[6]["id"].startswith("fco_") and items[6]["output"] == "42"
    # ids derived for items stored without one are the same on every call, and differ per position
    assert [i["id"] for i in input_item_resources("resp_1", LEGACY, 1)] == [i["id"] for i in items]
    assert len({i["id"] for i in items}) == len(items)
    assert input_item_resources("resp_2", LEGACY, 1)[0]["id"] != items[0]["id"]


def test_a_stored_context_gives_the_request_items_ids_that_carry_down_the_chain():
    first_body = {"input": "My name is Ada."}
    first_out = {"output": [LEGACY[1]]}
    first_ctx = context_items([], first_body, first_out)
    assert first_ctx[0]["id"].startswith("msg_") and first_body["input"] == "My name is Ada."
    second_body = {"input": [{"role": "user", "content": "Again?"}, {"id": "msg_mine", "role": "user", "content": "x"}]}
    second_ctx = context_items(first_ctx, second_body, {"output": []})
    assert second_ctx[0] == first_ctx[0] and second_ctx[3]["id"] == "msg_mine"
    assert "id" not in second_body["input"][0]                     # the caller's body is not changed
    assert [i["id"] for i in input_item_resources("resp_b", second_ctx, 0)] == [i["id"] for i in second_ctx]


def _ids(page: dict) -> list[str]:
    return [i["id"] for i in page["data"]]


def test_paging():
    items = [{"id": f"msg_{i}", "type": "message", "role": "user", "content": []} for i in range(5)]
    every = [i["id"] for i in items]
    page = item_page(items, ItemsQuery())
    assert _ids(page) == every[::-1] and page["has_more"] is False
    assert (page["first_id"], page["last_id"]) == ("msg_4", "msg_0")
    validate_openai(page, "ResponseItemList")
    assert _ids(item_page(items, ItemsQuery(limit=2, order="asc"))) == every[:2]
    assert item_page(items, ItemsQuery(limit=2, order="asc"))["has_more"] is True
    assert _ids(item_page(items, ItemsQuery(limit=2, order="asc", after="msg_1"))) == ["msg_2", "msg_3"]
    assert _ids(item_page(items, ItemsQuery(limit=2, after="msg_3"))) == ["msg_2", "msg_1"]
    before = item_page(items, ItemsQuery(limit=2, order="asc", before="msg_3"))
    assert _ids(before) == ["msg_1", "msg_2"] and before["has_more"] is True
    assert _ids(item_page(items, ItemsQuery(order="asc", after="msg_0", before="msg_3"))) == ["msg_1", "msg_2"]
    end = item_page(items, ItemsQuery(order="asc", after="msg_4"))
    assert end == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
    with pytest.raises(InvalidRequest) as info:
        item_page(items, ItemsQuery(after="msg_9"))
    assert info.value.param == "after"


@pytest.mark.parametrize("query,include,param", [
    ({"limit": "0"}, [], "limit"), ({"limit": "101"}, [], "limit"), ({"limit": "-1"}, [], "limit"),
    ({"limit": "2.0"}, [], "limit"), ({"limit": "١"}, [], "limit"), ({"order": "ASC"}, [], "order"),
    ({}, ["message.input_image.image_url", "nope"], "include")])
def test_a_bad_query_names_its_parameter(query, include, param):
    with pytest.raises(InvalidRequest) as info:
        parse_items_query(query, include)
    assert info.value.param == param


def test_a_good_query():
    assert parse_items_query({}, []) == ItemsQuery(20, "desc", None, None)
    assert parse_items_query({"limit": "100", "order": "asc", "after": "a", "before": ""},
                             ["message.input_image.image_url"]) == ItemsQuery(100, "asc", "a", None)

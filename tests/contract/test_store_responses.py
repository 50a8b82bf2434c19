"""Store contract for stored Responses-API responses (migration 0006_responses), on both backends."""
from __future__ import annotations

import json

from routerone.store.base import NewKey, Store, StoredResponse


async def _owner(store: Store, name: str) -> tuple[int, int]:
    acc = await store.create_account(name)
    key = await store.create_key(NewKey(account_id=acc.id, key_hash=f"hash-{name}", prefix=f"sk-{name}"))
    return acc.id, key.id


async def test_put_get_delete_are_scoped_to_the_account(store: Store) -> None:
    (a, ka), (b, _) = await _owner(store, "alice"), await _owner(store, "bob")
    body = json.dumps({"id": "resp_1", "output": [{"type": "message", "text": "héllo ✓"}]})
    r = StoredResponse("resp_1", a, ka, 1_700_000_000.5, body, json.dumps([{"role": "user", "content": "hi"}]))
    await store.put_response(r)
    assert await store.get_response("resp_1", a) == r
    assert await store.get_response("resp_1", b) is None          # another account's id: not found
    assert await store.get_response("resp_missing", a) is None
    assert await store.delete_response("resp_1", b) is False      # and not deletable by it
    assert await store.get_response("resp_1", a) == r
    assert await store.delete_response("resp_1", a) is True
    assert await store.get_response("resp_1", a) is None
    assert await store.delete_response("resp_1", a) is False


async def test_put_replaces_a_response_with_the_same_id(store: Store) -> None:
    a, ka = await _owner(store, "carol")
    await store.put_response(StoredResponse("resp_2", a, ka, 1.0, "{}", "[]"))
    await store.put_response(StoredResponse("resp_2", a, ka, 2.0, '{"v": 2}', '[1]'))
    got = await store.get_response("resp_2", a)
    assert got is not None and (got.created_at, got.body, got.context) == (2.0, '{"v": 2}', "[1]")


async def test_the_context_keeps_input_items_in_order_with_their_ids(store: Store) -> None:
    """GET /v1/responses/{id}/input_items pages on the stored context's items and their ids: both
    backends give back every item, in order, exactly as written (nested parts, non-ASCII, 500 items)."""
    a, ka = await _owner(store, "dave")
    items = [{"id": f"msg_{i:04d}", "type": "message", "role": "user",
              "content": [{"type": "input_text", "text": f"tür {i} ✓"},
                          {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}]}
             for i in range(500)]
    items.append({"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"})
    await store.put_response(StoredResponse("resp_3", a, ka, 3.0, '{"output": []}', json.dumps(items)))
    got = await store.get_response("resp_3", a)
    assert got is not None and json.loads(got.context) == items

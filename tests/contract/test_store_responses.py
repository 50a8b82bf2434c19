"""Store contract for stored Responses-API responses (migration 0006_responses), on both backends."""
from __future__ import annotations

import json
import time

from routerone.services.retention import ResponsePurge
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


async def test_purge_deletes_responses_created_before_the_cutoff_in_bounded_batches(store: Store) -> None:
    """Retention (responses_retention_days): the background purge deletes at most `limit` rows a call,
    oldest first, of every account, and nothing created at or after the cutoff."""
    (a, ka), (b, kb) = await _owner(store, "erin"), await _owner(store, "frank")
    for i in range(5):
        await store.put_response(StoredResponse(f"resp_old_{i}", a if i % 2 else b, ka if i % 2 else kb,
                                                100.0 + i, "{}", "[]"))
    await store.put_response(StoredResponse("resp_new", a, ka, 200.0, "{}", "[]"))
    await store.put_response(StoredResponse("resp_edge", a, ka, 150.0, "{}", "[]"))
    assert await store.purge_responses(150.0, 2) == 2
    assert await store.get_response("resp_old_0", b) is None and await store.get_response("resp_old_1", a) is None
    assert await store.get_response("resp_old_2", b) is not None
    assert await store.purge_responses(150.0, 10) == 3
    assert await store.purge_responses(150.0, 10) == 0
    assert {await store.get_response(i, a) is not None for i in ("resp_new", "resp_edge")} == {True}


async def test_delete_with_created_after_deletes_an_expired_response_but_reports_it_absent(store: Store) -> None:
    """DELETE /v1/responses/{id} of an expired response is a 404, as everywhere else: the row is
    deleted all the same (purged on read)."""
    a, ka = await _owner(store, "gina")
    await store.put_response(StoredResponse("resp_exp", a, ka, 100.0, "{}", "[]"))
    await store.put_response(StoredResponse("resp_live", a, ka, 300.0, "{}", "[]"))
    assert await store.delete_response("resp_exp", a, created_after=200.0) is False
    assert await store.get_response("resp_exp", a) is None
    assert await store.delete_response("resp_live", a, created_after=200.0) is True
    assert await store.delete_response("resp_missing", a, created_after=200.0) is False


async def test_the_purge_takes_every_expired_response_a_batch_at_a_time(store: Store) -> None:
    """ResponsePurge (the background task's one round): batches of `batch_rows` until a short one;
    retention 0 deletes nothing."""
    a, ka = await _owner(store, "hank")
    now = time.time()
    for i in range(5):
        await store.put_response(StoredResponse(f"resp_p{i}", a, ka, now - 2 * 86_400 - i, "{}", "[]"))
    await store.put_response(StoredResponse("resp_recent", a, ka, now - 3_600, "{}", "[]"))
    assert await ResponsePurge(store, 0, 3600, batch_rows=2).purge_expired() == 0
    purge = ResponsePurge(store, 1, 3600, batch_rows=2)
    assert await purge.purge_expired() == 5 and purge.purged == 5
    assert await store.get_response("resp_p0", a) is None and await store.get_response("resp_recent", a) is not None

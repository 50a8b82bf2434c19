"""Stored /v1/responses responses expire after `responses_retention_days` (default 30, as OpenAI's):
an expired one is a 404 everywhere (GET, input_items, cancel, DELETE, previous_response_id, input
tokens) and its row is deleted when read; the background purge deletes the others every
`responses_purge_interval_s`; 0 keeps them until deleted. Real gateway, real SQLite store, the
official SDK; a response is aged by writing its row again through the store with an older time."""
from __future__ import annotations

import dataclasses
import time

import openai
import orjson
import pytest

from money_procs import SMALL
from protocol_helpers import wire  # noqa: F401 (fixture)
from raw_upstream import RawUpstream, gateway_over, json_reply

DAY_S = 86_400.0
REPLY = json_reply(orjson.dumps({
    "id": "chatcmpl-r", "object": "chat.completion", "created": 1, "model": "fake-small",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Noted."}, "finish_reason": "stop",
                 "logprobs": None}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}))


@pytest.fixture(scope="module")
def up():
    server = RawUpstream(lambda request: [REPLY])
    yield server
    server.stop()


def _store(gw):
    return gw.runtime.chat.d.billing.store


def _age(gw, response_id: str, account_id: int, days: float) -> None:
    """Write the stored row again, created `days` ago."""
    store = _store(gw)
    row = gw.call(store.get_response(response_id, account_id))
    assert row is not None
    gw.call(store.put_response(dataclasses.replace(row, created_at=time.time() - days * DAY_S)))


def _row(gw, response_id: str, account_id: int):
    return gw.call(_store(gw).get_response(response_id, account_id))


def _client(gw, secret: str, wire) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=secret, max_retries=0, timeout=30, http_client=wire.client())


def test_an_expired_response_is_a_404_everywhere_and_is_deleted_when_read(up, tmp_path, wire):
    with gateway_over(up, tmp_path, http1=True, responses_purge_interval_s=3600) as gw:
        secret, account_id = gw.new_key()
        client = _client(gw, secret, wire)
        calls = {
            "retrieve": lambda rid: client.responses.retrieve(rid),
            "input_items": lambda rid: client.responses.input_items.list(rid),
            "cancel": lambda rid: client.responses.cancel(rid),
            "input_tokens": lambda rid: client.responses.input_tokens.count(model=SMALL, input="hi",
                                                                            previous_response_id=rid),
            "previous_response_id": lambda rid: client.responses.create(model=SMALL, input="hi",
                                                                        previous_response_id=rid),
            "delete": lambda rid: client.responses.delete(rid),
        }
        live = client.responses.create(model=SMALL, input="My name is Ada.")
        _age(gw, live.id, account_id, 29.9)
        for name, call in calls.items():
            rid = client.responses.create(model=SMALL, input=f"secret prompt for {name}").id
            _age(gw, rid, account_id, 30.01)
            with pytest.raises(openai.NotFoundError) as info:
                call(rid)
            assert info.value.status_code == 404 and info.value.body["type"] == "invalid_request_error", name
            assert _row(gw, rid, account_id) is None, f"{name}: the expired row is still stored"
        assert client.responses.retrieve(live.id).id == live.id                   # not yet 30 days old
        assert client.responses.create(model=SMALL, input="Again?", previous_response_id=live.id).id
        client.close()


def test_the_background_purge_deletes_expired_responses_nobody_reads(up, tmp_path, wire):
    with gateway_over(up, tmp_path, http1=True, responses_retention_days=1, responses_purge_interval_s=0.1) as gw:
        secret, account_id = gw.new_key()
        client = _client(gw, secret, wire)
        old = [client.responses.create(model=SMALL, input=f"old {i}").id for i in range(3)]
        kept = client.responses.create(model=SMALL, input="recent").id
        for rid in old:
            _age(gw, rid, account_id, 1.5)
        deadline = time.monotonic() + 10
        while any(_row(gw, rid, account_id) is not None for rid in old) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [rid for rid in old if _row(gw, rid, account_id) is not None] == []
        assert _row(gw, kept, account_id) is not None
        assert client.responses.retrieve(kept).id == kept
        client.close()


def test_retention_days_0_keeps_stored_responses_until_deleted(up, tmp_path, wire):
    with gateway_over(up, tmp_path, http1=True, responses_retention_days=0, responses_purge_interval_s=0.1) as gw:
        secret, account_id = gw.new_key()
        client = _client(gw, secret, wire)
        rid = client.responses.create(model=SMALL, input="keep me").id
        _age(gw, rid, account_id, 3650)
        time.sleep(0.3)                                  # a few purge intervals
        assert client.responses.retrieve(rid).id == rid
        assert client.responses.input_items.list(rid).data
        client.responses.delete(rid)
        assert _row(gw, rid, account_id) is None
        client.close()

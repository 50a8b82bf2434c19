"""`responses_store = false` (ROUTERONE_RESPONSES_STORE): the server stores nothing for
/v1/responses, whatever `store` the client sends. Every response says `"store": false`;
`previous_response_id`, GET, `input_items`, `cancel` (and `input_tokens` with a chain) are a 400
`response_storage_disabled` naming the parameter; DELETE still deletes a response stored before the
switch. Real gateway over a real socket, real SQLite file (its `responses` table is read directly),
the official SDK."""
from __future__ import annotations

import sqlite3

import openai
import orjson
import pytest

from money_procs import SMALL
from protocol_helpers import wire  # noqa: F401 (fixture)
from raw_upstream import RawUpstream, chunked, gateway_over, json_reply
from routerone.settings import SettingsError, load_settings

REPLY = json_reply(orjson.dumps({
    "id": "chatcmpl-s", "object": "chat.completion", "created": 1, "model": "fake-small",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Noted."}, "finish_reason": "stop",
                 "logprobs": None}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}))
_CHUNK = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "fake-small"}
STREAM = chunked(b"".join(b"data: " + orjson.dumps({**_CHUNK, **part}) + b"\n\n" for part in (
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Noted."}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}},
)) + b"data: [DONE]\n\n")


@pytest.fixture(scope="module")
def up():
    server = RawUpstream(lambda request: [STREAM if request.get("stream") else REPLY])
    yield server
    server.stop()


def _stored_rows(tmp_path) -> int:
    """Rows in the database file's responses table, read around Router One (not through its store)."""
    with sqlite3.connect(tmp_path / "r1.db") as db:
        return db.execute("SELECT count(*) FROM responses").fetchone()[0]


def _client(gw, secret: str, wire) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=secret, max_retries=0, timeout=30, http_client=wire.client())


def test_the_setting_reads_from_the_environment_and_defaults_to_on():
    assert load_settings(env={}).responses_store is True
    assert load_settings(env={"ROUTERONE_RESPONSES_STORE": "false"}).responses_store is False
    with pytest.raises(SettingsError, match="ROUTERONE_RESPONSES_STORE"):
        load_settings(env={"ROUTERONE_RESPONSES_STORE": "sometimes"})


def test_store_off_persists_nothing_whatever_the_client_sends(up, tmp_path, wire):
    with gateway_over(up, tmp_path, http1=True, responses_store=False) as gw:
        secret, _ = gw.new_key()
        client = _client(gw, secret, wire)
        made = [client.responses.create(model=SMALL, input="secret prompt", store=True),
                client.responses.create(model=SMALL, input="secret prompt, no store given")]
        with client.responses.stream(model=SMALL, input="secret streamed prompt", store=True) as events:
            made.append(events.get_final_response())
        for resp in made:
            assert resp.output_text == "Noted."
            assert resp.store is False, "the response says it was stored"
        assert _stored_rows(tmp_path) == 0, "a response was stored with responses_store = false"
        asked = up.received         # (`answered` counts a stream after its last write and pause: later)

        rid = made[0].id
        calls = {
            "previous_response_id": lambda: client.responses.create(model=SMALL, input="again",
                                                                    previous_response_id=rid),
            "response_id": lambda: client.responses.retrieve(rid),
            "input_items": lambda: client.responses.input_items.list(rid),
            "cancel": lambda: client.responses.cancel(rid),
            "input_tokens": lambda: client.responses.input_tokens.count(model=SMALL, input="hi",
                                                                        previous_response_id=rid),
        }
        for name, call in calls.items():
            with pytest.raises(openai.BadRequestError) as info:
                call()
            err = info.value.body
            assert info.value.status_code == 400 and err["type"] == "invalid_request_error", name
            assert err["code"] == "response_storage_disabled", name
            assert err["param"] == ("previous_response_id" if name in ("previous_response_id", "input_tokens")
                                    else "response_id"), name
            assert "responses_store" in err["message"], name
        with pytest.raises(openai.NotFoundError):        # nothing stored: nothing to delete
            client.responses.delete(rid)
        assert up.received == asked, "a refused previous_response_id still called the upstream"
        assert _stored_rows(tmp_path) == 0
        client.close()


def test_a_response_stored_before_the_switch_can_still_be_deleted(up, tmp_path, wire):
    with gateway_over(up, tmp_path, http1=True) as gw:
        secret, _ = gw.new_key()
        client = _client(gw, secret, wire)
        rid = client.responses.create(model=SMALL, input="stored while the store was on").id
        client.close()
    assert _stored_rows(tmp_path) == 1
    with gateway_over(up, tmp_path, http1=True, responses_store=False) as gw:
        client = _client(gw, secret, wire)
        with pytest.raises(openai.BadRequestError):
            client.responses.retrieve(rid)
        client.responses.delete(rid)                     # a 200 (the SDK returns None)
        client.close()
    assert _stored_rows(tmp_path) == 0

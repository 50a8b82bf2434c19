"""/v1/messages renders every failure in Anthropic's shape with the status the other routes give:
the database unreachable is a 503 (overloaded_error) with Retry-After, not a 500, and a bug is a
500 api_error that is logged."""
from __future__ import annotations

import logging
import sqlite3

import orjson

from routerone.errors import InsufficientBalance
from routerone.http.messages import anthropic_error


def _body(resp) -> dict:
    return orjson.loads(resp.body)


def test_database_unreachable_is_a_503_with_retry_after() -> None:
    resp = anthropic_error(ConnectionRefusedError("connect to 127.0.0.1:5432 refused"), "req_1")
    assert resp.status == 503 and resp.headers["Retry-After"]
    body = _body(resp)
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
    assert "5432" not in body["error"]["message"] and body["request_id"] == "req_1"
    locked = anthropic_error(sqlite3.OperationalError("database is locked"), "req_2")
    assert locked.status == 503


def test_a_bug_is_a_logged_500_and_router_one_errors_keep_their_status(caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="routerone.http"):
        resp = anthropic_error(KeyError("oops"), "req_3")
    assert resp.status == 500 and _body(resp)["error"]["type"] == "api_error"
    assert any(r.exc_info for r in caplog.records)
    paid = anthropic_error(InsufficientBalance(), "req_4")
    assert paid.status == 402 and _body(paid)["error"]["type"] == "billing_error"

"""A PostgreSQL connection lost mid-operation is "the database is unavailable", not a bug.

Found by blackbox11: `pg_terminate_backend` on Router One's connections while traffic ran (and a
Redis `DEBUG SLEEP`) made asyncpg raise `InternalClientError: cannot switch to state 12; another
operation (2) is in progress` from a pooled connection the server had just dropped. That was not
counted as unavailable: a settle logged it at ERROR with a traceback, and a request whose reserve
or key lookup met it got a 500 (as_router_error's "unhandled error") instead of a 503 to retry.
"""
from __future__ import annotations

import logging

import asyncpg
import pytest

from routerone.errors import DatabaseUnavailable
from routerone.http.render import as_router_error
from routerone.store.errors import is_data_error, is_unavailable

DROPPED_MID_OPERATION = asyncpg.InternalClientError(
    "cannot switch to state 12; another operation (2) is in progress")


def test_a_connection_dropped_mid_operation_is_unavailable():
    assert is_unavailable(DROPPED_MID_OPERATION)
    assert not is_data_error(DROPPED_MID_OPERATION)


def test_a_request_that_meets_it_gets_a_503_and_no_traceback(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING):
        err = as_router_error(DROPPED_MID_OPERATION, "req_x")
    assert isinstance(err, DatabaseUnavailable) and err.status == 503
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_a_sql_mistake_is_still_not_unavailable():
    assert not is_unavailable(asyncpg.exceptions.UndefinedTableError("relation \"nope\" does not exist"))

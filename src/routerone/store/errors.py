"""Telling a database that cannot be reached from a value it refused.

`is_unavailable(exc)`: the database could not be asked (connection refused or lost, server starting
or shutting down, too many connections, SQLite locked or unable to open). Nothing is wrong with
the request; it may succeed later: clients get 503 + Retry-After, settles are retried.

`is_data_error(exc)`: the database refused a value (bad text, a number out of range, a constraint).
Retrying the same values cannot help: the record is set aside (usage_rejects) and the rest goes on.

`StoreLocked`: raised by `Store.ping` when the database answers but another session holds a lock
that would make the request path's writes wait (readiness reports it as "locked").
"""
from __future__ import annotations

import asyncio
import sqlite3

__all__ = ["is_unavailable", "is_data_error", "StoreLocked"]

# SQLSTATE classes: 08 connection exception, 53 insufficient resources, 57 operator intervention
# (admin shutdown, cannot connect now), 58 system error; 22 data exception, 23 integrity violation.
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
_DATA_CLASSES = ("22", "23")
_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o", "readonly", "database or disk is full")


class StoreLocked(Exception):
    """The tables the request path writes are locked by another session (see `Store.ping`)."""


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", "") or "")


def is_unavailable(exc: BaseException) -> bool:
    if is_data_error(exc):       # asyncpg's DataError is an InterfaceError too
        return False
    if isinstance(exc, (OSError, asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, sqlite3.OperationalError):    # not a SQL mistake ("no such table"): a 500 then
        return any(w in str(exc).lower() for w in _SQLITE_UNAVAILABLE)
    if _sqlstate(exc)[:2] in _UNAVAILABLE_CLASSES:
        return True
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    # "connection is closed", "pool is closing", a connection lost mid-query; InternalClientError:
    # a pooled connection the server dropped mid-operation (pg_terminate_backend), whose protocol
    # state asyncpg can no longer switch ("cannot switch to state 12; another operation (2) is in progress")
    return isinstance(exc, (asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                            asyncpg.InternalClientError))


def is_data_error(exc: BaseException) -> bool:
    if isinstance(exc, (ValueError, OverflowError, TypeError, UnicodeError, sqlite3.IntegrityError,
                        sqlite3.DataError, sqlite3.InterfaceError)):
        return True
    return _sqlstate(exc)[:2] in _DATA_CLASSES

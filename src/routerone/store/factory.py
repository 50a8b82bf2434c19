"""Pick a Store implementation from a database URL.

    sqlite:///routerone.db        SQLite file, path relative to the working directory
    sqlite:////var/lib/r1.db      SQLite file, absolute path (four slashes)
    sqlite:///:memory:            SQLite in memory (tests)
    postgresql://user@host/db     PostgreSQL (also postgres://); query parameters that are not
                                  libpq's own become server settings, e.g. ?search_path=tenant_a
"""
from __future__ import annotations

from urllib.parse import urlsplit

from .base import Store
from .postgres import PostgresStore
from .sqlite import SQLiteStore

__all__ = ["open_store"]

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(database_url: str) -> Store:
    """Return an unopened store; call `await store.migrate()` before use."""
    if database_url.startswith(_SQLITE_PREFIX) and len(database_url) > len(_SQLITE_PREFIX):
        return SQLiteStore(database_url[len(_SQLITE_PREFIX):])
    if database_url.startswith(_POSTGRES_SCHEMES):
        return PostgresStore(database_url)
    raise ValueError(f"unsupported database URL {_redacted(database_url)!r}: expected "
                     "sqlite:///<path>, sqlite:///:memory:, postgresql://... or postgres://...")


def _redacted(url: str) -> str:
    """The URL with any password masked, so an error message never leaks a credential."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()

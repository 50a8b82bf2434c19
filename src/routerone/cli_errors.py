"""What the CLI says when the environment or the input is wrong: one line naming the culprit.

`explain(exc, settings)` turns the exceptions an operator can cause (a database host that does not
resolve, a database that does not exist, an SQLite path that cannot be opened, a port in use, bad
values) into that line, or returns None for a real bug (which then keeps its traceback).
"""
from __future__ import annotations

import argparse
import errno
import math
import os
import socket
import sqlite3
import sys
from urllib.parse import urlsplit

from .catalog import allowlist_pattern_error
from .routing.learned.profiles import RouterFileError
from .settings import Settings, SettingsError
from .store.copy import CopyRefused

__all__ = ["explain", "row_id", "int_between", "text", "text_of_length", "number_between", "model_list", "one_of",
           "or_default", "or_none", "DEFAULT_WORD", "NoDatabase", "require_database"]

MAX_ROW_ID = (1 << 63) - 1     # ids are BIGINT (and SQLite's INTEGER): a larger one can name no row


def int_between(lo: int, hi: int, what: str):
    """An argparse `type`: an integer in lo..hi, else a one-line usage error (not a traceback from
    the database when it is too large for a column, nor a list of every allowed value)."""
    def parse(value: str) -> int:
        try:   # ASCII digits only: int() also reads "١" (1) and "1_0" (10)
            n = int(value) if value.isascii() and "_" not in value else None
        except ValueError:
            n = None
        if n is None or not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"{value!r} is not {what} (an integer from {lo} to {hi})")
        return n
    return parse


row_id = int_between(1, MAX_ROW_ID, "an id")


def text(value: str) -> str:
    """An argparse `type` for a name, note, filter or host: UTF-8 text. Bytes that are not (b"\\xff"
    reaches Python as "\\udcff") failed as a UnicodeEncodeError traceback in the database or resolver."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{value!r} is not UTF-8 text") from None
    return value


def text_of_length(lo: int, hi: int, what: str):
    """An argparse `type`: UTF-8 text of lo..hi characters (the service's own bounds, said with the
    argument's name instead of the field's: `'name' must be a non-empty string ...` named no flag)."""
    def parse(value: str) -> str:
        value = text(value)
        if not lo <= len(value) <= hi:
            raise argparse.ArgumentTypeError(f"{_shown(value)} is not {what} ({lo} to {hi} characters)")
        return value
    return parse


def number_between(lo: float, hi: float, what: str):
    """An argparse `type`: a finite number in lo..hi (not nan, inf or "1e999")."""
    def parse(value: str) -> float:
        try:
            n = float(value) if value.isascii() and "_" not in value else math.nan
        except ValueError:
            n = math.nan
        if not (math.isfinite(n) and lo <= n <= hi):
            raise argparse.ArgumentTypeError(f"{_shown(value)} is not {what} (a number from {lo:.0f} to {hi:.0f})")
        return n
    return parse


def one_of(choices: tuple[str, ...], what: str):
    """An argparse `type`: one of `choices` (said in one line, with what is allowed)."""
    def parse(value: str) -> str:
        if value not in choices:
            raise argparse.ArgumentTypeError(f"{_shown(value)} is not {what} (one of {', '.join(choices)})")
        return value
    return parse


DEFAULT_WORD = "default"


def _or_word(parse, word: str, meaning: str):
    """An argparse `type`: `word` (None), else `parse`'s value. A word, not "": an unset shell
    variable must not reset or remove anything."""
    def parse_or_word(value: str):
        if value == word:
            return None
        try:
            return parse(value)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{exc} or {word!r} {meaning}") from None
    return parse_or_word


def or_default(parse):
    """`default` puts a key's strategy or willingness to pay back to the gateway's default."""
    return _or_word(parse, DEFAULT_WORD, "for the gateway's default")


def or_none(parse):
    """`none` removes a key's spend cap or expiry."""
    return _or_word(parse, "none", "to remove it")


def model_list(value: str) -> tuple[str, ...]:
    """An argparse `type` for `--models a,b,auto`: at least one model id, none empty, no spaces. An
    empty value ("" from an unset shell variable) made a key without an allowlist: every model."""
    items = text(value).split(",")
    bad = next((m for m in items if not m or len(m) > 200 or any(c.isspace() or c == "\x00" for c in m)), None)
    if bad is not None:
        raise argparse.ArgumentTypeError(f"{_shown(value)} is not a comma-separated list of model ids "
                                         f"(e.g. gpt-4o-mini,auto; {_shown(bad)} is not a model id)")
    slow = allowlist_pattern_error(items)
    if slow is not None:
        raise argparse.ArgumentTypeError(f"an allowlist {slow}")
    return tuple(dict.fromkeys(items))


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:60] + "...")


class NoDatabase(Exception):
    """The SQLite file a command other than `serve` would use does not exist (its message: one line)."""


def require_database(url: str, *, making: str | None = None) -> None:
    """Refuse an SQLite file that does not exist: opening it made a new empty database (the default
    `sqlite:///routerone.db` is relative to the current directory), where a key or a credit "worked"
    but never reached the gateway's own database. `serve` makes the file; so may the commands that
    set up a first account or console user before it (`making`: what they make), saying so on stderr."""
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else None
    if not path or path == ":memory:" or path.startswith("file::memory:") or os.path.exists(path):
        return
    where = os.path.abspath(path)
    relative = "" if os.path.isabs(path) else f"; {url!r} is relative to the current directory"
    if making:
        print(f"routerone: note: no database at {where}: making a new one for this {making}{relative}; "
              "`routerone serve` must use the same one", file=sys.stderr)
        return
    raise NoDatabase(f"no database at {where} (the SQLite file does not exist{relative}): start `routerone serve` "
                     "there first to create it, or name the gateway's database with --database-url, "
                     "ROUTERONE_DATABASE_URL or database_url in the config")


def _db_where(url: str) -> str:
    if url.startswith("sqlite:///"):
        return f"SQLite file {url[len('sqlite:///'):]!r}"
    try:
        p = urlsplit(url)
        return f"PostgreSQL at {p.hostname or 'localhost'}:{p.port or 5432}, database {p.path.lstrip('/') or '(default)'!r}"
    except ValueError:
        return "the database"


def _pg_error(exc: BaseException) -> str | None:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "database does not exist"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
        return f"authentication failed ({str(exc).splitlines()[0]})"
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc).splitlines()[0]
    return None


def explain(exc: BaseException, settings: Settings | None, port: int | None = None) -> str | None:
    if isinstance(exc, SettingsError):
        return f"configuration error: {exc}"
    if isinstance(exc, (NoDatabase, CopyRefused)):
        return str(exc)
    if isinstance(exc, RouterFileError):     # ROUTERONE_ROUTER_MODEL, ROUTERONE_MODEL_PRIORS, --router
        return str(exc)
    db = _db_where(settings.database_url) if settings else "the database"
    if isinstance(exc, socket.gaierror):
        host = urlsplit(settings.database_url).hostname if settings else None
        return f"cannot reach {db}: host {host!r} does not resolve ({exc.strerror})"
    pg = _pg_error(exc)
    if pg:
        return f"cannot use {db}: {pg}"
    if isinstance(exc, sqlite3.Error):
        return f"cannot open {db}: {exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL) and port:
        host = settings.host if settings else "?"
        what = {errno.EADDRINUSE: "address already in use", errno.EACCES: "permission denied",
                errno.EADDRNOTAVAIL: "address not available on this machine"}[exc.errno]
        return f"cannot listen on {host}:{port}: {what} (set port or --port)"
    if isinstance(exc, (ConnectionRefusedError, TimeoutError)) or (
            isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ETIMEDOUT)):
        return f"cannot reach {db}: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, OSError) and settings:
        return f"cannot reach {db}: {exc.strerror or exc}"
    return None

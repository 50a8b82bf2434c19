"""Copy an SQLite install into an empty PostgreSQL database (`routerone copy-database`).

Moving from the embedded default to PostgreSQL keeps everything: accounts with their balances,
holds and markups, API keys (the same secrets keep working: only their hashes are stored; revoked
ones stay revoked), the ledger (and which credit grants were withdrawn), usage rows, the audit log,
stored responses, console users and their sessions. Rows keep their ids, and PostgreSQL's id sequences are moved past them, so the
next account or key is numbered after the copied ones. It is all one transaction: a failed copy
leaves the target as empty as it found it.

The source is first brought to the current schema (as `serve` would); the target is migrated
and must hold no row yet (a fresh `createdb`). Stop every gateway on the source before copying:
what it writes afterwards is not copied.
"""
from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from typing import Any, Callable

import asyncpg

from .postgres import PostgresStore
from .sqlite import SQLiteStore

__all__ = ["COPIED_TABLES", "CopyRefused", "CopyReport", "copy_sqlite_to_postgres"]

# parents before the rows that reference them
COPIED_TABLES = ("accounts", "api_keys", "ledger", "grant_withdrawals", "reservations", "usage", "audit_log",
                 "responses", "usage_rejects", "console_users", "console_sessions")
_NOT_COPIED = {"_migrations", "auth_version", "sqlite_sequence"}   # auth_version: one row, set below
_BATCH_ROWS = 5_000


class CopyRefused(Exception):
    """The copy cannot be made as asked (its message: one line for the operator)."""


@dataclass(frozen=True)
class CopyReport:
    rows: dict[str, int]       # table -> rows copied
    open_holds: int            # reservations still open in the source (a gateway running on it?)


def _converter(pg_type: str) -> Callable[[Any], Any]:
    if pg_type in ("bigint", "integer", "smallint"):
        return int
    if pg_type in ("double precision", "real", "numeric"):
        return float
    return str


async def copy_sqlite_to_postgres(sqlite_path: str, postgres_url: str) -> CopyReport:
    try:
        source_store = SQLiteStore(sqlite_path)
        try:
            await source_store.migrate()
        finally:
            await source_store.close()
    except sqlite3.Error as exc:        # not the target's error: say which file it is
        raise CopyRefused(f"cannot read the SQLite database {sqlite_path!r}: {exc}") from None
    target_store = PostgresStore(postgres_url, min_size=1, max_size=1)
    try:
        await target_store.migrate()
    finally:
        await target_store.close()

    with contextlib.closing(sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)) as src:
        tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        unknown = tables - set(COPIED_TABLES) - _NOT_COPIED
        if unknown:
            raise CopyRefused(f"the SQLite database has tables this version does not copy: {sorted(unknown)}")
        open_holds = src.execute("SELECT COUNT(*) FROM reservations WHERE state = 'open'").fetchone()[0]
        conn = await asyncpg.connect(postgres_url)
        try:
            async with conn.transaction():
                await _refuse_rows(conn)
                copied = {t: await _copy_table(src, conn, t) for t in COPIED_TABLES}
                version = src.execute("SELECT version FROM auth_version WHERE id = 1").fetchone()
                if version:
                    await conn.execute("UPDATE auth_version SET version = GREATEST(version, $1) + 1 WHERE id = 1",
                                       int(version[0]))
                for table in COPIED_TABLES:       # the next id after the copied ones
                    if await conn.fetchval(
                            "SELECT pg_get_serial_sequence($1, 'id') FROM information_schema.columns WHERE "
                            "table_schema = current_schema() AND table_name = $1 AND column_name = 'id'", table):
                        await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                           f"COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {table}")
        finally:
            await conn.close()
    return CopyReport(rows=copied, open_holds=open_holds)


async def _refuse_rows(conn: asyncpg.Connection) -> None:
    for table in COPIED_TABLES:
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
            raise CopyRefused(f"the PostgreSQL database is not empty (table {table} has rows): copy into a new "
                              "database (createdb), never over one a gateway has used")


async def _copy_table(src: sqlite3.Connection, conn: asyncpg.Connection, table: str) -> int:
    src_columns = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
    pg_types = {r[0]: r[1] for r in await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = $1", table)}
    missing = [c for c in src_columns if c not in pg_types]
    if missing:
        raise CopyRefused(f"table {table}: the PostgreSQL schema lacks column(s) {missing}")
    convert = [_converter(pg_types[c]) for c in src_columns]
    cursor = src.execute(f"SELECT {', '.join(src_columns)} FROM {table}")
    total = 0
    while batch := cursor.fetchmany(_BATCH_ROWS):
        records = [tuple(None if v is None else f(v) for f, v in zip(convert, row)) for row in batch]
        await conn.copy_records_to_table(table, records=records, columns=src_columns)
        total += len(records)
    return total

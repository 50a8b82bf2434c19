"""SQLiteStore's web-console methods: console users, sessions, and the Activity and Logs pages' queries.

A mixin: it uses the store's `_tx` and `_run` (sqlite_engine.py), and runs the pages' aggregate reads on
connections of their own (`_console_read`). The SQL shared with PostgreSQL is in console_sql.py.
"""
from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any, Awaitable, Callable, TypeVar

from . import console_sql, rows
from .base import ConsoleSession, ConsoleUser, UsageBucket, UsageLogQuery, UsageQuery, UsageRecord, UsageSummary

__all__ = ["SQLiteConsoleMixin"]
T = TypeVar("T")


class SQLiteConsoleMixin:
    path: str
    _inline: bool
    _run: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]
    _tx: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]

    async def create_console_user(self, email: str, password_hash: str, *, account_id: int,
                                  role: str = "user") -> ConsoleUser:
        def fn(db):
            try:
                cur = db.execute("INSERT INTO console_users (email, password_hash, account_id, role, created_at) "
                                 "VALUES (?, ?, ?, ?, ?)", (email.lower(), password_hash, account_id, role, time.time()))
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"a console user with email {email.lower()!r} exists, or no such account") from exc
            return _console_user(db, "id = ?", cur.lastrowid)
        return await self._tx(fn)

    async def console_user_by_email(self, email: str) -> ConsoleUser | None:
        return await self._run(lambda db: _console_user(db, "email = ?", email.lower()))

    async def get_console_user(self, user_id: int) -> ConsoleUser | None:
        return await self._run(lambda db: _console_user(db, "id = ?", user_id))

    async def list_console_users(self, account_id: int | None = None) -> list[ConsoleUser]:
        where, args = ("WHERE account_id = ?", (account_id,)) if account_id is not None else ("", ())
        return await self._run(lambda db: [console_sql.console_user(r) for r in db.execute(
            f"SELECT {console_sql.USER_COLS} FROM console_users {where} ORDER BY id", args)])

    async def update_console_user(self, user_id: int, *, password_hash: str | None = None,
                                  disabled: bool | None = None) -> ConsoleUser | None:
        def fn(db):
            if password_hash is not None:
                db.execute("UPDATE console_users SET password_hash = ? WHERE id = ?", (password_hash, user_id))
            if disabled is not None:
                db.execute("UPDATE console_users SET disabled = ? WHERE id = ?", (int(disabled), user_id))
            return _console_user(db, "id = ?", user_id)
        return await self._tx(fn)

    async def create_console_session(self, session: ConsoleSession) -> None:
        await self._tx(lambda db: db.execute(
            f"INSERT INTO console_sessions ({console_sql.SESSION_COLS}) VALUES (?, ?, ?, ?, ?)",
            (session.token_hash, session.user_id, session.csrf_token, session.created_at, session.expires_at)))

    async def console_session(self, token_hash: str, now: float) -> tuple[ConsoleSession, ConsoleUser] | None:
        def fn(db):
            r = db.execute(console_sql.SESSION_JOIN, (token_hash, now)).fetchone()
            return console_sql.console_session(r) if r else None
        return await self._run(fn)

    async def delete_console_sessions(self, *, token_hash: str | None = None, user_id: int | None = None,
                                      expired_before: float | None = None) -> int:
        conds, args = [], []
        for cond, val in (("token_hash = ?", token_hash), ("user_id = ?", user_id), ("expires_at < ?", expired_before)):
            if val is not None:
                conds.append(cond)
                args.append(val)
        if not conds:
            return 0
        return await self._tx(lambda db: db.execute(
            "DELETE FROM console_sessions WHERE " + " OR ".join(conds), args).rowcount)

    async def _console_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """The console's aggregate reads (tens of ms over 100k rows) run on a connection of their own
        in the default executor, not on the store's one thread, so they never hold up the gateway's
        reads; in WAL mode they do not block writers either."""
        if not self._inline:                       # in-memory database: only the store's connection sees it
            return await self._run(fn)

        def run() -> T:
            db = sqlite3.connect(self.path, timeout=30)
            try:
                return fn(db)
            finally:
                db.close()
        return await asyncio.get_running_loop().run_in_executor(None, run)

    async def usage_rollup(self, q: UsageQuery, bucket_s: int) -> list[UsageBucket]:
        sql, args = console_sql.rollup_sql(q, bucket_s, postgres=False)
        return await self._console_read(lambda db: [console_sql.bucket(r) for r in db.execute(sql, args)])

    async def usage_summary(self, q: UsageQuery, bucket_s: int) -> UsageSummary:
        (by_time_sql, by_time_args), (by_key_sql, by_key_args) = console_sql.summary_sql(q, bucket_s, postgres=False)

        def fn(db: sqlite3.Connection) -> UsageSummary:
            began = not db.in_transaction
            if began:
                db.execute("BEGIN")            # one snapshot for both reads (WAL)
            try:
                return UsageSummary([console_sql.bucket(r) for r in db.execute(by_time_sql, by_time_args)],
                                    [console_sql.bucket(r) for r in db.execute(by_key_sql, by_key_args)])
            finally:
                if began:
                    db.execute("COMMIT")
        return await self._console_read(fn)

    async def usage_log(self, q: UsageLogQuery) -> list[UsageRecord]:
        sql, args = console_sql.log_sql(q)
        return await self._console_read(lambda db: [rows.usage_record(r) for r in db.execute(sql, args)])

    async def key_last_used(self, account_id: int | None = None) -> dict[int, float]:
        sql, args = console_sql.last_used_sql(account_id)
        return await self._console_read(lambda db: {int(k): t for k, t in db.execute(sql, args)})

    async def usage_count(self, q: UsageQuery) -> int:
        sql, args = console_sql.count_sql(q)
        return await self._console_read(lambda db: int(db.execute(sql, args).fetchone()[0]))


def _console_user(db: sqlite3.Connection, where: str, arg: Any) -> ConsoleUser | None:
    r = db.execute(f"SELECT {console_sql.USER_COLS} FROM console_users WHERE {where}", (arg,)).fetchone()
    return console_sql.console_user(r) if r else None

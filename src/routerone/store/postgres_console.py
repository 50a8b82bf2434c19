"""PostgresStore's web-console methods: console users, sessions, and the Activity and Logs pages' queries.

A mixin: it uses the store's pool (`_db`) and `_tx` (postgres.py). The SQL shared with SQLite is in
console_sql.py (written with `?` placeholders; `console_sql.numbered` turns them into `$n`).
"""
from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from typing import Awaitable, Callable

import asyncpg

from . import console_sql, rows
from .base import ConsoleSession, ConsoleUser, UsageBucket, UsageLogQuery, UsageQuery, UsageRecord, UsageSummary
from .text import has_nul, refuse_nul

__all__ = ["PostgresConsoleMixin"]


class PostgresConsoleMixin:
    _db: Callable[[], Awaitable[asyncpg.Pool]]
    _tx: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]

    async def create_console_user(self, email: str, password_hash: str, *, account_id: int,
                                  role: str = "user") -> ConsoleUser:
        refuse_nul([("email", email), ("password_hash", password_hash), ("role", role)])
        try:
            r = await (await self._db()).fetchrow(
                "INSERT INTO console_users (email, password_hash, account_id, role, created_at) "
                f"VALUES ($1, $2, $3, $4, $5) RETURNING {console_sql.USER_COLS}",
                email.lower(), password_hash, account_id, role, time.time())
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise ValueError(f"a console user with email {email.lower()!r} exists, or no such account") from exc
        return console_sql.console_user(r)

    async def console_user_by_email(self, email: str) -> ConsoleUser | None:
        if has_nul(email):
            return None
        return await self._console_user("email = $1", email.lower())

    async def get_console_user(self, user_id: int) -> ConsoleUser | None:
        return await self._console_user("id = $1", user_id)

    async def _console_user(self, where: str, arg) -> ConsoleUser | None:
        r = await (await self._db()).fetchrow(f"SELECT {console_sql.USER_COLS} FROM console_users WHERE {where}", arg)
        return console_sql.console_user(r) if r else None

    async def list_console_users(self, account_id: int | None = None) -> list[ConsoleUser]:
        where, args = ("WHERE account_id = $1", (account_id,)) if account_id is not None else ("", ())
        rs = await (await self._db()).fetch(
            f"SELECT {console_sql.USER_COLS} FROM console_users {where} ORDER BY id", *args)
        return [console_sql.console_user(r) for r in rs]

    async def update_console_user(self, user_id: int, *, password_hash: str | None = None,
                                  disabled: bool | None = None) -> ConsoleUser | None:
        refuse_nul([("password_hash", password_hash)])
        async with self._tx() as db:
            if password_hash is not None:
                await db.execute("UPDATE console_users SET password_hash = $1 WHERE id = $2", password_hash, user_id)
            if disabled is not None:
                await db.execute("UPDATE console_users SET disabled = $1 WHERE id = $2", int(disabled), user_id)
            r = await db.fetchrow(f"SELECT {console_sql.USER_COLS} FROM console_users WHERE id = $1", user_id)
        return console_sql.console_user(r) if r else None

    async def create_console_session(self, session: ConsoleSession) -> None:
        refuse_nul([("token_hash", session.token_hash), ("csrf_token", session.csrf_token)])
        await (await self._db()).execute(
            f"INSERT INTO console_sessions ({console_sql.SESSION_COLS}) VALUES ($1, $2, $3, $4, $5)",
            session.token_hash, session.user_id, session.csrf_token, session.created_at, session.expires_at)

    async def console_session(self, token_hash: str, now: float) -> tuple[ConsoleSession, ConsoleUser] | None:
        if has_nul(token_hash):
            return None
        r = await (await self._db()).fetchrow(console_sql.numbered(console_sql.SESSION_JOIN), token_hash, now)
        return console_sql.console_session(r) if r else None

    async def delete_console_sessions(self, *, token_hash: str | None = None, user_id: int | None = None,
                                      expired_before: float | None = None) -> int:
        conds, args = [], []
        if has_nul(token_hash):
            token_hash = None           # names no session; the other conditions still apply
        for cond, val in (("token_hash = ?", token_hash), ("user_id = ?", user_id), ("expires_at < ?", expired_before)):
            if val is not None:
                conds.append(cond)
                args.append(val)
        if not conds:
            return 0
        status = await (await self._db()).execute(
            console_sql.numbered("DELETE FROM console_sessions WHERE " + " OR ".join(conds)), *args)
        return int(status.split()[-1])

    async def usage_rollup(self, q: UsageQuery, bucket_s: int) -> list[UsageBucket]:
        if has_nul(q.model):
            return []
        sql, args = console_sql.rollup_sql(q, bucket_s, postgres=True)
        return [console_sql.bucket(r) for r in await (await self._db()).fetch(console_sql.numbered(sql), *args)]

    async def usage_summary(self, q: UsageQuery, bucket_s: int) -> UsageSummary:
        if has_nul(q.model):
            return UsageSummary()
        (by_time_sql, by_time_args), (by_key_sql, by_key_args) = console_sql.summary_sql(q, bucket_s, postgres=True)
        async with (await self._db()).acquire() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):     # one snapshot
                by_time = await conn.fetch(console_sql.numbered(by_time_sql), *by_time_args)
                by_key = await conn.fetch(console_sql.numbered(by_key_sql), *by_key_args)
        return UsageSummary([console_sql.bucket(r) for r in by_time], [console_sql.bucket(r) for r in by_key])

    async def usage_log(self, q: UsageLogQuery) -> list[UsageRecord]:
        if has_nul(q.model, q.status):
            return []
        sql, args = console_sql.log_sql(q)
        return [rows.usage_record(r) for r in await (await self._db()).fetch(console_sql.numbered(sql), *args)]

    async def key_last_used(self, account_id: int | None = None) -> dict[int, float]:
        sql, args = console_sql.last_used_sql(account_id)
        return {int(k): t for k, t in await (await self._db()).fetch(console_sql.numbered(sql), *args)}

    async def usage_count(self, q: UsageQuery) -> int:
        if has_nul(q.model):
            return 0
        sql, args = console_sql.count_sql(q)
        return int(await (await self._db()).fetchval(console_sql.numbered(sql), *args))

"""PostgresStore's records kept beside the money: usage rows (those not written with their charge:
`settle_recorded`, postgres.py), rejected usage rows, the audit log and stored Responses API replies.

A mixin: it uses the store's pool and transactions (`_db`, `_tx`, postgres.py).
"""
from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from typing import Awaitable, Callable, Sequence

import asyncpg

from . import rows
from .base import AuditEntry, StoredResponse, UsagePage, UsageQuery, UsageRecord, UsageReject, UsageTotals
from .text import has_nul, refuse_nul

__all__ = ["PostgresRecordsMixin"]

_USAGE_COLUMNS = [c.strip() for c in rows.USAGE_COLS.split(",")]


class PostgresRecordsMixin:
    _db: Callable[[], Awaitable[asyncpg.Pool]]
    _tx: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]

    # -- usage ----------------------------------------------------------------------------------
    async def insert_usage(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        async with self._tx() as db:
            await db.copy_records_to_table("usage", records=[rows.usage_tuple(u) for u in records],
                                           columns=_USAGE_COLUMNS)

    async def query_usage(self, q: UsageQuery) -> UsagePage:
        if has_nul(q.model):
            return UsagePage([], UsageTotals(0, 0, 0, 0))
        where, args = _usage_filter(q)
        async with self._tx() as db:  # one snapshot for the page and its totals
            recs = await db.fetch(f"SELECT {rows.USAGE_COLS} FROM usage {where} "
                                  f"ORDER BY created_at DESC LIMIT ${len(args) + 1}", *args, q.limit)
            t = await db.fetchrow("SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0)::BIGINT, "
                                  "COALESCE(SUM(completion_tokens), 0)::BIGINT, "
                                  f"COALESCE(SUM(cost_micros), 0)::BIGINT FROM usage {where}", *args)
        return UsagePage([rows.usage_record(r) for r in recs], UsageTotals(*t))

    async def insert_usage_rejects(self, rejects: Sequence[UsageReject]) -> None:
        if not rejects:
            return
        await (await self._db()).executemany(
            "INSERT INTO usage_rejects (request_id, reason, record, created_at) VALUES ($1, $2, $3, $4)",
            [(rows.clean_text(r.request_id), rows.clean_text(r.reason, rows.LONG_TEXT_CAP),
              rows.clean_text(r.record, 1 << 20), r.created_at) for r in rejects])

    # -- audit log and stored responses ---------------------------------------------------------

    async def record_audit(self, actor: str, action: str, target: str = "", detail: str = "") -> None:
        refuse_nul([("actor", actor), ("action", action), ("target", target), ("detail", detail)])
        await (await self._db()).execute(
            "INSERT INTO audit_log (created_at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
            time.time(), actor, action, target, detail)

    async def list_audit(self, limit: int = 100, *, target: str | None = None,
                         before_id: int | None = None) -> list[AuditEntry]:
        if has_nul(target):
            return []
        where, args = ("AND target = $3", (target,)) if target is not None else ("", ())
        before = rows.MAX_ROW_ID if before_id is None else before_id
        rs = await (await self._db()).fetch(
            f"SELECT {rows.AUDIT_COLS} FROM audit_log WHERE id < $2 {where} ORDER BY id DESC LIMIT $1",
            limit, before, *args)
        return [rows.audit_entry(r) for r in rs]

    async def put_response(self, r: StoredResponse) -> None:
        refuse_nul([("id", r.id), ("body", r.body), ("context", r.context)])
        await (await self._db()).execute(
            "INSERT INTO responses (id, account_id, key_id, created_at, body, context) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (id) DO UPDATE SET account_id = EXCLUDED.account_id, key_id = EXCLUDED.key_id, "
            "created_at = EXCLUDED.created_at, body = EXCLUDED.body, context = EXCLUDED.context",
            r.id, r.account_id, r.key_id, r.created_at, r.body, r.context)

    async def get_response(self, response_id: str, account_id: int) -> StoredResponse | None:
        if has_nul(response_id):
            return None
        row = await (await self._db()).fetchrow(
            "SELECT id, account_id, key_id, created_at, body, context FROM responses WHERE id = $1 AND account_id = $2",
            response_id, account_id)
        return StoredResponse(*row) if row else None

    async def delete_response(self, response_id: str, account_id: int, *, created_after: float | None = None) -> bool:
        if has_nul(response_id):
            return False
        created_at = await (await self._db()).fetchval(
            "DELETE FROM responses WHERE id = $1 AND account_id = $2 RETURNING created_at", response_id, account_id)
        return created_at is not None and (created_after is None or created_at >= created_after)

    async def purge_responses(self, created_before: float, limit: int) -> int:
        status = await (await self._db()).execute(
            "DELETE FROM responses WHERE id IN (SELECT id FROM responses WHERE created_at < $1 "
            "ORDER BY created_at LIMIT $2)", created_before, limit)
        return int(status.split()[-1])


def _usage_filter(q: UsageQuery) -> tuple[str, tuple]:
    conds, args = [], []
    for col, val, op in (("account_id", q.account_id, "="), ("key_id", q.key_id, "="),
                         ("routed_model", q.model, "="), ("created_at", q.since, ">="),
                         ("created_at", q.until, "<")):
        if val is not None:
            args.append(val)
            conds.append(f"{col} {op} ${len(args)}")
    return ("WHERE " + " AND ".join(conds) if conds else ""), tuple(args)

"""SQL for the console's store methods, shared by both stores (written with `?` placeholders;
`numbered` turns them into PostgreSQL's `$n`).

The Activity page reads `ROLLUP`: usage summed per (time bucket, routed model, key). The indexes
`usage_account_rollup` (account_id, created_at, ...) and `usage_time_rollup` (created_at, ...) of
migration 0007 carry every column it reads, so it is an index-only range scan.
"""
from __future__ import annotations

import re

from . import rows
from .base import ConsoleSession, ConsoleUser, UsageBucket, UsageLogQuery, UsageQuery

__all__ = ["USER_COLS", "SESSION_COLS", "console_user", "console_session", "rollup_sql", "log_sql",
           "numbered"]

USER_COLS = "id, email, account_id, role, password_hash, disabled, created_at"
SESSION_COLS = "token_hash, user_id, csrf_token, created_at, expires_at"
USER_COLS_U = ", ".join(f"u.{c.strip()}" for c in USER_COLS.split(","))
SESSION_COLS_S = ", ".join(f"s.{c.strip()}" for c in SESSION_COLS.split(","))

SESSION_JOIN = (f"SELECT {SESSION_COLS_S}, {USER_COLS_U} FROM console_sessions s "
                "JOIN console_users u ON u.id = s.user_id "
                "WHERE s.token_hash = ? AND s.expires_at > ? AND u.disabled = 0")


def console_user(r) -> ConsoleUser:
    return ConsoleUser(id=r[0], email=r[1], account_id=r[2], role=r[3], password_hash=r[4],
                       disabled=bool(r[5]), created_at=r[6])


def console_session(r) -> tuple[ConsoleSession, ConsoleUser]:
    return ConsoleSession(*r[:5]), console_user(r[5:])


def numbered(sql: str) -> str:
    """`?` placeholders -> `$1, $2, ...` (no `?` appears inside our SQL strings' literals)."""
    n = 0

    def repl(_m: re.Match) -> str:
        nonlocal n
        n += 1
        return f"${n}"
    return re.sub(r"\?", repl, sql)


def rollup_sql(q: UsageQuery, bucket_s: int, *, postgres: bool) -> tuple[str, tuple]:
    # SQLite's CAST truncates (created_at is positive, so that is floor); PostgreSQL's rounds.
    bucket = ("(floor(created_at / ?) * ?)::DOUBLE PRECISION" if postgres
              else "CAST(CAST(created_at / ? AS INTEGER) * ? AS REAL)")
    conds, args = [], [bucket_s, bucket_s]
    for col, val, op in (("account_id", q.account_id, "="), ("created_at", q.since, ">="),
                         ("created_at", q.until, "<"), ("key_id", q.key_id, "="),
                         ("routed_model", q.model, "=")):
        if val is not None:
            conds.append(f"{col} {op} ?")
            args.append(val)
    where = ("WHERE " + " AND ".join(conds)) if conds else ""
    total = "::BIGINT" if postgres else ""
    sql = (f"SELECT {bucket} AS b, routed_model, key_id, COUNT(*){total}, "
           f"SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END){total}, SUM(prompt_tokens){total}, "
           f"SUM(completion_tokens){total}, SUM(cost_micros){total} "
           f"FROM usage {where} GROUP BY b, routed_model, key_id ORDER BY b")
    return sql, tuple(args)


def bucket(r) -> UsageBucket:
    return UsageBucket(float(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5] or 0), int(r[6] or 0),
                       int(r[7] or 0))


def log_sql(q: UsageLogQuery) -> tuple[str, tuple]:
    conds, args = [], []
    for col, val, op in (("account_id", q.account_id, "="), ("key_id", q.key_id, "="),
                         ("created_at", q.since, ">="), ("created_at", q.until, "<")):
        if val is not None:
            conds.append(f"{col} {op} ?")
            args.append(val)
    if q.model:
        conds.append("(routed_model = ? OR requested_model = ?)")
        args += [q.model, q.model]
    if q.status == "ok":
        conds.append("status < 400")
    elif q.status == "error":
        conds.append("status >= 400")
    elif q.status:
        conds.append("status = ?")
        args.append(int(q.status))
    where = ("WHERE " + " AND ".join(conds)) if conds else ""
    sql = f"SELECT {rows.USAGE_COLS} FROM usage {where} ORDER BY created_at DESC LIMIT ? OFFSET ?"
    return sql, (*args, q.limit, q.offset)


def last_used_sql(account_id: int | None) -> tuple[str, tuple]:
    if account_id is None:
        return "SELECT key_id, MAX(created_at) FROM usage GROUP BY key_id", ()
    return "SELECT key_id, MAX(created_at) FROM usage WHERE account_id = ? GROUP BY key_id", (account_id,)


def count_sql(q: UsageQuery) -> tuple[str, tuple]:
    conds, args = [], []
    for col, val, op in (("account_id", q.account_id, "="), ("created_at", q.since, ">="), ("created_at", q.until, "<")):
        if val is not None:
            conds.append(f"{col} {op} ?")
            args.append(val)
    return "SELECT COUNT(*) FROM usage" + (" WHERE " + " AND ".join(conds) if conds else ""), tuple(args)

"""SQL for the console's store methods, shared by both stores (written with `?` placeholders;
`numbered` turns them into PostgreSQL's `$n`).

The Activity page reads `summary_sql`: usage summed per (time bucket, routed model) and per key
(`rollup_sql`, per (bucket, model, key), is a row per group: 31,000 of them for the scale test's
100k usage rows, against 1,155). The indexes
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


def _bucket(postgres: bool) -> str:
    # SQLite's CAST truncates (created_at is positive, so that is floor); PostgreSQL's rounds.
    return ("(floor(created_at / ?) * ?)::DOUBLE PRECISION" if postgres
            else "CAST(CAST(created_at / ? AS INTEGER) * ? AS REAL)")


def _sums(postgres: bool) -> str:
    total = "::BIGINT" if postgres else ""
    return (f"COUNT(*){total}, SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END){total}, SUM(prompt_tokens){total}, "
            f"SUM(completion_tokens){total}, SUM(cost_micros){total}")


def _rollup_where(q: UsageQuery) -> tuple[str, list]:
    conds, args = [], []
    for col, val, op in (("account_id", q.account_id, "="), ("created_at", q.since, ">="),
                         ("created_at", q.until, "<"), ("key_id", q.key_id, "="),
                         ("routed_model", q.model, "=")):
        if val is not None:
            conds.append(f"{col} {op} ?")
            args.append(val)
    return ("WHERE " + " AND ".join(conds)) if conds else "", args


def rollup_sql(q: UsageQuery, bucket_s: int, *, postgres: bool) -> tuple[str, tuple]:
    where, args = _rollup_where(q)
    sql = (f"SELECT {_bucket(postgres)} AS b, routed_model, key_id, {_sums(postgres)} "
           f"FROM usage {where} GROUP BY b, routed_model, key_id ORDER BY b")
    return sql, (bucket_s, bucket_s, *args)


def summary_sql(q: UsageQuery, bucket_s: int, *, postgres: bool) -> tuple[tuple[str, tuple], tuple[str, tuple]]:
    """usage_summary's two reads, rows shaped as rollup_sql's (for `bucket`): per (bucket, model)
    and per key. Two small GROUP BYs over the same index range: 2-5 times faster than rollup_sql's
    one row per (bucket, model, key) at 100k rows (and that many fewer rows to send and add up)."""
    where, args = _rollup_where(q)
    zero = "0::BIGINT" if postgres else "0"
    by_time_model = (f"SELECT {_bucket(postgres)} AS b, routed_model, {zero}, {_sums(postgres)} "
                     f"FROM usage {where} GROUP BY b, routed_model ORDER BY b")
    by_key = f"SELECT 0.0, '', key_id, {_sums(postgres)} FROM usage {where} GROUP BY key_id"
    return (by_time_model, (bucket_s, bucket_s, *args)), (by_key, tuple(args))


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

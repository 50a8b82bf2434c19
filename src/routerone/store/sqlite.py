"""SQLite store: the embedded default. The store's queries; the connections and the group-committed
write path they run on are `sqlite_engine.SQLiteEngine` (WAL, group commit, writes on the event
loop when they cannot wait)."""
from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any, Sequence

from . import rows
from .base import (PING_LOCK_WAIT_MS, Account, ApiKey, AuditEntry, LedgerEntry, Limits, NewKey, Reservation, Settlement,
                   StoredResponse, UNSET, Unset, UsagePage, UsageQuery, UsageRecord, UsageReject, UsageTotals,
                   refuse_taken_name)
from .bounds import check_adjustment, unspent_grant_micros, withdrawal_note, withdrew_all
from .errors import StoreLocked
from .migrations import MIGRATIONS, migration_sql
from .sqlite_console import SQLiteConsoleMixin
from .sqlite_engine import SQLiteEngine

__all__ = ["SQLiteStore"]


class SQLiteStore(SQLiteEngine, SQLiteConsoleMixin):
    async def migrate(self) -> None:
        def run(db: sqlite3.Connection) -> None:
            # Several processes may start on a new file at once: take the write lock first, then
            # look at what is applied, so each migration runs exactly once.
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
                done = {r[0] for r in db.execute("SELECT name FROM _migrations")}
                for name, sql in MIGRATIONS:
                    if name not in done:
                        ddl = migration_sql(sql, "sqlite")
                        for stmt in _statements(ddl.replace("{ID}", "INTEGER PRIMARY KEY AUTOINCREMENT")):
                            db.execute(stmt)
                        db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        await self._run(run)

    # -- accounts -------------------------------------------------------------------------------
    async def create_account(self, name: str, *, markup_bps: int = 0, limits: Limits = Limits()) -> Account:
        def fn(db):         # one writer: nothing can take the name between the check and the insert
            refuse_taken_name(db.execute("SELECT id, name FROM accounts ORDER BY id"), name)
            cur = db.execute("INSERT INTO accounts (name, markup_bps, rpm, tpm, concurrency, created_at) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (name, markup_bps, limits.rpm, limits.tpm, limits.concurrency, time.time()))
            return _account(db, cur.lastrowid)
        return await self._tx(fn)

    async def get_account(self, account_id: int) -> Account | None:
        return await self._run(lambda db: _account(db, account_id))

    async def list_accounts(self) -> list[Account]:
        return await self._run(lambda db: [rows.account(r) for r in db.execute(
            f"SELECT {rows.ACCOUNT_COLS} FROM accounts ORDER BY id")])

    async def has_accounts(self) -> bool:
        return await self._run(lambda db: db.execute("SELECT EXISTS (SELECT 1 FROM accounts)").fetchone()[0] == 1)

    async def update_account(self, account_id: int, *, markup_bps: int | None = None,
                             limits: Limits | None = None) -> Account | None:
        def fn(db):
            if markup_bps is not None:
                db.execute("UPDATE accounts SET markup_bps = ? WHERE id = ?", (markup_bps, account_id))
            if limits is not None:
                db.execute("UPDATE accounts SET rpm = ?, tpm = ?, concurrency = ? WHERE id = ?",
                           (limits.rpm, limits.tpm, limits.concurrency, account_id))
            _bump(db)
            return _account(db, account_id)
        return await self._tx(fn)

    async def adjust_balance(self, account_id: int, amount_micros: int, *, kind: str, note: str = "",
                             actor: str = "") -> Account:
        def fn(db):
            acc = _account(db, account_id)
            if acc is None:
                raise KeyError(account_id)
            check_adjustment(acc.balance_micros, amount_micros)
            if amount_micros < 0 and acc.available_micros + amount_micros < 0:
                raise ValueError("debit exceeds the available balance")
            db.execute("INSERT INTO ledger (account_id, amount_micros, kind, note, created_at, actor) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (account_id, amount_micros, kind, note, time.time(), actor))
            db.execute("UPDATE accounts SET balance_micros = balance_micros + ? WHERE id = ?", (amount_micros, account_id))
            return _account(db, account_id)
        return await self._tx(fn)

    async def ledger(self, account_id: int, limit: int = 100, *, before_id: int | None = None) -> list[LedgerEntry]:
        return await self._run(lambda db: [rows.ledger_entry(r) for r in db.execute(
            f"SELECT {rows.LEDGER_COLS} FROM ledger WHERE account_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (account_id, rows.MAX_ROW_ID if before_id is None else before_id, limit))])

    async def ledger_sum(self, account_id: int) -> int:
        return await self._run(lambda db: db.execute(
            "SELECT COALESCE(SUM(amount_micros), 0) FROM ledger WHERE account_id = ?", (account_id,)).fetchone()[0])

    async def withdraw_unspent_grant(self, *, grant_note: str, note: str, actor: str) -> tuple[int, int] | None:
        def fn(db):
            first = db.execute("SELECT id FROM accounts ORDER BY id LIMIT 1").fetchone()
            grant = first and db.execute(
                "SELECT id, amount_micros FROM ledger WHERE account_id = ? AND kind = 'credit' AND note = ? "
                "ORDER BY id LIMIT 1", (first[0], grant_note)).fetchone()
            if not grant:
                return None
            # withdrawn in full already (marked; before 0012 only its note said so), or nothing to
            # take: the ledger since the grant is not summed
            available = _account(db, first[0]).available_micros
            if available <= 0 or db.execute(
                    "SELECT 1 FROM grant_withdrawals WHERE grant_id = ? UNION ALL "
                    "SELECT 1 FROM ledger WHERE account_id = ? AND id > ? AND kind = 'debit' AND note = ? "
                    "AND actor = ? LIMIT 1", (grant[0], first[0], grant[0], note, actor)).fetchone():
                return None
            used = -db.execute("SELECT COALESCE(SUM(amount_micros), 0) FROM ledger WHERE account_id = ? "
                               "AND id > ? AND amount_micros < 0", (first[0], grant[0])).fetchone()[0]
            amount = unspent_grant_micros(grant[1], used, available)
            if amount:
                now = time.time()
                debit = db.execute("INSERT INTO ledger (account_id, amount_micros, kind, note, created_at, actor) "
                                   "VALUES (?, ?, 'debit', ?, ?, ?)",
                                   (first[0], -amount, withdrawal_note(note, grant[1], used, amount), now, actor))
                if withdrew_all(grant[1], used, amount):
                    db.execute("INSERT INTO grant_withdrawals (grant_id, account_id, ledger_id, created_at) "
                               "VALUES (?, ?, ?, ?)", (grant[0], first[0], debit.lastrowid, now))
                db.execute("UPDATE accounts SET balance_micros = balance_micros - ? WHERE id = ?", (amount, first[0]))
            return (first[0], amount) if amount else None
        return await self._tx(fn)

    # -- keys -----------------------------------------------------------------------------------
    async def create_key(self, new: NewKey) -> ApiKey:
        def fn(db):
            cur = db.execute(
                "INSERT INTO api_keys (account_id, key_hash, prefix, name, role, expires_at, spend_cap_micros,"
                " allowed_models, rpm, tpm, concurrency, strategy, created_at, willingness_to_pay)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (new.account_id, new.key_hash, new.prefix, new.name, new.role, new.expires_at,
                 new.spend_cap_micros, ",".join(new.allowed_models), new.limits.rpm, new.limits.tpm,
                 new.limits.concurrency, new.strategy, time.time(), new.willingness_to_pay))
            return _key(db, "id = ?", cur.lastrowid)
        return await self._tx(fn)

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self._run(lambda db: _key(db, "key_hash = ?", key_hash))

    async def get_key(self, key_id: int) -> ApiKey | None:
        return await self._run(lambda db: _key(db, "id = ?", key_id))

    async def list_keys(self, account_id: int | None = None, limit: int | None = None, *,
                        after_id: int | None = None) -> list[ApiKey]:
        where, args = rows.key_page_where(account_id, after_id, ">", "?")
        return await self._run(lambda db: [rows.api_key(r) for r in db.execute(
            f"SELECT {rows.KEY_COLS} FROM api_keys {where} ORDER BY id" + ("" if limit is None else f" LIMIT {int(limit)}"),
            args)])

    async def recent_keys(self, account_id: int | None, limit: int, *, before_id: int | None = None) -> list[ApiKey]:
        where, args = rows.key_page_where(account_id, before_id, "<", "?")
        return await self._run(lambda db: [rows.api_key(r) for r in db.execute(
            f"SELECT {rows.KEY_COLS} FROM api_keys {where} ORDER BY id DESC LIMIT {int(limit)}", args)])

    async def count_keys(self, account_id: int, *, active_only: bool = False, at_most: int | None = None) -> int:
        sql = rows.count_keys_sql(active_only, at_most).format(account="?")
        return await self._run(lambda db: int(db.execute(sql, (account_id,)).fetchone()[0]))

    async def key_named(self, account_id: int, name: str) -> ApiKey | None:
        row = await self._run(lambda db: db.execute(
            f"SELECT {rows.KEY_COLS} FROM api_keys WHERE account_id = ? AND name = ? AND role = 'user' "
            "AND revoked = 0 ORDER BY id LIMIT 1", (account_id, name)).fetchone())
        return rows.api_key(row) if row else None

    async def update_key(self, key_id: int, *, limits: Limits | None = None,
                         spend_cap_micros: int | None | Unset = UNSET, allowed_models: Sequence[str] | None = None,
                         expires_at: float | None | Unset = UNSET, name: str | None = None, strategy: str | None | Unset = UNSET,
                         willingness_to_pay: float | None | Unset = UNSET) -> ApiKey | None:
        def fn(db):
            if limits is not None:
                db.execute("UPDATE api_keys SET rpm = ?, tpm = ?, concurrency = ? WHERE id = ?",
                           (limits.rpm, limits.tpm, limits.concurrency, key_id))
            if name is not None:
                db.execute("UPDATE api_keys SET name = ? WHERE id = ?", (name, key_id))
            for col, val in (("spend_cap_micros", spend_cap_micros), ("expires_at", expires_at),
                             ("strategy", strategy), ("willingness_to_pay", willingness_to_pay)):
                if val is not UNSET:     # None: no cap, no expiry, the gateway's default
                    db.execute(f"UPDATE api_keys SET {col} = ? WHERE id = ?", (val, key_id))
            if allowed_models is not None:
                db.execute("UPDATE api_keys SET allowed_models = ? WHERE id = ?", (",".join(allowed_models), key_id))
            _bump(db)
            return _key(db, "id = ?", key_id)
        return await self._tx(fn)

    async def revoke_key(self, key_id: int) -> bool:
        def fn(db):
            n = db.execute("UPDATE api_keys SET revoked = 1 WHERE id = ? AND revoked = 0", (key_id,)).rowcount
            _bump(db)
            return n > 0
        return await self._tx(fn)

    async def bootstrap_admin(self, key_hash: str, prefix: str, *, only_if_no_admin: bool,
                              name: str = "bootstrap admin") -> ApiKey | None:
        def fn(db):
            if _key(db, "key_hash = ?", key_hash) is not None:
                return None
            if only_if_no_admin and db.execute(
                    "SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked = 0").fetchone():
                return None
            first = db.execute("SELECT id FROM accounts ORDER BY id LIMIT 1").fetchone()
            account_id = first[0] if first else db.execute(
                "INSERT INTO accounts (name, created_at) VALUES ('admin', ?)", (time.time(),)).lastrowid
            cur = db.execute("INSERT INTO api_keys (account_id, key_hash, prefix, name, role, created_at) "
                             "VALUES (?, ?, ?, ?, 'admin', ?)", (account_id, key_hash, prefix, name, time.time()))
            return _key(db, "id = ?", cur.lastrowid)
        return await self._tx(fn)

    async def auth_version(self) -> int:
        return await self._run(lambda db: db.execute("SELECT version FROM auth_version WHERE id = 1").fetchone()[0])

    # -- billing --------------------------------------------------------------------------------
    async def reserve(self, r: Reservation) -> bool:
        def fn(db):
            # The row first: a duplicate request id fails here, before anything else is written.
            db.execute("INSERT INTO reservations (request_id, account_id, key_id, amount_micros, expires_at) "
                       "VALUES (?, ?, ?, ?, ?)", (r.request_id, r.account_id, r.key_id, r.amount_micros, r.expires_at))
            held = db.execute(
                "UPDATE accounts SET reserved_micros = reserved_micros + ? "
                "WHERE id = ? AND balance_micros - reserved_micros >= ? AND EXISTS (SELECT 1 FROM api_keys "
                "WHERE id = ? AND (spend_cap_micros IS NULL OR spent_micros + reserved_micros + ? <= spend_cap_micros))",
                (r.amount_micros, r.account_id, r.amount_micros, r.key_id, r.amount_micros)).rowcount
            if not held:     # the balance or the key's cap says no: leave nothing behind
                db.execute("DELETE FROM reservations WHERE request_id = ?", (r.request_id,))
                return False
            db.execute("UPDATE api_keys SET reserved_micros = reserved_micros + ? WHERE id = ?",
                       (r.amount_micros, r.key_id))
            return True
        return await self._tx(fn)

    async def settle(self, request_id: str, cost_micros: int) -> Settlement | None:
        return await self._tx(lambda db: _settle(db, request_id, cost_micros))

    async def release_expired(self, now: float) -> int:
        def fn(db):
            expired = db.execute("SELECT request_id, account_id, key_id, amount_micros FROM reservations "
                                 "WHERE state = 'open' AND expires_at < ?", (now,)).fetchall()
            for req_id, acc, key, amt in expired:
                db.execute("UPDATE accounts SET reserved_micros = reserved_micros - ? WHERE id = ?", (amt, acc))
                db.execute("UPDATE api_keys SET reserved_micros = reserved_micros - ? WHERE id = ?", (amt, key))
                db.execute("UPDATE reservations SET state = 'expired' WHERE request_id = ?", (req_id,))
            return len(expired)
        return await self._tx(fn)

    async def extend_reservations(self, request_ids: Sequence[str], expires_at: float) -> int:
        if not request_ids:
            return 0
        def fn(db):
            return sum(db.execute("UPDATE reservations SET expires_at = ? "
                                  "WHERE request_id = ? AND state = 'open' AND expires_at < ?",
                                  (expires_at, rid, expires_at)).rowcount
                       for rid in request_ids)
        return await self._tx(fn)

    async def open_reservations(self, account_id: int | None = None) -> int:
        where, args = (" AND account_id = ?", (account_id,)) if account_id is not None else ("", ())
        return await self._run(lambda db: db.execute(
            "SELECT COUNT(*) FROM reservations WHERE state = 'open'" + where, args).fetchone()[0])

    # -- usage ----------------------------------------------------------------------------------
    async def insert_usage(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        data = [rows.usage_tuple(u) for u in records]
        await self._tx(lambda db: db.executemany(
            f"INSERT INTO usage ({rows.USAGE_COLS}) VALUES ({','.join('?' * rows.USAGE_COL_COUNT)})", data))

    async def query_usage(self, q: UsageQuery) -> UsagePage:
        where, args = _usage_filter(q)
        def fn(db):
            recs = [rows.usage_record(r) for r in db.execute(
                f"SELECT {rows.USAGE_COLS} FROM usage {where} ORDER BY created_at DESC LIMIT ?", (*args, q.limit))]
            t = db.execute("SELECT COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0), "
                           f"COALESCE(SUM(cost_micros),0) FROM usage {where}", args).fetchone()
            return UsagePage(recs, UsageTotals(*t))
        return await self._run(fn)

    # -- audit ----------------------------------------------------------------------------------
    async def record_audit(self, actor: str, action: str, target: str = "", detail: str = "") -> None:
        await self._tx(lambda db: db.execute(
            "INSERT INTO audit_log (created_at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (time.time(), actor, action, target, detail)))

    async def list_audit(self, limit: int = 100, *, target: str | None = None,
                         before_id: int | None = None) -> list[AuditEntry]:
        where, args = ("AND target = ?", (target,)) if target is not None else ("", ())
        before = rows.MAX_ROW_ID if before_id is None else before_id
        return await self._run(lambda db: [rows.audit_entry(r) for r in db.execute(
            f"SELECT {rows.AUDIT_COLS} FROM audit_log WHERE id < ? {where} ORDER BY id DESC LIMIT ?",
            (before, *args, limit))])


    # -- health ---------------------------------------------------------------------------------
    async def ping(self) -> None:
        """Takes the write lock and gives it back at once (BEGIN IMMEDIATE; ROLLBACK) on a
        connection of its own, off the writer thread (which a held lock may be keeping busy), waiting
        at most PING_LOCK_WAIT_MS: another process holding the lock makes it raise StoreLocked.
        In memory there is no other process: a plain round trip on the thread."""
        if not self._inline:
            await self._run(lambda db: db.execute("SELECT 1").fetchone())
            return
        await asyncio.get_running_loop().run_in_executor(None, self._probe_write_lock)

    def _probe_write_lock(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=PING_LOCK_WAIT_MS / 1000)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreLocked("locked") from None
            raise
        finally:
            db.close()

    async def put_response(self, r: StoredResponse) -> None:
        await self._tx(lambda db: db.execute(
            "INSERT OR REPLACE INTO responses (id, account_id, key_id, created_at, body, context) "
            "VALUES (?, ?, ?, ?, ?, ?)", (r.id, r.account_id, r.key_id, r.created_at, r.body, r.context)))

    async def get_response(self, response_id: str, account_id: int) -> StoredResponse | None:
        row = await self._run(lambda db: db.execute(
            "SELECT id, account_id, key_id, created_at, body, context FROM responses "
            "WHERE id = ? AND account_id = ?", (response_id, account_id)).fetchone())
        return StoredResponse(*row) if row else None

    async def delete_response(self, response_id: str, account_id: int, *, created_after: float | None = None) -> bool:
        row = await self._tx(lambda db: db.execute("DELETE FROM responses WHERE id = ? AND account_id = ? "
                                                   "RETURNING created_at", (response_id, account_id)).fetchone())
        return row is not None and (created_after is None or row[0] >= created_after)

    async def purge_responses(self, created_before: float, limit: int) -> int:
        # on the writer thread, not in the loop's group commit: a row may hold megabytes of chain
        return await self._run(lambda db: db.execute(
            "DELETE FROM responses WHERE id IN (SELECT id FROM responses WHERE created_at < ? "
            "ORDER BY created_at LIMIT ?)", (created_before, limit)).rowcount)

    # -- usage recorded with the charge (issue 11) ----------------------------------------------
    async def settle_recorded(self, request_id: str, cost_micros: int, record: UsageRecord) -> Settlement | None:
        return await self._tx(lambda db: _settle(db, request_id, cost_micros, record))

    async def insert_usage_rejects(self, rejects: Sequence[UsageReject]) -> None:
        if not rejects:
            return
        data = [(rows.clean_text(r.request_id), rows.clean_text(r.reason, rows.LONG_TEXT_CAP),
                 rows.clean_text(r.record, 1 << 20), r.created_at) for r in rejects]
        await self._tx(lambda db: db.executemany(
            "INSERT INTO usage_rejects (request_id, reason, record, created_at) VALUES (?, ?, ?, ?)", data))


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def _bump(db: sqlite3.Connection) -> None:
    db.execute("UPDATE auth_version SET version = version + 1 WHERE id = 1")


def _account(db: sqlite3.Connection, account_id: Any) -> Account | None:
    r = db.execute(f"SELECT {rows.ACCOUNT_COLS} FROM accounts WHERE id = ?", (account_id,)).fetchone()
    return rows.account(r) if r else None


def _key(db: sqlite3.Connection, where: str, arg: Any) -> ApiKey | None:
    r = db.execute(f"SELECT {rows.KEY_COLS} FROM api_keys WHERE {where}", (arg,)).fetchone()
    return rows.api_key(r) if r else None


def _settle(db: sqlite3.Connection, request_id: str, cost_micros: int,
            record: UsageRecord | None = None) -> Settlement | None:
    row = db.execute("SELECT account_id, key_id, amount_micros, state, charged_micros FROM reservations "
                     "WHERE request_id = ?", (request_id,)).fetchone()
    if row is None:
        return None
    account_id, key_id, amount, state, charged = row
    if state == "settled":
        bal = db.execute("SELECT balance_micros FROM accounts WHERE id = ?", (account_id,)).fetchone()[0]
        return Settlement(request_id, charged, bal)
    if state == "open":
        charge, hold = min(cost_micros, amount), amount
    else:  # expired: the hold is gone; charge what the balance and the key's spend cap still cover
        avail = db.execute("SELECT balance_micros - reserved_micros FROM accounts WHERE id = ?",
                           (account_id,)).fetchone()[0]
        cap_room = db.execute("SELECT spend_cap_micros - spent_micros - reserved_micros FROM api_keys "
                              "WHERE id = ?", (key_id,)).fetchone()[0]
        charge, hold = max(0, min(cost_micros, amount, avail, amount if cap_room is None else cap_room)), 0
    bal = db.execute("UPDATE accounts SET reserved_micros = reserved_micros - ?, balance_micros = balance_micros - ?, "
                     "spent_micros = spent_micros + ? WHERE id = ? RETURNING balance_micros",
                     (hold, charge, charge, account_id)).fetchone()[0]
    db.execute("UPDATE api_keys SET reserved_micros = reserved_micros - ?, spent_micros = spent_micros + ? "
               "WHERE id = ?", (hold, charge, key_id))
    if charge:
        db.execute("INSERT INTO ledger (account_id, amount_micros, kind, note, request_id, created_at) "
                   "VALUES (?, ?, 'charge', '', ?, ?)", (account_id, -charge, request_id, time.time()))
    db.execute("UPDATE reservations SET state = 'settled', charged_micros = ? WHERE request_id = ?",
               (charge, request_id))
    if record is not None:
        record.cost_micros = charge
        db.execute(_INSERT_USAGE, rows.usage_tuple(record))
    return Settlement(request_id, charge, bal)


_INSERT_USAGE = f"INSERT INTO usage ({rows.USAGE_COLS}) VALUES ({','.join('?' * rows.USAGE_COL_COUNT)})"


def _usage_filter(q: UsageQuery) -> tuple[str, tuple]:
    conds, args = [], []
    for col, val, op in (("account_id", q.account_id, "="), ("key_id", q.key_id, "="),
                         ("routed_model", q.model, "="), ("created_at", q.since, ">="),
                         ("created_at", q.until, "<")):
        if val is not None:
            conds.append(f"{col} {op} ?")
            args.append(val)
    return ("WHERE " + " AND ".join(conds) if conds else ""), tuple(args)

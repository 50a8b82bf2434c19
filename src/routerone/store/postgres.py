"""PostgreSQL store: asyncpg and a connection pool, for several gateway processes on one database.

Same semantics as SQLiteStore, checked by one contract suite (tests/contract).

Concurrency. Transactions run at READ COMMITTED (PostgreSQL's default) and that is enough: every
money decision is either a conditional UPDATE (`... WHERE balance_micros - reserved_micros >= $1`),
which PostgreSQL re-evaluates against the newest row version after waiting for the row lock, or is
taken after `SELECT ... FOR NO KEY UPDATE` (FOR UPDATE in the pg_0001/pg_0002 routines). No decision
rests on a stale read, so nothing needs retrying.
Rows are always locked in one order: reservation, then keys (ascending id), then accounts
(ascending id), then the auth_version row. Transactions wait on each other but cannot deadlock.
The account row comes after the key row because every key of an account shares it: a request
waiting for its key's row holds nothing that other keys of the account need.

Hot path. `reserve` and `settle` go through batchers (routerone.batching): the calls that arrive while a
round trip is in flight share the next one, which runs a PL/pgSQL routine over the whole batch
(postgres_sql.py) with exactly the semantics of running the calls one after another. Under load a
request costs a fraction of a round trip instead of three; a lone request costs one event-loop turn
more. The key and account rows (hot: every request of a key or account updates them, from every
process) are locked last in each batch, after every write that does not need them (pg_0003_batch,
postgres_sql.py), so batches of several processes queue on them only for the decisions, two
UPDATEs and an in-memory COMMIT.

Durability. A synchronous COMMIT keeps the row locks until the WAL is flushed, so on one account
(one hot row) requests would serialize on disk flushes. So:
- A `reserve` batch commits with synchronous_commit = off. A PostgreSQL server crash (not a gateway crash;
  an OS crash or power loss likewise) can lose reservations committed in the last
  3 x wal_writer_delay (~600 ms by default). Recovery replays a prefix of the commit order, so the
  database stays consistent (ledger = balance, nothing negative); a lost reservation just has no
  hold. Its request, if still running, finds no reservation at settle time after the restart and
  goes unbilled (settle returns None) - at most the requests reserved in that window, and only if
  they outlive the restart.
- A `settle` batch commits with synchronous_commit = off as well, so it too holds the rows only
  until an in-memory COMMIT, but it then runs a second, tiny synchronous write on one of its own
  (uncontended) reservation rows (FLUSH_BARRIER) and returns only when that is flushed, which
  flushes the WAL past the settlements. So a settlement is never acknowledged before it is on disk: a crash before the
  flush surfaces as an error to the caller, whose retry (billing.settle retries; settle is
  idempotent) charges it again after recovery, exactly as with a synchronous COMMIT. What remains:
  other sessions may, for up to ~600 ms, read a settlement that a crash then rolls back (e.g. a
  balance shown by GET /v1/account). Charges are not lost. Cost: one more round trip, no locks.
  The flush waits do not hold the settle batcher (`_flushes`: one barrier for the settlements of a
  batch, or of every batch that committed before it started), so the next settle batch runs during
  the flush.
  Setting SETTLE_FLUSH_BARRIER = False gives a plain one-round-trip synchronous settle batch instead.
Every other transaction (credits, debits, keys, the expiry sweep) keeps synchronous commit.

Usage rows. `settle_recorded` rides the same settle batcher: its item carries the request's usage
record, and the batch's routine (ro_settle_record_many, postgres_sql.py) writes the usage rows of
the items it settles in the same transaction, with the charge as their cost. A charge and its
usage row are therefore committed (and flushed) together or not at all: a kill -9 cannot leave a
charge without its row. Still one round trip per batch (plus the flush barrier).

Migrations run under a session advisory lock keyed by the current schema, so processes starting
together apply each migration once; each migration and its `_migrations` row commit together. The
portable migrations (migrations.py) come first, then PostgreSQL's own (postgres_sql.PG_MIGRATIONS).
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import asynccontextmanager
from typing import AsyncIterator, Mapping, Sequence

import asyncpg

from . import postgres_sql as sql
from . import rows
from ..batching import Batcher
from .bounds import check_adjustment, unspent_grant_micros, withdrawal_note, withdrew_all
from .errors import StoreLocked
from .base import (PING_LOCK_WAIT_MS, REQUEST_PATH_TABLES, Account, ApiKey, LedgerEntry, Limits, NewKey,
                   Reservation, Settlement, UNSET, Unset, UsageRecord, refuse_taken_name)
from .migrations import MIGRATIONS, migration_sql
from .postgres_console import PostgresConsoleMixin
from .postgres_records import PostgresRecordsMixin
from .text import has_nul, refuse_nul

__all__ = ["PostgresStore"]

_ACCOUNT_NAME_LOCK = 21043   # create_account's transaction lock (21042: bootstrap_admin's), with the schema's hash
_MIGRATE_LOCK = 0x5231  # "R1": first half of the advisory lock key; the second is the schema's hash
_LOCK_ARGS = "$1, hashtext(COALESCE(current_schema(), ''))"
# Durability of the two hot-path transactions (module docstring, "Durability").
RESERVE_SYNCHRONOUS_COMMIT = "off"
SETTLE_FLUSH_BARRIER = True           # async COMMIT, then wait for the flush without holding locks
SETTLE_SYNCHRONOUS_COMMIT = "on"      # used only if SETTLE_FLUSH_BARRIER is False
BATCH_MAX = 256                       # calls per round trip
BATCHES_IN_FLIGHT = 1                 # per batcher (reserve, settle) and process; 2 measured slower
# Flush barriers may overlap: a settle batch's callers start theirs at once instead of waiting for
# the previous batch's, so a settlement is committed-but-unacknowledged for one flush, as with the
# barrier inside the batch (a gateway killed in that window leaves a charge its client never saw).
FLUSHES_IN_FLIGHT = 4
CONNECT_TIMEOUT_S = 5.0               # a database that does not answer: fail (503) rather than hang


class PostgresStore(PostgresConsoleMixin, PostgresRecordsMixin):
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10,
                 server_settings: Mapping[str, str] | None = None) -> None:
        """`server_settings` (e.g. {"search_path": "tenant_a"}) apply to every pooled connection;
        query parameters in `url` other than libpq's own do the same."""
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._server_settings = dict(server_settings) if server_settings else None
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._reserves: Batcher[Reservation, bool] = Batcher(
            self._reserve_many, max_batch=BATCH_MAX, max_in_flight=BATCHES_IN_FLIGHT,
            on_orphan=self._release_orphan)
        self._settles: Batcher[tuple[str, int, UsageRecord | None], Settlement | None] = Batcher(
            self._settle_many, max_batch=BATCH_MAX, max_in_flight=BATCHES_IN_FLIGHT)
        self._flushes: Batcher[str, None] = Batcher(self._flush_many, max_batch=BATCH_MAX,
                                                    max_in_flight=FLUSHES_IN_FLIGHT)
        self._background: set[asyncio.Task] = set()

    # -- plumbing -------------------------------------------------------------------------------
    async def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.url, min_size=self._min_size, max_size=self._max_size,
                        server_settings=self._server_settings, timeout=CONNECT_TIMEOUT_S,
                        reset=_keep_session)
        return self._pool

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self._db()
        async with pool.acquire() as conn, conn.transaction():
            yield conn

    async def migrate(self) -> None:
        pool = await self._db()
        async with pool.acquire() as conn:
            await conn.execute(f"SELECT pg_advisory_lock({_LOCK_ARGS})", _MIGRATE_LOCK)
            try:
                await conn.execute("CREATE TABLE IF NOT EXISTS _migrations "
                                   "(name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION)")
                done = {r[0] for r in await conn.fetch("SELECT name FROM _migrations")}
                for name, ddl in [*MIGRATIONS, *sql.PG_MIGRATIONS]:
                    if name in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(migration_sql(ddl, "postgresql").replace("{ID}", "BIGSERIAL PRIMARY KEY"))
                        await conn.execute("INSERT INTO _migrations VALUES ($1, $2)", name, time.time())
            finally:  # released explicitly: the pool does not reset sessions (_keep_session)
                await conn.execute(f"SELECT pg_advisory_unlock({_LOCK_ARGS})", _MIGRATE_LOCK)

    async def close(self) -> None:
        await self._reserves.close()
        await self._settles.close()
        await self._flushes.close()
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- accounts -------------------------------------------------------------------------------
    async def create_account(self, name: str, *, markup_bps: int = 0, limits: Limits = Limits()) -> Account:
        refuse_nul([("name", name)])
        async with self._tx() as db:     # the lock: of two creating one name at once, the second sees the first
            await db.execute("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", _ACCOUNT_NAME_LOCK)
            refuse_taken_name(await db.fetch("SELECT id, name FROM accounts ORDER BY id"), name)
            r = await db.fetchrow(
                "INSERT INTO accounts (name, markup_bps, rpm, tpm, concurrency, created_at) "
                f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {rows.ACCOUNT_COLS}",
                name, markup_bps, limits.rpm, limits.tpm, limits.concurrency, time.time())
        return rows.account(r)

    async def get_account(self, account_id: int) -> Account | None:
        r = await (await self._db()).fetchrow(f"SELECT {rows.ACCOUNT_COLS} FROM accounts WHERE id = $1", account_id)
        return rows.account(r) if r else None

    async def list_accounts(self) -> list[Account]:
        rs = await (await self._db()).fetch(f"SELECT {rows.ACCOUNT_COLS} FROM accounts ORDER BY id")
        return [rows.account(r) for r in rs]

    async def has_accounts(self) -> bool:
        return await (await self._db()).fetchval("SELECT EXISTS (SELECT 1 FROM accounts)")

    async def update_account(self, account_id: int, *, markup_bps: int | None = None,
                             limits: Limits | None = None) -> Account | None:
        async with self._tx() as db:
            if markup_bps is not None:
                await db.execute("UPDATE accounts SET markup_bps = $1 WHERE id = $2", markup_bps, account_id)
            if limits is not None:
                await db.execute("UPDATE accounts SET rpm = $1, tpm = $2, concurrency = $3 WHERE id = $4",
                                 limits.rpm, limits.tpm, limits.concurrency, account_id)
            await _bump(db)
            r = await db.fetchrow(f"SELECT {rows.ACCOUNT_COLS} FROM accounts WHERE id = $1", account_id)
        return rows.account(r) if r else None

    async def adjust_balance(self, account_id: int, amount_micros: int, *, kind: str, note: str = "",
                             actor: str = "") -> Account:
        refuse_nul([("kind", kind), ("note", note), ("actor", actor)])
        async with self._tx() as db:
            row = await db.fetchrow(
                "SELECT balance_micros, reserved_micros FROM accounts WHERE id = $1 FOR NO KEY UPDATE", account_id)
            if row is None:
                raise KeyError(account_id)
            check_adjustment(row[0], amount_micros)
            available_micros = row[0] - row[1]
            if amount_micros < 0 and available_micros + amount_micros < 0:
                raise ValueError("debit exceeds the available balance")
            await db.execute("INSERT INTO ledger (account_id, amount_micros, kind, note, created_at, actor) "
                             "VALUES ($1, $2, $3, $4, $5, $6)", account_id, amount_micros, kind, note, time.time(), actor)
            r = await db.fetchrow("UPDATE accounts SET balance_micros = balance_micros + $1 WHERE id = $2 "
                                  f"RETURNING {rows.ACCOUNT_COLS}", amount_micros, account_id)
        return rows.account(r)

    async def withdraw_unspent_grant(self, *, grant_note: str, note: str, actor: str) -> tuple[int, int] | None:
        refuse_nul([("note", note), ("actor", actor)])
        async with self._tx() as db:
            acc = await db.fetchrow("SELECT id, balance_micros - reserved_micros FROM accounts ORDER BY id LIMIT 1 "
                                    "FOR NO KEY UPDATE")        # gateways starting together: one at a time
            grant = acc and await db.fetchrow(
                "SELECT id, amount_micros FROM ledger WHERE account_id = $1 AND kind = 'credit' AND note = $2 "
                "ORDER BY id LIMIT 1", acc[0], grant_note)
            if not grant:
                return None
            # withdrawn in full already (marked; before 0012 only its note said so), or nothing to
            # take: the ledger since the grant is not summed
            if acc[1] <= 0 or await db.fetchval(
                    "SELECT 1 FROM grant_withdrawals WHERE grant_id = $2 UNION ALL "
                    "SELECT 1 FROM ledger WHERE account_id = $1 AND id > $2 AND kind = 'debit' AND note = $3 "
                    "AND actor = $4 LIMIT 1", acc[0], grant[0], note, actor):
                return None
            used = int(-await db.fetchval("SELECT COALESCE(SUM(amount_micros), 0) FROM ledger WHERE account_id = $1 "
                                          "AND id > $2 AND amount_micros < 0", acc[0], grant[0]))
            amount = unspent_grant_micros(grant[1], used, acc[1])
            if amount:
                now = time.time()
                debit_id = await db.fetchval(
                    "INSERT INTO ledger (account_id, amount_micros, kind, note, created_at, actor) "
                    "VALUES ($1, $2, 'debit', $3, $4, $5) RETURNING id", acc[0], -amount,
                    withdrawal_note(note, grant[1], used, amount), now, actor)
                if withdrew_all(grant[1], used, amount):
                    await db.execute("INSERT INTO grant_withdrawals (grant_id, account_id, ledger_id, created_at) "
                                     "VALUES ($1, $2, $3, $4)", grant[0], acc[0], debit_id, now)
                await db.execute("UPDATE accounts SET balance_micros = balance_micros - $1 WHERE id = $2",
                                 amount, acc[0])
        return (acc[0], amount) if amount else None

    async def ledger(self, account_id: int, limit: int = 100, *, before_id: int | None = None) -> list[LedgerEntry]:
        rs = await (await self._db()).fetch(
            f"SELECT {rows.LEDGER_COLS} FROM ledger WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            account_id, rows.MAX_ROW_ID if before_id is None else before_id, limit)
        return [rows.ledger_entry(r) for r in rs]

    async def ledger_sum(self, account_id: int) -> int:
        return await (await self._db()).fetchval(
            "SELECT COALESCE(SUM(amount_micros), 0)::BIGINT FROM ledger WHERE account_id = $1", account_id)

    # -- keys -----------------------------------------------------------------------------------
    async def create_key(self, new: NewKey) -> ApiKey:
        refuse_nul([("key_hash", new.key_hash), ("prefix", new.prefix), ("name", new.name), ("role", new.role),
                    ("allowed_models", new.allowed_models), ("strategy", new.strategy)])
        r = await (await self._db()).fetchrow(
            "INSERT INTO api_keys (account_id, key_hash, prefix, name, role, expires_at, spend_cap_micros, "
            "allowed_models, rpm, tpm, concurrency, strategy, created_at, willingness_to_pay) "
            f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {rows.KEY_COLS}",
            new.account_id, new.key_hash, new.prefix, new.name, new.role, new.expires_at,
            new.spend_cap_micros, ",".join(new.allowed_models), new.limits.rpm, new.limits.tpm,
            new.limits.concurrency, new.strategy, time.time(), new.willingness_to_pay)
        return rows.api_key(r)

    async def bootstrap_admin(self, key_hash: str, prefix: str, *, only_if_no_admin: bool,
                              name: str = "bootstrap admin") -> ApiKey | None:
        refuse_nul([("key_hash", key_hash), ("prefix", prefix), ("name", name)])
        async with self._tx() as db:
            await db.execute("SELECT pg_advisory_xact_lock(21042, hashtext(current_schema()))")
            if await db.fetchval("SELECT 1 FROM api_keys WHERE key_hash = $1", key_hash):
                return None
            if only_if_no_admin and await db.fetchval(
                    "SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked = 0 LIMIT 1"):
                return None
            account_id = await db.fetchval("SELECT id FROM accounts ORDER BY id LIMIT 1")
            if account_id is None:
                account_id = await db.fetchval(
                    "INSERT INTO accounts (name, created_at) VALUES ('admin', $1) RETURNING id", time.time())
            r = await db.fetchrow(
                "INSERT INTO api_keys (account_id, key_hash, prefix, name, role, created_at) "
                f"VALUES ($1, $2, $3, $4, 'admin', $5) RETURNING {rows.KEY_COLS}",
                account_id, key_hash, prefix, name, time.time())
            return rows.api_key(r)

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        if has_nul(key_hash):
            return None
        r = await (await self._db()).fetchrow(f"SELECT {rows.KEY_COLS} FROM api_keys WHERE key_hash = $1", key_hash)
        return rows.api_key(r) if r else None

    async def get_key(self, key_id: int) -> ApiKey | None:
        r = await (await self._db()).fetchrow(f"SELECT {rows.KEY_COLS} FROM api_keys WHERE id = $1", key_id)
        return rows.api_key(r) if r else None

    async def list_keys(self, account_id: int | None = None, limit: int | None = None, *,
                        after_id: int | None = None) -> list[ApiKey]:
        where, args = rows.key_page_where(account_id, after_id, ">", "$")
        tail = "" if limit is None else f" LIMIT {int(limit)}"
        rs = await (await self._db()).fetch(f"SELECT {rows.KEY_COLS} FROM api_keys {where} ORDER BY id{tail}", *args)
        return [rows.api_key(r) for r in rs]

    async def recent_keys(self, account_id: int | None, limit: int, *, before_id: int | None = None) -> list[ApiKey]:
        where, args = rows.key_page_where(account_id, before_id, "<", "$")
        rs = await (await self._db()).fetch(
            f"SELECT {rows.KEY_COLS} FROM api_keys {where} ORDER BY id DESC LIMIT {int(limit)}", *args)
        return [rows.api_key(r) for r in rs]

    async def count_keys(self, account_id: int, *, active_only: bool = False, at_most: int | None = None) -> int:
        sql = rows.count_keys_sql(active_only, at_most).format(account="$1")
        return int(await (await self._db()).fetchval(sql, account_id))

    async def key_named(self, account_id: int, name: str) -> ApiKey | None:
        r = await (await self._db()).fetchrow(
            f"SELECT {rows.KEY_COLS} FROM api_keys WHERE account_id = $1 AND name = $2 AND role = 'user' "
            "AND revoked = 0 ORDER BY id LIMIT 1", account_id, name)
        return rows.api_key(r) if r else None

    async def update_key(self, key_id: int, *, limits: Limits | None = None,
                         spend_cap_micros: int | None | Unset = UNSET, allowed_models: Sequence[str] | None = None,
                         expires_at: float | None | Unset = UNSET, name: str | None = None, strategy: str | None | Unset = UNSET,
                         willingness_to_pay: float | None | Unset = UNSET) -> ApiKey | None:
        refuse_nul([("name", name), ("strategy", None if strategy is UNSET else strategy),
                    ("allowed_models", allowed_models)])
        async with self._tx() as db:
            if limits is not None:
                await db.execute("UPDATE api_keys SET rpm = $1, tpm = $2, concurrency = $3 WHERE id = $4",
                                 limits.rpm, limits.tpm, limits.concurrency, key_id)
            if name is not None:
                await db.execute("UPDATE api_keys SET name = $1 WHERE id = $2", name, key_id)
            for col, val in (("spend_cap_micros", spend_cap_micros), ("expires_at", expires_at)):
                if val is not UNSET:        # None: no cap, no expiry
                    await db.execute(f"UPDATE api_keys SET {col} = $1 WHERE id = $2", val, key_id)
            if strategy is not UNSET:       # None: back to the gateway's default
                await db.execute("UPDATE api_keys SET strategy = $1 WHERE id = $2", strategy, key_id)
            if willingness_to_pay is not UNSET:
                await db.execute("UPDATE api_keys SET willingness_to_pay = $1 WHERE id = $2",
                                 willingness_to_pay, key_id)
            if allowed_models is not None:
                await db.execute("UPDATE api_keys SET allowed_models = $1 WHERE id = $2",
                                 ",".join(allowed_models), key_id)
            await _bump(db)
            r = await db.fetchrow(f"SELECT {rows.KEY_COLS} FROM api_keys WHERE id = $1", key_id)
        return rows.api_key(r) if r else None

    async def revoke_key(self, key_id: int) -> bool:
        async with self._tx() as db:
            revoked = await db.fetchval("UPDATE api_keys SET revoked = 1 WHERE id = $1 AND revoked = 0 "
                                        "RETURNING id", key_id)
            await _bump(db)
        return revoked is not None

    async def auth_version(self) -> int:
        return await (await self._db()).fetchval("SELECT version FROM auth_version WHERE id = 1")

    # -- billing --------------------------------------------------------------------------------
    async def reserve(self, r: Reservation) -> bool:
        """Batched (see "Hot path"): the key's spend cap and the account's available balance are
        checked and held together, all or nothing; a refusal changes nothing. Committed
        asynchronously (see "Durability"): a reservation lost to a server crash only releases a hold."""
        return await self._reserves.submit(r)

    async def settle(self, request_id: str, cost_micros: int) -> Settlement | None:
        """Batched; returns only once the settlement is on disk (see "Durability"). Idempotent by
        request id."""
        return await self._flushed(await self._settles.submit((request_id, cost_micros, None)))

    async def _flushed(self, s: Settlement | None) -> Settlement | None:
        """`s` once the WAL is flushed past its batch's (asynchronous) COMMIT: the flush barrier,
        shared by every settlement that is waiting for one (see "Durability")."""
        if s is not None and SETTLE_FLUSH_BARRIER:
            await self._flushes.submit(s.request_id)
        return s

    async def _reserve_many(self, rs: Sequence[Reservation]) -> list[bool]:
        row = await (await self._db()).fetchrow(
            sql.RESERVE_BATCH, [r.request_id for r in rs], [r.account_id for r in rs], [r.key_id for r in rs],
            [r.amount_micros for r in rs], [r.expires_at for r in rs], RESERVE_SYNCHRONOUS_COMMIT)
        return list(row[0])

    async def _settle_many(self, items: Sequence[tuple[str, int, UsageRecord | None]]) -> list[Settlement | None]:
        """One round trip for the batch: the settlements and, in the same transaction, the usage
        rows of the items that carry one (ro_settle_batch). With the flush barrier the COMMIT is
        asynchronous and each caller then waits for a shared flush (`_flushed`): the next settle
        batch need not wait for this one's disk flush."""
        ids = [request_id for request_id, _, _ in items]
        usage = [rows.usage_tuple(r) if r is not None else _NO_USAGE for _, _, r in items]
        cols = list(zip(*usage))    # one array per usage column; [0] is the request id, [9] the cost
        charged, balances, _ = await (await self._db()).fetchrow(
            sql.SETTLE_BATCH, ids, [cost for _, cost, _ in items], time.time(),
            [r is not None for _, _, r in items], *cols[1:9], *cols[10:],
            "off" if SETTLE_FLUSH_BARRIER else SETTLE_SYNCHRONOUS_COMMIT)
        for (_, _, record), c in zip(items, charged):
            if record is not None and c is not None:
                record.cost_micros = c
        return [Settlement(request_id, c, b) if c is not None else None
                for request_id, c, b in zip(ids, charged, balances)]

    async def _flush_many(self, request_ids: Sequence[str]) -> list[None]:
        """The flush barrier for every settlement whose batch committed before it started: a tiny
        synchronous write on one of their (settled, uncontended) reservation rows, whose COMMIT
        returns once the WAL is flushed past it, and so past all their COMMITs."""
        await (await self._db()).execute(sql.FLUSH_BARRIER, request_ids[0])
        return [None] * len(request_ids)

    def round_trips(self) -> dict[str, int]:
        """Batches sent so far, per batcher (each is one round trip; "flush": the shared flush barriers
        that settlements wait for)."""
        return {"reserve": self._reserves.batches, "settle": self._settles.batches, "flush": self._flushes.batches}

    def batched_calls(self) -> dict[str, int]:
        """Calls those batches carried (calls / round trips = the mean batch size)."""
        return {"reserve": self._reserves.items, "settle": self._settles.items, "flush": self._flushes.items}

    def _release_orphan(self, r: Reservation, granted: bool) -> None:
        """A reserve whose caller went away while its batch ran: release the hold now rather than
        leave it to the expiry sweep."""
        if granted:
            task = asyncio.get_running_loop().create_task(self.settle(r.request_id, 0))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def release_expired(self, now: float) -> int:
        async with self._tx() as db:
            expired = await db.fetch(
                "SELECT request_id, account_id, key_id, amount_micros FROM reservations "
                "WHERE state = 'open' AND expires_at < $1 ORDER BY request_id FOR UPDATE SKIP LOCKED", now)
            if not expired:
                return 0
            per_account, per_key = Counter[int](), Counter[int]()
            for _, account_id, key_id, amount_micros in expired:
                per_account[account_id] += amount_micros
                per_key[key_id] += amount_micros
            await db.executemany("UPDATE api_keys SET reserved_micros = reserved_micros - $2 WHERE id = $1",
                                 sorted(per_key.items()))
            await db.executemany("UPDATE accounts SET reserved_micros = reserved_micros - $2 WHERE id = $1",
                                 sorted(per_account.items()))
            await db.execute("UPDATE reservations SET state = 'expired' WHERE request_id = ANY($1::TEXT[])",
                             [r[0] for r in expired])
        return len(expired)

    async def extend_reservations(self, request_ids: Sequence[str], expires_at: float) -> int:
        """One statement; SKIP LOCKED: it never waits for (nor deadlocks with) a settle batch or a
        sweep that holds some of these rows, whose reservations are being closed anyway."""
        if not request_ids:
            return 0
        return int((await (await self._db()).execute(
            "UPDATE reservations r SET expires_at = $2 FROM (SELECT request_id FROM reservations "
            "WHERE request_id = ANY($1::TEXT[]) AND state = 'open' AND expires_at < $2 "
            "ORDER BY request_id FOR UPDATE SKIP LOCKED) t WHERE r.request_id = t.request_id",
            list(request_ids), expires_at)).rsplit(" ", 1)[1])

    async def open_reservations(self, account_id: int | None = None) -> int:
        where, args = (" AND account_id = $1", (account_id,)) if account_id is not None else ("", ())
        return await (await self._db()).fetchval(
            "SELECT COUNT(*) FROM reservations WHERE state = 'open'" + where, *args)

    # -- health ---------------------------------------------------------------------------------
    async def ping(self) -> None:
        """The locks an INSERT/UPDATE takes (ROW EXCLUSIVE, which traffic never blocks), asked for
        in a transaction that writes nothing; another session's EXCLUSIVE / ACCESS EXCLUSIVE /
        SHARE lock on a request-path table makes it fail after PING_LOCK_WAIT_MS."""
        try:
            async with self._tx() as db:
                await db.execute(f"SET LOCAL lock_timeout = '{PING_LOCK_WAIT_MS}ms'; "
                                 f"LOCK TABLE {', '.join(REQUEST_PATH_TABLES)} IN ROW EXCLUSIVE MODE")
        except asyncpg.LockNotAvailableError:
            raise StoreLocked("locked") from None

    # -- usage recorded with the charge (issue 11) ----------------------------------------------
    async def settle_recorded(self, request_id: str, cost_micros: int, record: UsageRecord) -> Settlement | None:
        """Batched with the plain settles (one routine, one transaction; see postgres_sql.py)."""
        return await self._flushed(await self._settles.submit((request_id, cost_micros, record)))


_NO_USAGE = (None,) * rows.USAGE_COL_COUNT   # placeholders for a settle without a usage row


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, beyond asyncpg's own (a transaction left open is rolled back,
    listener callbacks dropped): nothing. asyncpg's default also sends `SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` and waits for it, one more round
    trip per pooled call (per reserve and settle batch too) before the caller gets its result. This
    store leaves no session state behind: settings are transaction-local (set_config(..., true)),
    advisory locks are transaction-scoped or released explicitly (migrate), no LISTEN, no cursors
    outside a transaction."""


async def _bump(db: asyncpg.Connection) -> None:
    await db.execute("UPDATE auth_version SET version = version + 1 WHERE id = 1")

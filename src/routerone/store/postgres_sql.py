"""The hot-path SQL of PostgresStore: two PL/pgSQL routines that reserve and settle a whole batch of
requests in one round trip (one transaction), plus the statements that call them.

Why routines: a gateway under load has many requests reserving and settling at once. Sending each
as its own statement costs a round trip and a client-side encode/decode apiece; a batch costs one.
Inside a batch the items run one after another, in the order given, with exactly the semantics of
running them alone (the conditional checks see every earlier item's effect), so batching changes
nothing a caller can observe except latency and CPU.

Lock order. Every transaction of the store locks rows in one order: reservations (ascending
request id), then keys (ascending id), then accounts (ascending id), then the auth_version row.
A batch takes all its locks up front in that order (`ORDER BY ... FOR UPDATE`, which locks rows as
they leave the sort), so batches from several processes wait on each other but cannot deadlock,
with each other or with the store's other transactions. Under READ COMMITTED a row locked after a
wait is re-read at its newest committed version, and every later statement in the routine takes a
fresh snapshot, so each money decision is taken on the row as it is while we hold its lock.

`set_config('synchronous_commit', $n, true)` in the calling statement applies to its own implicit
transaction only (it is read at COMMIT and reset right after); see postgres.py, "Durability".

These are PostgreSQL-only migrations (PG_MIGRATIONS), applied after the portable ones.
"""
from __future__ import annotations

__all__ = ["PG_MIGRATIONS", "RESERVE_MANY", "SETTLE_MANY", "FLUSH_BARRIER"]

# ro_reserve_many(ids, accounts, keys, amounts, expires) -> BOOLEAN[] (granted, per item, in order).
# Item i holds amounts[i] iff its key's spend cap (spent + reserved + amount <= cap, when set) and
# its account's available balance (balance - reserved >= amount) both allow it after items 1..i-1;
# then the account hold, the key hold and the reservation row are written, else nothing is.
# A request id that already has a reservation raises unique_violation for the whole batch (the
# store then retries the items one by one, so only that caller sees the error).
_RESERVE_MANY_DDL = """
CREATE OR REPLACE FUNCTION ro_reserve_many(p_ids TEXT[], p_accounts BIGINT[], p_keys BIGINT[],
                                           p_amounts BIGINT[], p_expires DOUBLE PRECISION[])
RETURNS BOOLEAN[] LANGUAGE plpgsql AS $$
DECLARE
    granted BOOLEAN[] := '{}';
BEGIN
    PERFORM 1 FROM api_keys WHERE id = ANY(p_keys) ORDER BY id FOR UPDATE;
    PERFORM 1 FROM accounts WHERE id = ANY(p_accounts) ORDER BY id FOR UPDATE;
    FOR i IN 1 .. COALESCE(array_length(p_ids, 1), 0) LOOP
        UPDATE accounts SET reserved_micros = reserved_micros + p_amounts[i]
        WHERE id = p_accounts[i] AND balance_micros - reserved_micros >= p_amounts[i]
          AND EXISTS (SELECT 1 FROM api_keys k WHERE k.id = p_keys[i] AND (k.spend_cap_micros IS NULL
                      OR k.spent_micros + k.reserved_micros + p_amounts[i] <= k.spend_cap_micros));
        IF FOUND THEN
            UPDATE api_keys SET reserved_micros = reserved_micros + p_amounts[i] WHERE id = p_keys[i];
            INSERT INTO reservations (request_id, account_id, key_id, amount_micros, expires_at)
            VALUES (p_ids[i], p_accounts[i], p_keys[i], p_amounts[i], p_expires[i]);
        END IF;
        granted := granted || FOUND;
    END LOOP;
    RETURN granted;
END $$
"""

# ro_settle_many(ids, costs, now) -> (charged BIGINT[], balances BIGINT[]), per item, in order;
# both NULL for a request id with no reservation. Per item, by the reservation's state:
# open: charge min(cost, reserved), release the hold; expired (the sweep already released the
# hold): charge what the balance and the key's spend cap still cover, min(cost, reserved,
# available, cap room); settled: the first
# charge again and the current balance, nothing written (settle is idempotent by request id,
# also when the same id appears twice in one batch).
_SETTLE_MANY_DDL = """
CREATE OR REPLACE FUNCTION ro_settle_many(p_ids TEXT[], p_costs BIGINT[], p_now DOUBLE PRECISION,
                                          OUT charged BIGINT[], OUT balances BIGINT[])
LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
    charge BIGINT;
    hold BIGINT;
    bal BIGINT;
BEGIN
    charged := '{}';
    balances := '{}';
    PERFORM 1 FROM reservations WHERE request_id = ANY(p_ids) ORDER BY request_id FOR UPDATE;
    PERFORM 1 FROM api_keys WHERE id IN (SELECT key_id FROM reservations
                                         WHERE request_id = ANY(p_ids) AND state <> 'settled')
    ORDER BY id FOR UPDATE;
    PERFORM 1 FROM accounts WHERE id IN (SELECT account_id FROM reservations WHERE request_id = ANY(p_ids))
    ORDER BY id FOR UPDATE;
    FOR i IN 1 .. COALESCE(array_length(p_ids, 1), 0) LOOP
        SELECT account_id, key_id, amount_micros, state, charged_micros INTO r
        FROM reservations WHERE request_id = p_ids[i];
        IF NOT FOUND THEN
            charged := charged || NULL::BIGINT;
            balances := balances || NULL::BIGINT;
            CONTINUE;
        END IF;
        IF r.state = 'settled' THEN
            charged := charged || r.charged_micros;
            balances := balances || (SELECT balance_micros FROM accounts WHERE id = r.account_id);
            CONTINUE;
        END IF;
        IF r.state = 'open' THEN
            charge := LEAST(p_costs[i], r.amount_micros);
            hold := r.amount_micros;
        ELSE
            SELECT GREATEST(0, LEAST(p_costs[i], r.amount_micros, a.balance_micros - a.reserved_micros,
                                     k.spend_cap_micros - k.spent_micros - k.reserved_micros))
            INTO charge FROM accounts a, api_keys k WHERE a.id = r.account_id AND k.id = r.key_id;
            hold := 0;
        END IF;
        UPDATE accounts SET reserved_micros = reserved_micros - hold, balance_micros = balance_micros - charge,
                            spent_micros = spent_micros + charge
        WHERE id = r.account_id RETURNING balance_micros INTO bal;
        UPDATE api_keys SET reserved_micros = reserved_micros - hold, spent_micros = spent_micros + charge
        WHERE id = r.key_id;
        IF charge > 0 THEN
            INSERT INTO ledger (account_id, amount_micros, kind, note, request_id, created_at)
            VALUES (r.account_id, -charge, 'charge', '', p_ids[i], p_now);
        END IF;
        UPDATE reservations SET state = 'settled', charged_micros = charge WHERE request_id = p_ids[i];
        charged := charged || charge;
        balances := balances || bal;
    END LOOP;
END $$
"""

PG_MIGRATIONS: list[tuple[str, str]] = [
    ("pg_0001_batch_routines", _RESERVE_MANY_DDL + ";\n" + _SETTLE_MANY_DDL),
]

# $1..$5 as ro_reserve_many, $6 synchronous_commit -> one row: (granted BOOLEAN[], _).
RESERVE_MANY = ("SELECT ro_reserve_many($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], "
                "$5::DOUBLE PRECISION[]), set_config('synchronous_commit', $6::TEXT, true)")

# $1 ids, $2 costs, $3 now, $4 synchronous_commit -> one row: (charged BIGINT[], balances BIGINT[], _).
SETTLE_MANY = ("SELECT s.charged, s.balances, set_config('synchronous_commit', $4::TEXT, true) "
               "FROM ro_settle_many($1::TEXT[], $2::BIGINT[], $3::DOUBLE PRECISION) s")

# A tiny synchronous write on one (uncontended) reservation row of the batch: its COMMIT waits until
# the WAL is flushed up to its own commit record, and so past every earlier commit of this session,
# including the asynchronous settle batch just before it. No hot row is locked while it waits.
FLUSH_BARRIER = "UPDATE reservations SET charged_micros = charged_micros WHERE request_id = $1::TEXT"

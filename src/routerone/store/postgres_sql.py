"""The two hot-path statements of PostgresStore, each one round trip (one implicit transaction).

Both lock rows in the store's one order (reservation, then key, then account) and take the
account row, which every key of the account shares, last. The lock waits happen in MATERIALIZED
`FOR UPDATE` CTEs, which run as init-plans before the statement that depends on them, so the
order is fixed by the plan, not left to the executor. Under READ COMMITTED a `FOR UPDATE` (and a
conditional UPDATE) re-reads the newest committed row version after waiting, so every money
decision below is taken on the row as it is while we hold its lock.

`set_config('synchronous_commit', $n, true)` applies to the statement's own implicit transaction
only (it is read at COMMIT and reset right after).
"""
from __future__ import annotations

__all__ = ["RESERVE", "SETTLE", "FLUSH_BARRIER"]

# $1 request_id, $2 account_id, $3 key_id, $4 amount_micros, $5 expires_at, $6 synchronous_commit.
# -> one row: (granted bool, _). All-or-nothing: the key is checked and locked first; the account
# hold is a conditional UPDATE that happens only if the key passed; the key's hold and the
# reservation row follow only if the account hold happened. A failed check leaves nothing changed;
# a duplicate request id fails the whole statement (unique violation), as before.
RESERVE = """
WITH k AS MATERIALIZED (
    SELECT id FROM api_keys
    WHERE id = $3::BIGINT
      AND (spend_cap_micros IS NULL OR spent_micros + reserved_micros + $4::BIGINT <= spend_cap_micros)
    FOR UPDATE
), a AS (
    UPDATE accounts SET reserved_micros = reserved_micros + $4::BIGINT
    WHERE id = $2::BIGINT AND balance_micros - reserved_micros >= $4::BIGINT AND EXISTS (SELECT 1 FROM k)
    RETURNING id
), hold_key AS (
    UPDATE api_keys SET reserved_micros = reserved_micros + $4::BIGINT
    WHERE id = $3::BIGINT AND EXISTS (SELECT 1 FROM a)
), ins AS (
    INSERT INTO reservations (request_id, account_id, key_id, amount_micros, expires_at)
    SELECT $1::TEXT, $2::BIGINT, $3::BIGINT, $4::BIGINT, $5::DOUBLE PRECISION FROM a
)
SELECT EXISTS (SELECT 1 FROM a), set_config('synchronous_commit', $6::TEXT, true)
"""

# $1 request_id, $2 cost_micros, $3 created_at (ledger), $4 synchronous_commit.
# -> no row for an unknown request id, else (charged_micros, balance_micros, _).
# Open: charge min(cost, reserved), release the hold. Expired: the hold is gone; charge what the
# balance still covers, read under the account lock. Settled: the first charge, nothing written;
# the balance is read FOR SHARE so that a settle that waited on a concurrent settle of the same
# request id sees that one's result, not its own statement snapshot.
SETTLE = """
WITH r AS MATERIALIZED (
    SELECT request_id, account_id, key_id, amount_micros, state, charged_micros
    FROM reservations WHERE request_id = $1::TEXT FOR UPDATE
), k AS MATERIALIZED (
    SELECT api_keys.id FROM api_keys
    WHERE api_keys.id = (SELECT key_id FROM r WHERE state <> 'settled')
    FOR UPDATE
), c AS MATERIALIZED (
    SELECT a.id AS account_id, r.key_id,
           CASE WHEN r.state = 'open' THEN LEAST($2::BIGINT, r.amount_micros)
                ELSE GREATEST(0, LEAST($2::BIGINT, r.amount_micros, a.balance_micros - a.reserved_micros))
           END AS charge,
           CASE WHEN r.state = 'open' THEN r.amount_micros ELSE 0 END AS release
    FROM accounts a JOIN r ON a.id = r.account_id
    WHERE r.state <> 'settled' AND EXISTS (SELECT 1 FROM k)
    FOR UPDATE OF a
), ua AS (
    UPDATE accounts a SET reserved_micros = a.reserved_micros - c.release,
                          balance_micros = a.balance_micros - c.charge,
                          spent_micros = a.spent_micros + c.charge
    FROM c WHERE a.id = c.account_id
    RETURNING a.balance_micros
), uk AS (
    UPDATE api_keys k SET reserved_micros = k.reserved_micros - c.release, spent_micros = k.spent_micros + c.charge
    FROM c WHERE k.id = c.key_id
), led AS (
    INSERT INTO ledger (account_id, amount_micros, kind, note, request_id, created_at)
    SELECT c.account_id, -c.charge, 'charge', '', $1::TEXT, $3::DOUBLE PRECISION FROM c WHERE c.charge > 0
), ur AS (
    UPDATE reservations SET state = 'settled', charged_micros = c.charge
    FROM c WHERE reservations.request_id = $1::TEXT
), prev AS MATERIALIZED (
    SELECT balance_micros FROM accounts
    WHERE id = (SELECT account_id FROM r WHERE state = 'settled')
    FOR SHARE
)
SELECT COALESCE((SELECT charge FROM c), r.charged_micros),
       COALESCE((SELECT balance_micros FROM ua), (SELECT balance_micros FROM prev)),
       set_config('synchronous_commit', $4::TEXT, true)
FROM r
"""

# A tiny synchronous write on the (uncontended) reservation row: its COMMIT waits until the WAL is
# flushed up to its own commit record, and so past every earlier commit of this session, including
# the asynchronous settle just before it. No hot row is locked while it waits.
FLUSH_BARRIER = "UPDATE reservations SET charged_micros = charged_micros WHERE request_id = $1::TEXT"

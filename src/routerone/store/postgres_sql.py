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

__all__ = ["PG_MIGRATIONS", "RESERVE_MANY", "SETTLE_MANY", "FLUSH_BARRIER", "SETTLE_RECORD_MANY", "RESERVE_BATCH",
           "SETTLE_BATCH"]

# ro_reserve_many(ids, accounts, keys, amounts, expires) -> BOOLEAN[] (granted, per item, in order).
# Item i holds amounts[i] iff its key's spend cap (spent + reserved + amount <= cap, when set) and
# its account's available balance (balance - reserved >= amount) both allow it after items 1..i-1;
# then the account hold, the key hold and the reservation row are written, else nothing is.
# The decisions are taken on the locked rows' values held in local arrays, and each row is then
# written once per batch (one new row version per account and key, not one per request).
# A request id that already has a reservation raises unique_violation for the whole batch (the
# store then retries the items one by one, so only that caller sees the error).
_RESERVE_MANY_DDL = """
CREATE OR REPLACE FUNCTION ro_reserve_many(p_ids TEXT[], p_accounts BIGINT[], p_keys BIGINT[],
                                           p_amounts BIGINT[], p_expires DOUBLE PRECISION[])
RETURNS BOOLEAN[] LANGUAGE plpgsql AS $$
DECLARE
    key_ids BIGINT[]; key_room BIGINT[]; key_add BIGINT[];
    acc_ids BIGINT[]; acc_avail BIGINT[]; acc_add BIGINT[];
    granted BOOLEAN[] := '{}';
    ki INT; ai INT; ok BOOLEAN;
BEGIN
    SELECT array_agg(id ORDER BY id), array_agg(spend_cap_micros - spent_micros - reserved_micros ORDER BY id)
    INTO key_ids, key_room
    FROM (SELECT id, spend_cap_micros, spent_micros, reserved_micros FROM api_keys
          WHERE id = ANY(p_keys) ORDER BY id FOR UPDATE) k;
    SELECT array_agg(id ORDER BY id), array_agg(balance_micros - reserved_micros ORDER BY id)
    INTO acc_ids, acc_avail
    FROM (SELECT id, balance_micros, reserved_micros FROM accounts
          WHERE id = ANY(p_accounts) ORDER BY id FOR UPDATE) a;
    key_add := array_fill(0::BIGINT, ARRAY[COALESCE(cardinality(key_ids), 0)]);
    acc_add := array_fill(0::BIGINT, ARRAY[COALESCE(cardinality(acc_ids), 0)]);
    FOR i IN 1 .. COALESCE(cardinality(p_ids), 0) LOOP
        ki := array_position(key_ids, p_keys[i]);
        ai := array_position(acc_ids, p_accounts[i]);
        ok := ki IS NOT NULL AND ai IS NOT NULL AND acc_avail[ai] >= p_amounts[i]
              AND (key_room[ki] IS NULL OR key_room[ki] >= p_amounts[i]);
        IF ok THEN
            acc_avail[ai] := acc_avail[ai] - p_amounts[i];
            acc_add[ai] := acc_add[ai] + p_amounts[i];
            key_room[ki] := key_room[ki] - p_amounts[i];       -- stays NULL when there is no cap
            key_add[ki] := key_add[ki] + p_amounts[i];
        END IF;
        granted := granted || ok;
    END LOOP;
    INSERT INTO reservations (request_id, account_id, key_id, amount_micros, expires_at)
    SELECT t.id, t.acc, t.key, t.amount, t.exp
    FROM unnest(p_ids, p_accounts, p_keys, p_amounts, p_expires, granted) AS t(id, acc, key, amount, exp, ok)
    WHERE t.ok;
    UPDATE api_keys k SET reserved_micros = k.reserved_micros + t.add
    FROM unnest(key_ids, key_add) AS t(id, add) WHERE k.id = t.id AND t.add <> 0;
    UPDATE accounts a SET reserved_micros = a.reserved_micros + t.add
    FROM unnest(acc_ids, acc_add) AS t(id, add) WHERE a.id = t.id AND t.add <> 0;
    RETURN granted;
END $$
"""

# ro_settle_many(ids, costs, now) -> (charged BIGINT[], balances BIGINT[]), per item, in order;
# both NULL for a request id with no reservation. Per item, by the reservation's state:
# open: charge min(cost, reserved), release the hold; expired (the sweep already released the
# hold): charge what the balance and the key's spend cap still cover, min(cost, reserved,
# available, cap room); settled: the first charge again and the current balance, nothing written
# (settle is idempotent by request id, also when the same id appears twice in one batch).
# As in ro_reserve_many, decisions use locked rows held in local arrays and every row is written
# once per batch.
_SETTLE_MANY_DDL = """
CREATE OR REPLACE FUNCTION ro_settle_many(p_ids TEXT[], p_costs BIGINT[], p_now DOUBLE PRECISION,
                                          OUT charged BIGINT[], OUT balances BIGINT[])
LANGUAGE plpgsql AS $$
DECLARE
    r_ids TEXT[]; r_acc BIGINT[]; r_key BIGINT[]; r_amount BIGINT[]; r_state TEXT[]; r_charged BIGINT[];
    key_ids BIGINT[]; key_room BIGINT[]; key_release BIGINT[]; key_spend BIGINT[];
    acc_ids BIGINT[]; acc_balance BIGINT[]; acc_reserved BIGINT[];
    acc_release BIGINT[]; acc_spend BIGINT[];
    done_ids TEXT[] := '{}'; done_acc BIGINT[] := '{}'; done_charge BIGINT[] := '{}';
    ri INT; ki INT; ai INT; charge BIGINT; hold BIGINT;
BEGIN
    charged := '{}';
    balances := '{}';
    SELECT array_agg(request_id ORDER BY request_id), array_agg(account_id ORDER BY request_id),
           array_agg(key_id ORDER BY request_id), array_agg(amount_micros ORDER BY request_id),
           array_agg(state ORDER BY request_id), array_agg(charged_micros ORDER BY request_id)
    INTO r_ids, r_acc, r_key, r_amount, r_state, r_charged
    FROM (SELECT request_id, account_id, key_id, amount_micros, state, charged_micros FROM reservations
          WHERE request_id = ANY(p_ids) ORDER BY request_id FOR UPDATE) r;
    SELECT array_agg(id ORDER BY id), array_agg(spend_cap_micros - spent_micros - reserved_micros ORDER BY id)
    INTO key_ids, key_room
    FROM (SELECT id, spend_cap_micros, spent_micros, reserved_micros FROM api_keys
          WHERE id = ANY(r_key) ORDER BY id FOR UPDATE) k;
    SELECT array_agg(id ORDER BY id), array_agg(balance_micros ORDER BY id), array_agg(reserved_micros ORDER BY id)
    INTO acc_ids, acc_balance, acc_reserved
    FROM (SELECT id, balance_micros, reserved_micros FROM accounts
          WHERE id = ANY(r_acc) ORDER BY id FOR UPDATE) a;
    key_release := array_fill(0::BIGINT, ARRAY[COALESCE(cardinality(key_ids), 0)]);
    key_spend := key_release;
    acc_release := array_fill(0::BIGINT, ARRAY[COALESCE(cardinality(acc_ids), 0)]);
    acc_spend := acc_release;
    FOR i IN 1 .. COALESCE(cardinality(p_ids), 0) LOOP
        ri := array_position(r_ids, p_ids[i]);
        IF ri IS NULL THEN
            charged := charged || NULL::BIGINT;
            balances := balances || NULL::BIGINT;
            CONTINUE;
        END IF;
        ai := array_position(acc_ids, r_acc[ri]);
        IF r_state[ri] = 'settled' THEN
            charged := charged || r_charged[ri];
            balances := balances || acc_balance[ai];
            CONTINUE;
        END IF;
        ki := array_position(key_ids, r_key[ri]);
        IF r_state[ri] = 'open' THEN
            charge := LEAST(p_costs[i], r_amount[ri]);
            hold := r_amount[ri];
        ELSE
            charge := GREATEST(0, LEAST(p_costs[i], r_amount[ri], acc_balance[ai] - acc_reserved[ai], key_room[ki]));
            hold := 0;
        END IF;
        acc_balance[ai] := acc_balance[ai] - charge;
        acc_reserved[ai] := acc_reserved[ai] - hold;
        acc_release[ai] := acc_release[ai] + hold;
        acc_spend[ai] := acc_spend[ai] + charge;
        key_room[ki] := key_room[ki] + hold - charge;
        key_release[ki] := key_release[ki] + hold;
        key_spend[ki] := key_spend[ki] + charge;
        r_state[ri] := 'settled';
        r_charged[ri] := charge;
        done_ids := done_ids || p_ids[i];
        done_acc := done_acc || r_acc[ri];
        done_charge := done_charge || charge;
        charged := charged || charge;
        balances := balances || acc_balance[ai];
    END LOOP;
    IF cardinality(done_ids) = 0 THEN
        RETURN;
    END IF;
    UPDATE reservations r SET state = 'settled', charged_micros = t.charge
    FROM unnest(done_ids, done_charge) AS t(id, charge) WHERE r.request_id = t.id;
    UPDATE api_keys k SET reserved_micros = k.reserved_micros - t.rel, spent_micros = k.spent_micros + t.spend
    FROM unnest(key_ids, key_release, key_spend) AS t(id, rel, spend)
    WHERE k.id = t.id AND (t.rel <> 0 OR t.spend <> 0);
    UPDATE accounts a SET reserved_micros = a.reserved_micros - t.rel, balance_micros = a.balance_micros - t.spend,
                          spent_micros = a.spent_micros + t.spend
    FROM unnest(acc_ids, acc_release, acc_spend) AS t(id, rel, spend)
    WHERE a.id = t.id AND (t.rel <> 0 OR t.spend <> 0);
    INSERT INTO ledger (account_id, amount_micros, kind, note, request_id, created_at)
    SELECT t.acc, -t.charge, 'charge', '', t.id, p_now
    FROM unnest(done_ids, done_acc, done_charge) WITH ORDINALITY AS t(id, acc, charge, n)
    WHERE t.charge > 0 ORDER BY t.n;
END $$
"""

# ro_settle_record_many(ids, costs, now, has_usage, <one array per usage column but cost>) ->
# (charged, balances) exactly as ro_settle_many, which it calls, and in the same transaction the
# usage row of every item that has one (has_usage) and that this call settles: its cost_micros is
# the charge. "This call settles it": the reservation exists, was not 'settled' before (it is
# locked first, in the store's lock order, so no other batch can settle it in between), and this
# is the first time the id appears in the batch. A repeat (settle is idempotent) writes no row,
# so a request has exactly one usage row, written with its charge or not at all.
_SETTLE_RECORD_MANY_DDL = """
CREATE OR REPLACE FUNCTION ro_settle_record_many(
    p_ids TEXT[], p_costs BIGINT[], p_now DOUBLE PRECISION, p_has_usage BOOLEAN[],
    u_key BIGINT[], u_account BIGINT[], u_requested TEXT[], u_routed TEXT[], u_provider TEXT[],
    u_prompt BIGINT[], u_completion BIGINT[], u_cached BIGINT[], u_latency DOUBLE PRECISION[],
    u_ttft DOUBLE PRECISION[], u_status INT[], u_error TEXT[], u_stream INT[],
    u_created DOUBLE PRECISION[], u_protocol TEXT[], u_reason TEXT[], u_fallbacks TEXT[],
    OUT charged BIGINT[], OUT balances BIGINT[])
LANGUAGE plpgsql AS $$
DECLARE
    unsettled TEXT[];
BEGIN
    SELECT COALESCE(array_agg(request_id ORDER BY request_id) FILTER (WHERE state <> 'settled'), '{}')
    INTO unsettled
    FROM (SELECT request_id, state FROM reservations
          WHERE request_id = ANY(p_ids) ORDER BY request_id FOR UPDATE) r;
    SELECT s.charged, s.balances INTO charged, balances FROM ro_settle_many(p_ids, p_costs, p_now) s;
    IF cardinality(unsettled) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO usage (request_id, key_id, account_id, requested_model, routed_model, provider,
                       prompt_tokens, completion_tokens, cached_tokens, cost_micros, latency_ms, ttft_ms,
                       status, error_type, stream, created_at, protocol, route_reason, fallbacks)
    SELECT t.id, t.key, t.acc, t.req, t.routed, t.prov, t.pt, t.ct, t.cached, t.charge, t.lat, t.ttft,
           t.status, t.err, t.stream, t.created, t.proto, t.reason, t.fb
    FROM (SELECT u.*, row_number() OVER (PARTITION BY u.id ORDER BY u.n) AS k
          FROM unnest(p_ids, u_key, u_account, u_requested, u_routed, u_provider, u_prompt, u_completion,
                      u_cached, charged, u_latency, u_ttft, u_status, u_error, u_stream, u_created,
                      u_protocol, u_reason, u_fallbacks, p_has_usage) WITH ORDINALITY
               AS u(id, key, acc, req, routed, prov, pt, ct, cached, charge, lat, ttft, status, err, stream,
                    created, proto, reason, fb, has, n)) t
    JOIN unnest(unsettled) AS o(id) ON o.id = t.id
    WHERE t.k = 1 AND t.has AND t.charge IS NOT NULL
    ORDER BY t.n;
END $$
"""


# -- pg_0003_batch: the same two batch operations, holding the hot rows for less time ------------------
# Every request of one account updates that account's row, and every request of one key its key's row:
# these are the hot rows, and the batches of all gateway processes queue on them (a row lock is held
# until COMMIT). So the routines below do every write that does not depend on a hot row BEFORE locking
# one, and lock the hot rows only for the decisions and the two UPDATEs that need them:
# - reserve: the reservation rows are inserted first (new rows; nobody can be waiting for them), the
#   key and account rows are then locked and the decisions taken as before; a refused item's row is
#   deleted again in the same transaction (never visible to anyone).
# - settle: an 'open' reservation's charge is min(cost, hold), whatever the balance: those are settled
#   by one UPDATE that locks and writes the reservation rows at once (no SELECT ... FOR UPDATE before
#   it), and their ledger and usage rows are inserted, all before the key and account rows are
#   locked. Only then are the key and account rows locked, for the balances returned and the two
#   UPDATEs. The rare items that need the hot rows' values (an 'expired' reservation: charge what the
#   balance and the cap still cover) are settled after that lock, in batch order, as in pg_0001.
# Results are exactly those of ro_reserve_many / ro_settle_record_many (pg_0001/pg_0002), item by
# item, in order; the ledger rows of one batch may be inserted in another order (open items first).
# Locks: reservations, then keys (ascending id), then accounts (ascending id), as everywhere. The hot
# rows are locked FOR NO KEY UPDATE (the lock an UPDATE of a non-key column takes), which does not
# conflict with the FOR KEY SHARE lock that a ledger row's foreign key check takes on its account:
# so inserting ledger rows before locking the account cannot wait on, nor be waited on by, a
# transaction that holds the account row (every lock on accounts/api_keys in the store is
# FOR NO KEY UPDATE or an UPDATE; adjust_balance included).
# A request id that already has a reservation raises unique_violation for the whole reserve batch,
# as before (the store then retries the items one by one) - also when that item would be refused.
_RESERVE_BATCH_DDL = """
CREATE OR REPLACE FUNCTION ro_reserve_batch(p_ids TEXT[], p_accounts BIGINT[], p_keys BIGINT[],
                                            p_amounts BIGINT[], p_expires DOUBLE PRECISION[])
RETURNS BOOLEAN[] LANGUAGE plpgsql AS $$
DECLARE
    n INT := COALESCE(cardinality(p_ids), 0);
    key_ids BIGINT[]; key_room BIGINT[]; key_add BIGINT[];
    acc_ids BIGINT[]; acc_avail BIGINT[]; acc_add BIGINT[];
    granted BOOLEAN[] := '{}'; refused TEXT[] := '{}';
    ki INT; ai INT; ok BOOLEAN;
BEGIN
    IF n = 0 THEN
        RETURN granted;
    END IF;
    INSERT INTO reservations (request_id, account_id, key_id, amount_micros, expires_at)
    SELECT t.id, t.acc, t.key, t.amount, t.exp
    FROM unnest(p_ids, p_accounts, p_keys, p_amounts, p_expires) AS t(id, acc, key, amount, exp);
    SELECT array_agg(id ORDER BY id), array_agg(spend_cap_micros - spent_micros - reserved_micros ORDER BY id)
    INTO key_ids, key_room
    FROM (SELECT id, spend_cap_micros, spent_micros, reserved_micros FROM api_keys
          WHERE id = ANY(p_keys) ORDER BY id FOR NO KEY UPDATE) k;
    SELECT array_agg(id ORDER BY id), array_agg(balance_micros - reserved_micros ORDER BY id)
    INTO acc_ids, acc_avail
    FROM (SELECT id, balance_micros, reserved_micros FROM accounts
          WHERE id = ANY(p_accounts) ORDER BY id FOR NO KEY UPDATE) a;
    key_add := array_fill(0::BIGINT, ARRAY[COALESCE(cardinality(key_ids), 0)]);
    acc_add := array_fill(0::BIGINT, ARRAY[COALESCE(cardinality(acc_ids), 0)]);
    FOR i IN 1 .. n LOOP
        ki := array_position(key_ids, p_keys[i]);
        ai := array_position(acc_ids, p_accounts[i]);
        ok := ki IS NOT NULL AND ai IS NOT NULL AND acc_avail[ai] >= p_amounts[i]
              AND (key_room[ki] IS NULL OR key_room[ki] >= p_amounts[i]);
        IF ok THEN
            acc_avail[ai] := acc_avail[ai] - p_amounts[i];
            acc_add[ai] := acc_add[ai] + p_amounts[i];
            key_room[ki] := key_room[ki] - p_amounts[i];       -- stays NULL when there is no cap
            key_add[ki] := key_add[ki] + p_amounts[i];
        ELSE
            refused := refused || p_ids[i];
        END IF;
        granted := granted || ok;
    END LOOP;
    IF cardinality(refused) > 0 THEN
        DELETE FROM reservations WHERE request_id = ANY(refused);
    END IF;
    UPDATE api_keys k SET reserved_micros = k.reserved_micros + t.add
    FROM unnest(key_ids, key_add) AS t(id, add) WHERE k.id = t.id AND t.add <> 0;
    UPDATE accounts a SET reserved_micros = a.reserved_micros + t.add
    FROM unnest(acc_ids, acc_add) AS t(id, add) WHERE a.id = t.id AND t.add <> 0;
    RETURN granted;
END $$
"""

# ro_settle_batch: the arguments and results of ro_settle_record_many (pg_0002).
_SETTLE_BATCH_DDL = """
CREATE OR REPLACE FUNCTION ro_settle_batch(
    p_ids TEXT[], p_costs BIGINT[], p_now DOUBLE PRECISION, p_has_usage BOOLEAN[],
    u_key BIGINT[], u_account BIGINT[], u_requested TEXT[], u_routed TEXT[], u_provider TEXT[],
    u_prompt BIGINT[], u_completion BIGINT[], u_cached BIGINT[], u_latency DOUBLE PRECISION[],
    u_ttft DOUBLE PRECISION[], u_status INT[], u_error TEXT[], u_stream INT[],
    u_created DOUBLE PRECISION[], u_protocol TEXT[], u_reason TEXT[], u_fallbacks TEXT[],
    OUT charged BIGINT[], OUT balances BIGINT[])
LANGUAGE plpgsql AS $$
DECLARE
    n INT := COALESCE(cardinality(p_ids), 0);
    -- settled by the first UPDATE (were 'open'): id, account, key, hold, charge, first item index
    d_ids TEXT[]; d_acc BIGINT[]; d_key BIGINT[]; d_amount BIGINT[]; d_charge BIGINT[]; d_k INT[];
    -- the others that exist (settled before, expired, or open but not yet visible to that UPDATE)
    o_ids TEXT[]; o_acc BIGINT[]; o_key BIGINT[]; o_amount BIGINT[]; o_state TEXT[]; o_charged BIGINT[];
    -- of those, settled after the hot rows are locked: id, account, charge, item index
    x_ids TEXT[] := '{}'; x_acc BIGINT[] := '{}'; x_charge BIGINT[] := '{}'; x_k INT[] := '{}';
    key_ids BIGINT[]; key_room BIGINT[]; key_release BIGINT[]; key_spend BIGINT[];
    acc_ids BIGINT[]; acc_balance BIGINT[]; acc_reserved BIGINT[]; acc_release BIGINT[]; acc_spend BIGINT[];
    di INT; oi INT; ki INT; ai INT; charge BIGINT; hold BIGINT; distinct_ids INT;
BEGIN
    charged := '{}';
    balances := '{}';
    IF n = 0 THEN
        RETURN;
    END IF;
    -- 1. open reservations: charge min(cost, hold), first occurrence of each id; no hot row needed
    WITH t AS (SELECT DISTINCT ON (u.id) u.id, u.cost, u.k::INT AS k
               FROM unnest(p_ids, p_costs) WITH ORDINALITY AS u(id, cost, k) ORDER BY u.id, u.k),
         d AS (UPDATE reservations r SET state = 'settled', charged_micros = LEAST(t.cost, r.amount_micros)
               FROM t WHERE r.request_id = t.id AND r.state = 'open'
               RETURNING r.request_id, r.account_id, r.key_id, r.amount_micros, r.charged_micros, t.k)
    SELECT array_agg(request_id), array_agg(account_id), array_agg(key_id), array_agg(amount_micros),
           array_agg(charged_micros), array_agg(k), (SELECT count(*) FROM t)
    INTO d_ids, d_acc, d_key, d_amount, d_charge, d_k, distinct_ids FROM d;
    IF COALESCE(cardinality(d_ids), 0) < distinct_ids THEN
        SELECT array_agg(request_id ORDER BY request_id), array_agg(account_id ORDER BY request_id),
               array_agg(key_id ORDER BY request_id), array_agg(amount_micros ORDER BY request_id),
               array_agg(state ORDER BY request_id), array_agg(charged_micros ORDER BY request_id)
        INTO o_ids, o_acc, o_key, o_amount, o_state, o_charged
        FROM (SELECT request_id, account_id, key_id, amount_micros, state, charged_micros FROM reservations
              WHERE request_id = ANY(p_ids) AND request_id <> ALL(COALESCE(d_ids, '{}'))
              ORDER BY request_id FOR NO KEY UPDATE) r;
    END IF;
    IF d_ids IS NOT NULL THEN
        INSERT INTO ledger (account_id, amount_micros, kind, note, request_id, created_at)
        SELECT d.acc, -d.charge, 'charge', '', d.id, p_now
        FROM unnest(d_ids, d_acc, d_charge, d_k) AS d(id, acc, charge, k) WHERE d.charge > 0 ORDER BY d.k;
        INSERT INTO usage (request_id, key_id, account_id, requested_model, routed_model, provider,
                           prompt_tokens, completion_tokens, cached_tokens, cost_micros, latency_ms, ttft_ms,
                           status, error_type, stream, created_at, protocol, route_reason, fallbacks)
        SELECT u.id, u.key, u.acc, u.req, u.routed, u.prov, u.pt, u.ct, u.cached, d.charge, u.lat, u.ttft,
               u.status, u.err, u.stream, u.created, u.proto, u.reason, u.fb
        FROM unnest(d_k, d_charge) AS d(k, charge)
        JOIN unnest(p_ids, u_key, u_account, u_requested, u_routed, u_provider, u_prompt, u_completion, u_cached,
                    u_latency, u_ttft, u_status, u_error, u_stream, u_created, u_protocol, u_reason, u_fallbacks,
                    p_has_usage) WITH ORDINALITY
             AS u(id, key, acc, req, routed, prov, pt, ct, cached, lat, ttft, status, err, stream, created, proto,
                  reason, fb, has, n) ON u.n = d.k
        WHERE u.has ORDER BY d.k;
    END IF;
    -- 2. the hot rows, for the balances returned and the expired items' charges
    SELECT array_agg(id ORDER BY id), array_agg(spend_cap_micros - spent_micros - reserved_micros ORDER BY id)
    INTO key_ids, key_room
    FROM (SELECT id, spend_cap_micros, spent_micros, reserved_micros FROM api_keys
          WHERE id = ANY(d_key || o_key) ORDER BY id FOR NO KEY UPDATE) k;
    SELECT array_agg(id ORDER BY id), array_agg(balance_micros ORDER BY id), array_agg(reserved_micros ORDER BY id)
    INTO acc_ids, acc_balance, acc_reserved
    FROM (SELECT id, balance_micros, reserved_micros FROM accounts
          WHERE id = ANY(d_acc || o_acc) ORDER BY id FOR NO KEY UPDATE) a;
    key_release := array_fill(0::BIGINT, ARRAY[COALESCE(cardinality(key_ids), 0)]);
    key_spend := key_release;
    acc_release := array_fill(0::BIGINT, ARRAY[COALESCE(cardinality(acc_ids), 0)]);
    acc_spend := acc_release;
    FOR i IN 1 .. n LOOP
        di := array_position(d_ids, p_ids[i]);
        IF di IS NOT NULL THEN
            ai := array_position(acc_ids, d_acc[di]);
            IF d_k[di] = i THEN                         -- settled by step 1: apply it to the hot rows
                ki := array_position(key_ids, d_key[di]);
                charge := d_charge[di];
                hold := d_amount[di];
                acc_balance[ai] := acc_balance[ai] - charge;
                acc_reserved[ai] := acc_reserved[ai] - hold;
                acc_release[ai] := acc_release[ai] + hold;
                acc_spend[ai] := acc_spend[ai] + charge;
                key_room[ki] := key_room[ki] + hold - charge;
                key_release[ki] := key_release[ki] + hold;
                key_spend[ki] := key_spend[ki] + charge;
            END IF;                                     -- else a repeat within the batch: its first charge
            charged := charged || d_charge[di];
            balances := balances || acc_balance[ai];
            CONTINUE;
        END IF;
        oi := array_position(o_ids, p_ids[i]);
        IF oi IS NULL THEN                              -- no reservation
            charged := charged || NULL::BIGINT;
            balances := balances || NULL::BIGINT;
            CONTINUE;
        END IF;
        ai := array_position(acc_ids, o_acc[oi]);
        IF o_state[oi] = 'settled' THEN
            charged := charged || o_charged[oi];
            balances := balances || acc_balance[ai];
            CONTINUE;
        END IF;
        ki := array_position(key_ids, o_key[oi]);
        IF o_state[oi] = 'open' THEN
            charge := LEAST(p_costs[i], o_amount[oi]);
            hold := o_amount[oi];
        ELSE
            charge := GREATEST(0, LEAST(p_costs[i], o_amount[oi], acc_balance[ai] - acc_reserved[ai], key_room[ki]));
            hold := 0;
        END IF;
        acc_balance[ai] := acc_balance[ai] - charge;
        acc_reserved[ai] := acc_reserved[ai] - hold;
        acc_release[ai] := acc_release[ai] + hold;
        acc_spend[ai] := acc_spend[ai] + charge;
        key_room[ki] := key_room[ki] + hold - charge;
        key_release[ki] := key_release[ki] + hold;
        key_spend[ki] := key_spend[ki] + charge;
        o_state[oi] := 'settled';
        o_charged[oi] := charge;
        x_ids := x_ids || p_ids[i];
        x_acc := x_acc || o_acc[oi];
        x_charge := x_charge || charge;
        x_k := x_k || i;
        charged := charged || charge;
        balances := balances || acc_balance[ai];
    END LOOP;
    IF cardinality(x_ids) > 0 THEN
        UPDATE reservations r SET state = 'settled', charged_micros = t.charge
        FROM unnest(x_ids, x_charge) AS t(id, charge) WHERE r.request_id = t.id;
        INSERT INTO ledger (account_id, amount_micros, kind, note, request_id, created_at)
        SELECT x.acc, -x.charge, 'charge', '', x.id, p_now
        FROM unnest(x_ids, x_acc, x_charge, x_k) AS x(id, acc, charge, k) WHERE x.charge > 0 ORDER BY x.k;
        INSERT INTO usage (request_id, key_id, account_id, requested_model, routed_model, provider,
                           prompt_tokens, completion_tokens, cached_tokens, cost_micros, latency_ms, ttft_ms,
                           status, error_type, stream, created_at, protocol, route_reason, fallbacks)
        SELECT u.id, u.key, u.acc, u.req, u.routed, u.prov, u.pt, u.ct, u.cached, x.charge, u.lat, u.ttft,
               u.status, u.err, u.stream, u.created, u.proto, u.reason, u.fb
        FROM unnest(x_k, x_charge) AS x(k, charge)
        JOIN unnest(p_ids, u_key, u_account, u_requested, u_routed, u_provider, u_prompt, u_completion, u_cached,
                    u_latency, u_ttft, u_status, u_error, u_stream, u_created, u_protocol, u_reason, u_fallbacks,
                    p_has_usage) WITH ORDINALITY
             AS u(id, key, acc, req, routed, prov, pt, ct, cached, lat, ttft, status, err, stream, created, proto,
                  reason, fb, has, n) ON u.n = x.k
        WHERE u.has ORDER BY x.k;
    END IF;
    UPDATE api_keys k SET reserved_micros = k.reserved_micros - t.rel, spent_micros = k.spent_micros + t.spend
    FROM unnest(key_ids, key_release, key_spend) AS t(id, rel, spend)
    WHERE k.id = t.id AND (t.rel <> 0 OR t.spend <> 0);
    UPDATE accounts a SET reserved_micros = a.reserved_micros - t.rel, balance_micros = a.balance_micros - t.spend,
                          spent_micros = a.spent_micros + t.spend
    FROM unnest(acc_ids, acc_release, acc_spend) AS t(id, rel, spend)
    WHERE a.id = t.id AND (t.rel <> 0 OR t.spend <> 0);
END $$
"""

PG_MIGRATIONS: list[tuple[str, str]] = [
    ("pg_0001_batch_routines", _RESERVE_MANY_DDL + ";\n" + _SETTLE_MANY_DDL),
    ("pg_0002_settle_record", _SETTLE_RECORD_MANY_DDL),
    ("pg_0003_batch", _RESERVE_BATCH_DDL + ";\n" + _SETTLE_BATCH_DDL),
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

# ro_settle_record_many's arguments ($1 ids, $2 costs, $3 now, $4 has_usage, $5..$21 usage columns),
# $22 synchronous_commit -> one row: (charged BIGINT[], balances BIGINT[], _).
SETTLE_RECORD_MANY = (
    "SELECT s.charged, s.balances, set_config('synchronous_commit', $22::TEXT, true) "
    "FROM ro_settle_record_many($1::TEXT[], $2::BIGINT[], $3::DOUBLE PRECISION, $4::BOOLEAN[], "
    "$5::BIGINT[], $6::BIGINT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[], $11::BIGINT[], "
    "$12::BIGINT[], $13::DOUBLE PRECISION[], $14::DOUBLE PRECISION[], $15::INT[], $16::TEXT[], "
    "$17::INT[], $18::DOUBLE PRECISION[], $19::TEXT[], $20::TEXT[], $21::TEXT[]) s")


# pg_0003: as RESERVE_MANY and SETTLE_RECORD_MANY (same parameters, same result rows).
RESERVE_BATCH = RESERVE_MANY.replace("ro_reserve_many(", "ro_reserve_batch(")
SETTLE_BATCH = SETTLE_RECORD_MANY.replace("ro_settle_record_many(", "ro_settle_batch(")

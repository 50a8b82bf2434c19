"""Ordered, named schema migrations, applied once each (recorded in `_migrations`).

The SQL is portable between SQLite and PostgreSQL except for the id column type, spelled {ID}.
A migration whose SQL differs by database gives a dict instead, {"sqlite": ..., "postgresql": ...}
(read through `migration_sql`); an empty string there means "nothing to do on that database".
"""
from __future__ import annotations

__all__ = ["MIGRATIONS", "migration_sql"]

MIGRATIONS: list[tuple[str, str | dict[str, str]]] = [
    ("0001_accounts_keys", """
CREATE TABLE accounts (
    id {ID},
    name TEXT NOT NULL,
    balance_micros BIGINT NOT NULL DEFAULT 0,
    reserved_micros BIGINT NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0),
    spent_micros BIGINT NOT NULL DEFAULT 0,
    markup_bps INTEGER NOT NULL DEFAULT 0,
    rpm INTEGER, tpm INTEGER, concurrency INTEGER,
    created_at DOUBLE PRECISION NOT NULL,
    CHECK (balance_micros - reserved_micros >= 0)
);
CREATE TABLE api_keys (
    id {ID},
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL DEFAULT 'user',
    revoked INTEGER NOT NULL DEFAULT 0,
    expires_at DOUBLE PRECISION,
    spend_cap_micros BIGINT,
    spent_micros BIGINT NOT NULL DEFAULT 0,
    reserved_micros BIGINT NOT NULL DEFAULT 0,
    allowed_models TEXT NOT NULL DEFAULT '',
    rpm INTEGER, tpm INTEGER, concurrency INTEGER,
    strategy TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE auth_version (id INTEGER PRIMARY KEY, version BIGINT NOT NULL);
INSERT INTO auth_version (id, version) VALUES (1, 1);
"""),
    ("0002_ledger_reservations", """
CREATE TABLE ledger (
    id {ID},
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    amount_micros BIGINT NOT NULL,
    kind TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    request_id TEXT UNIQUE,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX ledger_account ON ledger(account_id, id);
CREATE TABLE reservations (
    request_id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL,
    key_id BIGINT NOT NULL,
    amount_micros BIGINT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL DEFAULT 'open',
    charged_micros BIGINT
);
CREATE INDEX reservations_open ON reservations(state, expires_at);
"""),
    ("0003_usage", """
CREATE TABLE usage (
    request_id TEXT NOT NULL,
    key_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    requested_model TEXT NOT NULL,
    routed_model TEXT NOT NULL,
    provider TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost_micros BIGINT NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    ttft_ms DOUBLE PRECISION,
    status INTEGER NOT NULL,
    error_type TEXT,
    stream INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX usage_account_time ON usage(account_id, created_at);
CREATE INDEX usage_key_time ON usage(key_id, created_at);
"""),
    ("0004_usage_protocol_route", """
ALTER TABLE usage ADD COLUMN protocol TEXT NOT NULL DEFAULT 'chat';
ALTER TABLE usage ADD COLUMN route_reason TEXT;
ALTER TABLE usage ADD COLUMN fallbacks TEXT;
"""),
    ("0005_audit_log", """
CREATE TABLE audit_log (
    id {ID},
    created_at DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_time ON audit_log(created_at);
ALTER TABLE ledger ADD COLUMN actor TEXT NOT NULL DEFAULT '';
"""),
    ("0006_responses", """
CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL,
    key_id BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    body TEXT NOT NULL,
    context TEXT NOT NULL
);
CREATE INDEX responses_account ON responses(account_id, created_at);
"""),

    # Token counts as upstreams really report them (3e9 completion tokens overflowed INTEGER on
    # PostgreSQL; SQLite integers are already 64-bit), and where usage rows that could not be
    # written go (see services/usage.py and Billing: logged, counted, kept here for an operator).
    ("0009_usage_bigint", {
        "postgresql": """
ALTER TABLE usage ALTER COLUMN prompt_tokens TYPE BIGINT,
                  ALTER COLUMN completion_tokens TYPE BIGINT,
                  ALTER COLUMN cached_tokens TYPE BIGINT;
CREATE TABLE usage_rejects (
    id {ID},
    request_id TEXT,
    reason TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
""",
        "sqlite": """
CREATE TABLE usage_rejects (
    id {ID},
    request_id TEXT,
    reason TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
"""}),
    ("0007_console_users", """
CREATE TABLE console_users (
    id {ID},
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    role TEXT NOT NULL DEFAULT 'user',
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX console_users_account ON console_users(account_id);
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES console_users(id),
    csrf_token TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions(user_id);
CREATE INDEX usage_account_rollup ON usage(account_id, created_at, routed_model, key_id, status,
                                           prompt_tokens, completion_tokens, cost_micros);
CREATE INDEX usage_time_rollup ON usage(created_at, routed_model, key_id, status,
                                        prompt_tokens, completion_tokens, cost_micros);
"""),
    ("0008_key_wtp", """
ALTER TABLE api_keys ADD COLUMN willingness_to_pay DOUBLE PRECISION;
"""),
    # One target's page (an account's console page, GET /admin/audit?target=) read by
    # `WHERE target = ? AND id < ? ORDER BY id DESC`: without it, a deep page walked the log by id.
    ("0010_audit_target", """
CREATE INDEX audit_log_target ON audit_log(target, id);
"""),
    # Stored responses expire (responses_retention_days): the purge deletes the oldest first, of every
    # account, by `WHERE created_at < ? ORDER BY created_at LIMIT ?`.
    ("0011_responses_time", """
CREATE INDEX responses_time ON responses(created_at);
"""),
    # A credit grant (the demo's) withdrawn in full: Store.withdraw_unspent_grant found its earlier
    # complete withdrawal by the ledger note's exact text (a partial one's has a suffix). One row per
    # grant now; a database from before still has only the note, which still counts.
    ("0012_grant_withdrawals", """
CREATE TABLE grant_withdrawals (
    grant_id BIGINT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    ledger_id BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
"""),
]


def migration_sql(sql: str | dict[str, str], dialect: str) -> str:
    """The SQL of one migration for `dialect` ("sqlite" or "postgresql")."""
    return sql if isinstance(sql, str) else sql[dialect]

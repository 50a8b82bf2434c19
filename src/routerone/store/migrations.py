"""Ordered, named schema migrations, applied once each (recorded in `_migrations`).

The SQL is portable between SQLite and PostgreSQL except for the id column type, spelled {ID}.
"""
from __future__ import annotations

__all__ = ["MIGRATIONS"]

MIGRATIONS: list[tuple[str, str]] = [
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
    ("0008_key_wtp", """
ALTER TABLE api_keys ADD COLUMN willingness_to_pay DOUBLE PRECISION;
"""),
]

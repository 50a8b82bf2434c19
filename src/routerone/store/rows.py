"""Row -> dataclass conversions shared by the SQL stores (both return tuples in column order)."""
from __future__ import annotations

from .base import Account, ApiKey, LedgerEntry, Limits, UsageRecord

ACCOUNT_COLS = "id, name, balance_micros, reserved_micros, spent_micros, markup_bps, rpm, tpm, concurrency, created_at"
KEY_COLS = ("id, account_id, prefix, name, role, revoked, expires_at, spend_cap_micros, spent_micros, "
            "reserved_micros, allowed_models, rpm, tpm, concurrency, strategy, created_at, "
            "willingness_to_pay")
LEDGER_COLS = "id, account_id, amount_micros, kind, note, request_id, created_at"
USAGE_COLS = ("request_id, key_id, account_id, requested_model, routed_model, provider, prompt_tokens, "
              "completion_tokens, cached_tokens, cost_micros, latency_ms, ttft_ms, status, error_type, "
              "stream, created_at, protocol, route_reason, fallbacks")
USAGE_COL_COUNT = USAGE_COLS.count(",") + 1


def account(r) -> Account:
    return Account(id=r[0], name=r[1], balance_micros=r[2], reserved_micros=r[3], spent_micros=r[4],
                   markup_bps=r[5], limits=Limits(r[6], r[7], r[8]), created_at=r[9])


def api_key(r) -> ApiKey:
    return ApiKey(id=r[0], account_id=r[1], prefix=r[2], name=r[3], role=r[4], revoked=bool(r[5]),
                  expires_at=r[6], spend_cap_micros=r[7], spent_micros=r[8], reserved_micros=r[9],
                  allowed_models=tuple(m for m in (r[10] or "").split(",") if m),
                  limits=Limits(r[11], r[12], r[13]), strategy=r[14], created_at=r[15],
                  willingness_to_pay=r[16])


def ledger_entry(r) -> LedgerEntry:
    return LedgerEntry(id=r[0], account_id=r[1], amount_micros=r[2], kind=r[3], note=r[4],
                       request_id=r[5], created_at=r[6])


def usage_record(r) -> UsageRecord:
    return UsageRecord(*r[:14], stream=bool(r[14]), created_at=r[15], protocol=r[16], route_reason=r[17],
                       fallbacks=r[18])


def usage_tuple(u: UsageRecord) -> tuple:
    return (u.request_id, u.key_id, u.account_id, u.requested_model, u.routed_model, u.provider,
            u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.cost_micros, u.latency_ms,
            u.ttft_ms, u.status, u.error_type, int(u.stream), u.created_at, u.protocol, u.route_reason, u.fallbacks)

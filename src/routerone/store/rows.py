"""Row -> dataclass conversions shared by the SQL stores (both return tuples in column order).

`usage_tuple` is also where a usage record is made storable whatever its values came from (an
upstream's error code, a client's model name): text loses NUL and other control characters (which
PostgreSQL's TEXT refuses) and lone surrogates (which UTF-8 cannot encode), and is capped in length;
integers are clamped into BIGINT's range and non-finite floats dropped. Billing decides what an
absurd token count means for the charge (services/billing.py); this only guarantees the write.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict

from .base import Account, ApiKey, AuditEntry, LedgerEntry, Limits, UsageRecord

ACCOUNT_COLS = "id, name, balance_micros, reserved_micros, spent_micros, markup_bps, rpm, tpm, concurrency, created_at"
KEY_COLS = ("id, account_id, prefix, name, role, revoked, expires_at, spend_cap_micros, spent_micros, "
            "reserved_micros, allowed_models, rpm, tpm, concurrency, strategy, created_at, "
            "willingness_to_pay")
LEDGER_COLS = "id, account_id, amount_micros, kind, note, request_id, created_at, actor"
MAX_ROW_ID = 2**63 - 1           # above every id (BIGINT): "before no id in particular"
AUDIT_COLS = "id, created_at, actor, action, target, detail"
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
                       request_id=r[5], created_at=r[6], actor=r[7])


def audit_entry(r) -> AuditEntry:
    return AuditEntry(id=r[0], created_at=r[1], actor=r[2], action=r[3], target=r[4], detail=r[5])


def usage_record(r) -> UsageRecord:
    return UsageRecord(*r[:14], stream=bool(r[14]), created_at=r[15], protocol=r[16], route_reason=r[17],
                       fallbacks=r[18])


BIGINT_MAX = 2**63 - 1
TEXT_CAP = 200          # ids, model and provider names, error codes
LONG_TEXT_CAP = 500     # the routing reason, the fallbacks tried
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def clean_text(value: object, cap: int = TEXT_CAP) -> str | None:
    """Text any store accepts: control characters (but tab and newline) and lone surrogates become
    U+FFFD, NUL included; at most `cap` characters."""
    if value is None:
        return None
    s = value if isinstance(value, str) else str(value)
    if len(s) <= cap and s.isascii() and s.isprintable():     # the usual case, at C speed
        return s
    if len(s) > cap:
        s = s[:cap - 1] + "\u2026"
    return _UNSTORABLE.sub("\ufffd", s)


def clamp_int(value: object, lo: int = 0, hi: int = BIGINT_MAX) -> int:
    if type(value) is int and lo <= value <= hi:
        return value
    try:
        v = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return lo
    return min(max(v, lo), hi)


def _finite(value: object, default: float | None = 0.0) -> float | None:
    if type(value) is float and math.isfinite(value):
        return value
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


def usage_tuple(u: UsageRecord) -> tuple:
    return (clean_text(u.request_id) or "", clamp_int(u.key_id, -BIGINT_MAX), clamp_int(u.account_id, -BIGINT_MAX),
            clean_text(u.requested_model) or "", clean_text(u.routed_model) or "", clean_text(u.provider) or "",
            clamp_int(u.prompt_tokens), clamp_int(u.completion_tokens), clamp_int(u.cached_tokens),
            clamp_int(u.cost_micros, -BIGINT_MAX), _finite(u.latency_ms), _finite(u.ttft_ms, None),
            clamp_int(u.status, 0, 999), clean_text(u.error_type), int(bool(u.stream)), _finite(u.created_at),
            clean_text(u.protocol, 40) or "chat", clean_text(u.route_reason, LONG_TEXT_CAP),
            clean_text(u.fallbacks, LONG_TEXT_CAP))


def reject_json(u: object) -> str:
    """A record that could not be written, as JSON text any store accepts (for usage_rejects)."""
    try:
        data = asdict(u)  # type: ignore[call-overload]
    except TypeError:
        data = {"repr": repr(u)}
    return json.dumps(data, ensure_ascii=True, default=repr)


def key_page_where(account_id: int | None, cursor_id: int | None, op: str, mark: str) -> tuple[str, tuple]:
    """The WHERE of a page of keys: one account's (or all), past the cursor id (`op` ">" oldest
    first, "<" newest first); `mark` is the driver's placeholder ("?" or "$" numbered)."""
    conds, args = [], []
    for cond, value in (("account_id =", account_id), (f"id {op}", cursor_id)):
        if value is not None:
            args.append(value)
            conds.append(f"{cond} {mark if mark == '?' else mark + str(len(args))}")
    return ("WHERE " + " AND ".join(conds) if conds else ""), tuple(args)



def count_keys_sql(active_only: bool, at_most: int | None) -> str:
    """Counts one account's keys (the placeholder is `{account}`), reading at most `at_most` rows."""
    inner = "SELECT 1 FROM api_keys WHERE account_id = {account}" + (" AND revoked = 0" if active_only else "")
    return f"SELECT COUNT(*) FROM ({inner}{'' if at_most is None else f' LIMIT {int(at_most)}'}) counted"

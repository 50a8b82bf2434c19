"""The rate-limit seam. Two implementations (memory.py, redis.py), one contract suite.

A `LimitRule` is one bucket (`key:12`, `acct:3`, `dep:openai/gpt-4o`) with up to three limits:
requests per window (`rpm`), tokens per window (`tpm`) and in-flight requests (`concurrency`).
The window is 60 s in production; limiters take `window_s` so tests can shrink it.

Algorithm, shared by both implementations: a sliding-window *log* per scope.
- Every admitted request is logged with its admission time and its reserved tokens; an entry counts
  while `now - admitted_at < window_s` and is swept (with its tokens) once it is older.
- Admit iff, for every rule, `logged + 1 <= rpm` and `logged_tokens + tokens <= tpm` and
  `live_leases + 1 <= concurrency`. Then every rule records the request, or none does (all-or-nothing).
- Concurrency slots are leases that expire `lease_s` after admission, so a dead process cannot leak
  them; `release` ends the lease early and lowers the logged tokens to `tokens_used` (the give-back).

Exactness: for every rule and every instant t, the requests admitted in (t - window, t] number at
most `rpm` and their logged tokens sum to at most `tpm`; and a request is refused only when admitting
it would break that bound. So R+k requests inside one window give exactly R admissions, however they
are spread over coroutines, processes or machines (Redis runs the check-and-record as one Lua script
against its own clock). No token bucket or fixed window: those admit up to 2R around a boundary.
Retry-After is when the oldest entries that must leave the window will have left, rounded up to whole
seconds (at least 1): exact for rpm and tpm, a 1 s hint for concurrency (leases end on release).

`acquire` is idempotent per (scope, request_id): a request id already counted in a scope is not
counted again (a retried Redis call whose reply was lost cannot double-count). Use a fresh id per
attempt when every attempt should count. `release` is idempotent too: it sets the logged tokens to
`min(logged, tokens_used)` and drops the lease. Tokens used beyond the reservation are not charged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence

__all__ = ["LimitRule", "LimitTicket", "LimitDecision", "Limiter", "DenyReason",
           "normalize_rules", "retry_after_s"]


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One bucket to check: scope like "key:12", "acct:3", "dep:openai/gpt-4o"."""
    scope: str
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class LimitTicket:
    """What `acquire` took, to hand back to `release`."""
    request_id: str
    rules: tuple[LimitRule, ...]
    tokens: int


class DenyReason:
    """Values of `LimitDecision.reason` (plain strings, for logs and metrics)."""
    RPM = "rpm"
    TPM = "tpm"
    CONCURRENCY = "concurrency"
    TOKENS_EXCEED_TPM = "tokens_exceed_tpm"    # asks for more than the whole tpm: retrying never helps
    UNAVAILABLE = "limiter_unavailable"        # Redis unreachable and failure_policy="closed"


@dataclass(frozen=True, slots=True)
class LimitDecision:
    allowed: bool
    ticket: LimitTicket | None
    retry_after_s: float                 # 0 when allowed; whole seconds >= 1 when denied
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* (see headers.py)
    denied_scope: str | None = None      # which rule refused
    reason: str | None = None            # a DenyReason value when denied


class Limiter(Protocol):
    async def acquire(self, rules: Sequence[LimitRule], request_id: str,
                      tokens: int) -> LimitDecision:
        """All-or-nothing: every rule takes 1 request, `tokens` tokens and 1 slot, or none does."""
        ...

    async def release(self, ticket: LimitTicket, tokens_used: int) -> None:
        """Free the slots; give back `ticket.tokens - tokens_used` when positive. Idempotent."""
        ...

    async def peek(self, rules: Sequence[LimitRule], tokens: int = 0) -> bool:
        """Would a 1-request, `tokens`-token acquire pass now? Consumes nothing."""
        ...

    async def close(self) -> None:
        ...

    async def ping(self) -> None:
        """Raise when the shared state cannot be reached (readiness); in-process: never."""
        ...


def normalize_rules(rules: Sequence[LimitRule]) -> tuple[LimitRule, ...]:
    """Drop rules without limits; merge repeated scopes into one rule with the tightest limits."""
    merged: dict[str, LimitRule] = {}
    for rule in rules:
        if rule.rpm is None and rule.tpm is None and rule.concurrency is None:
            continue
        for value in (rule.rpm, rule.tpm, rule.concurrency):
            if value is not None and value < 0:
                raise ValueError(f"limit rule {rule.scope!r}: limits must be >= 0, got {rule}")
        seen = merged.get(rule.scope)
        merged[rule.scope] = rule if seen is None else LimitRule(
            rule.scope, _tightest(seen.rpm, rule.rpm), _tightest(seen.tpm, rule.tpm),
            _tightest(seen.concurrency, rule.concurrency))
    return tuple(merged.values())


def _tightest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def retry_after_s(wait_s: float) -> float:
    """Seconds until capacity frees, as Retry-After wants them: whole, rounded up, at least 1."""
    return float(max(1, math.ceil(round(wait_s, 6))))

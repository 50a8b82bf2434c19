"""OpenAI's rate-limit response headers, computed from a limiter's view of each rule.

    x-ratelimit-limit-requests      rpm of the rule with the fewest requests left
    x-ratelimit-remaining-requests  requests it has left in the window (after this decision)
    x-ratelimit-reset-requests      time until it is back to its full limit, e.g. "1s", "6m0s", "20ms"
    x-ratelimit-{limit,remaining,reset}-tokens   the same for tokens (tpm)

Upstream caps (`dep:` scopes) describe Router One's providers, not the caller, so they are reported
only when the decision has no other rule with that kind of limit. Retry-After is the caller's job,
from `LimitDecision.retry_after_s`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from routerone.limits.base import LimitRule

__all__ = ["ScopeUsage", "UPSTREAM_SCOPE_PREFIX", "format_reset", "rate_limit_headers"]

UPSTREAM_SCOPE_PREFIX = "dep:"


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    """One rule's window after a decision: requests and tokens logged, seconds until all expire."""
    requests: int
    tokens: int
    reset_s: float


def format_reset(seconds: float) -> str:
    """A duration the way OpenAI (Go's time.Duration) writes it: 0s, 20ms, 1s, 1.5s, 6m0s, 1h2m3s."""
    ms = math.ceil(round(seconds * 1000, 6))
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}s" if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


def rate_limit_headers(rules: Sequence[LimitRule], usage: Sequence[ScopeUsage]) -> dict[str, str]:
    headers: dict[str, str] = {}
    req = _tightest(rules, usage, "rpm")
    if req is not None:
        rule, use = req
        headers["x-ratelimit-limit-requests"] = str(rule.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, rule.rpm - use.requests))
        headers["x-ratelimit-reset-requests"] = format_reset(use.reset_s if use.requests else 0.0)
    tok = _tightest(rules, usage, "tpm")
    if tok is not None:
        rule, use = tok
        headers["x-ratelimit-limit-tokens"] = str(rule.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, rule.tpm - use.tokens))
        headers["x-ratelimit-reset-tokens"] = format_reset(use.reset_s if use.tokens else 0.0)
    return headers


def _tightest(rules: Sequence[LimitRule], usage: Sequence[ScopeUsage],
              kind: str) -> tuple[LimitRule, ScopeUsage] | None:
    """The rule with the least left of `kind` (ties: the smaller limit), callers' scopes first."""
    best: tuple[bool, int, int] | None = None
    found: tuple[LimitRule, ScopeUsage] | None = None
    for rule, use in zip(rules, usage):
        limit = rule.rpm if kind == "rpm" else rule.tpm
        if limit is None:
            continue
        used = use.requests if kind == "rpm" else use.tokens
        rank = (rule.scope.startswith(UPSTREAM_SCOPE_PREFIX), limit - used, limit)
        if best is None or rank < best:
            best, found = rank, (rule, use)
    return found

"""In-process limiter: the embedded default for a single gateway process.

The sliding-window log described in base.py, kept per scope as
- `log`: a deque of (admitted_at, request_id) in admission order (the clock is monotonic),
- `tokens`: request_id -> tokens still counted for it (also the log's membership test),
- `token_sum`: the running sum of `tokens`,
- `leases`: request_id -> lease expiry, in expiry order (insertion order; `lease_s` is fixed).
Expired entries are popped from the front on every touch, so each entry costs O(1) once; a check
is O(1) per rule except when denying on tpm, which walks the log to find when enough tokens free.
Coroutines cannot interleave inside `acquire` (it never awaits), so check-and-record is atomic
under asyncio. Not thread-safe: one limiter per event loop. Idle scopes are dropped once a window.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Callable, Sequence

from routerone.limits.base import (DenyReason, LimitDecision, LimitRule, LimitTicket,
                                   normalize_rules, retry_after_s)
from routerone.limits.headers import ScopeUsage, rate_limit_headers

__all__ = ["MemoryLimiter"]

_CONCURRENCY_RETRY_S = 1.0


class _Scope:
    __slots__ = ("log", "tokens", "token_sum", "leases")

    def __init__(self) -> None:
        self.log: deque[tuple[float, str]] = deque()
        self.tokens: dict[str, int] = {}
        self.token_sum = 0
        self.leases: dict[str, float] = {}

    def sweep(self, now: float, horizon: float) -> None:
        log, tokens = self.log, self.tokens
        while log and log[0][0] <= horizon:
            self.token_sum -= tokens.pop(log.popleft()[1])
        leases = self.leases
        while leases:
            first = next(iter(leases))
            if leases[first] > now:
                break
            del leases[first]

    def usage(self, now: float, window_s: float) -> ScopeUsage:
        reset = self.log[-1][0] + window_s - now if self.log else 0.0
        return ScopeUsage(len(self.log), self.token_sum, reset)


class MemoryLimiter:
    def __init__(self, *, window_s: float = 60.0, lease_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if window_s <= 0 or lease_s <= 0:
            raise ValueError("window_s and lease_s must be > 0")
        self._window_s = window_s
        self._lease_s = lease_s
        self._clock = clock
        self._scopes: dict[str, _Scope] = {}
        self._next_gc = clock() + window_s

    async def acquire(self, rules: Sequence[LimitRule], request_id: str,
                      tokens: int) -> LimitDecision:
        if tokens < 0 or not request_id:
            raise ValueError("acquire needs a request_id and tokens >= 0")
        rules = normalize_rules(rules)
        now = self._clock()
        scopes = self._touch(rules, now)
        wait, denied, reason = self._check(rules, scopes, request_id, tokens, now)
        if denied is None:
            self._record(rules, scopes, request_id, tokens, now)
        headers = rate_limit_headers(rules, [s.usage(now, self._window_s) for s in scopes])
        if denied is not None:
            return LimitDecision(False, None, retry_after_s(wait), headers, denied, reason)
        return LimitDecision(True, LimitTicket(request_id, rules, tokens), 0.0, headers)

    async def release(self, ticket: LimitTicket, tokens_used: int) -> None:
        rid = ticket.request_id
        for rule in ticket.rules:
            scope = self._scopes.get(rule.scope)
            if scope is None:
                continue
            scope.leases.pop(rid, None)
            held = scope.tokens.get(rid)
            if held is not None and held > tokens_used:
                keep = max(0, tokens_used)
                scope.token_sum -= held - keep
                scope.tokens[rid] = keep

    async def peek(self, rules: Sequence[LimitRule], tokens: int = 0) -> bool:
        rules = normalize_rules(rules)
        now = self._clock()
        return self._check(rules, self._touch(rules, now), "", tokens, now)[1] is None

    async def close(self) -> None:
        self._scopes.clear()

    def _touch(self, rules: tuple[LimitRule, ...], now: float) -> list[_Scope]:
        if now >= self._next_gc:
            self._gc(now)
        horizon = now - self._window_s
        found = []
        for rule in rules:
            scope = self._scopes.get(rule.scope)
            if scope is None:
                scope = self._scopes[rule.scope] = _Scope()
            else:
                scope.sweep(now, horizon)
            found.append(scope)
        return found

    def _check(self, rules: tuple[LimitRule, ...], scopes: list[_Scope], rid: str, tokens: int,
               now: float) -> tuple[float, str | None, str | None]:
        """(seconds to wait, denied scope, reason); the binding rule is the one freeing last."""
        worst, denied, reason = 0.0, None, None
        for rule, scope in zip(rules, scopes):
            wait, why = self._rule_wait(rule, scope, rid, tokens, now)
            if why is None or reason == DenyReason.TOKENS_EXCEED_TPM:
                continue
            if denied is None or why == DenyReason.TOKENS_EXCEED_TPM or wait > worst:
                worst, denied, reason = wait, rule.scope, why
        return worst, denied, reason

    def _rule_wait(self, rule: LimitRule, scope: _Scope, rid: str, tokens: int,
                   now: float) -> tuple[float, str | None]:
        wait, why = 0.0, None
        if rid not in scope.tokens:
            log = scope.log
            if rule.tpm is not None and tokens > rule.tpm:
                return self._window_s, DenyReason.TOKENS_EXCEED_TPM
            if rule.rpm is not None and len(log) >= rule.rpm:
                wait, why = self._expiry(log[len(log) - rule.rpm][0], now), DenyReason.RPM
            if rule.tpm is not None and scope.token_sum + tokens > rule.tpm:
                tpm_wait = self._tokens_free_at(scope, rule.tpm - tokens, now)
                if why is None or tpm_wait > wait:
                    wait, why = tpm_wait, DenyReason.TPM
        if (rule.concurrency is not None and rid not in scope.leases
                and len(scope.leases) >= rule.concurrency and why is None):
            wait, why = _CONCURRENCY_RETRY_S, DenyReason.CONCURRENCY
        return wait, why

    def _tokens_free_at(self, scope: _Scope, target: int, now: float) -> float:
        """Seconds until the logged tokens drop to `target` as old entries leave the window."""
        remaining = scope.token_sum
        for admitted_at, rid in scope.log:
            remaining -= scope.tokens[rid]
            if remaining <= target:
                return self._expiry(admitted_at, now)
        return self._window_s

    def _expiry(self, admitted_at: float, now: float) -> float:
        return admitted_at + self._window_s - now

    def _record(self, rules: tuple[LimitRule, ...], scopes: list[_Scope], rid: str, tokens: int,
                now: float) -> None:
        for rule, scope in zip(rules, scopes):
            if (rule.rpm is not None or rule.tpm is not None) and rid not in scope.tokens:
                scope.log.append((now, rid))
                scope.tokens[rid] = tokens
                scope.token_sum += tokens
            if rule.concurrency is not None and rid not in scope.leases:
                scope.leases[rid] = now + self._lease_s

    def _gc(self, now: float) -> None:
        horizon = now - self._window_s
        for name, scope in list(self._scopes.items()):
            scope.sweep(now, horizon)
            if not scope.log and not scope.leases:
                del self._scopes[name]
        self._next_gc = now + self._window_s

    async def ping(self) -> None:
        return None

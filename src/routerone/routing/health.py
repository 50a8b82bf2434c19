"""Live health per deployment: moving averages of time to first token, tokens per second and
error rate, a cooldown (circuit breaker) for a deployment that keeps failing, and a retry budget.

The retry budget is gRPC's retry throttling (gRFC A6), per deployment: a bucket of
`retry_budget_tokens` tokens, full at start; a retryable failure takes one, a success gives back
`retry_budget_token_ratio`; the router retries a deployment only while more than half the bucket is
left. First attempts and failover to another deployment are never throttled, so in a steady
failure a deployment gets about one call per request instead of 1 + max_retries. Counted in
thousandths so the half-way test is exact. The moving averages and the retry budget are per process.

The cooldown is per process too unless a `board` shares it (routing/cooldown_redis.py with
`redis_url`; routing/cooldown_shared.py between the workers of `serve --workers N` without it): a
cooldown this process starts is published to the board, and a deployment another process cooled
down is skipped here too until its cooldown ends; `available` reads only the board's local copy
(no round trip). A success on a deployment ends its shared cooldown as it ends
the local one."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Health", "DeploymentHealth", "CooldownBoard"]

ALPHA = 0.2   # weight of the newest sample in the moving averages
# the longest cooldown a `CooldownBoard` shares (a later end, e.g. +inf written by another program, is none);
# here, not in cooldown_redis.py, so the workers' table (cooldown_shared.py) loads no Redis client
MAX_SHARED_COOLDOWN_MS = 7 * 86_400_000


@dataclass(slots=True)
class DeploymentHealth:
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    error_rate: float = 0.0
    requests: int = 0
    errors: int = 0
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    retry_milli_tokens: int = 0   # the retry budget's bucket, in thousandths of a token

    def as_dict(self, shared_until: float = 0.0) -> dict:
        """`shared_until`: the end of a cooldown another process started (a `CooldownBoard`'s)."""
        now = time.monotonic()
        return {"ttft_ms": self.ttft_ms, "tokens_per_s": self.tokens_per_s, "error_rate": round(self.error_rate, 4),
                "requests": self.requests, "errors": self.errors,
                "cooling_down": self.cooldown_until > now or shared_until > now,
                "retry_tokens": self.retry_milli_tokens / 1000}


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else old + ALPHA * (new - old)


class CooldownBoard(Protocol):
    """Cooldowns shared between processes (routing/cooldown_redis.py, routing/cooldown_shared.py)."""

    shared: dict[str, float]     # dep id -> end of its shared cooldown (monotonic): updated in place
    def until(self, dep_id: str) -> float: ...                  # end of its shared cooldown, or 0
    def publish(self, dep_id: str, cooldown_s: float) -> None: ...
    def clear(self, dep_id: str) -> None: ...
    def cooling(self, now: float) -> dict[str, float]: ...     # deployments in a shared cooldown at `now`


class Health:
    def __init__(self, *, cooldown_failures: int = 3, cooldown_s: float = 30.0, retry_budget_tokens: int = 10,
                 retry_budget_token_ratio: float = 0.1, board: CooldownBoard | None = None) -> None:
        self.by_deployment: dict[str, DeploymentHealth] = {}
        self.board = board
        self._shared: dict[str, float] = board.shared if board is not None else {}
        self.cooldown_failures = cooldown_failures
        self.cooldown_s = cooldown_s
        self.retry_max_milli = retry_budget_tokens * 1000          # 0: retries are never throttled
        self.retry_refill_milli = round(retry_budget_token_ratio * 1000)

    def get(self, dep_id: str) -> DeploymentHealth:
        h = self.by_deployment.get(dep_id)
        if h is None:
            h = self.by_deployment[dep_id] = DeploymentHealth(retry_milli_tokens=self.retry_max_milli)
        return h

    def retry_allowed(self, dep_id: str) -> bool:
        """May the router try this deployment again within a request (its retry budget)?"""
        h = self.by_deployment.get(dep_id)
        return not self.retry_max_milli or h is None or h.retry_milli_tokens > self.retry_max_milli // 2

    def available(self, dep_id: str, now: float | None = None) -> bool:
        h = self.by_deployment.get(dep_id)
        shared = self._shared                # the board's local copy (empty: nothing cooled down elsewhere)
        if h is None and not shared:
            return True
        now = time.monotonic() if now is None else now
        return (h is None or h.cooldown_until <= now) and (not shared or shared.get(dep_id, 0.0) <= now)

    def report(self) -> dict[str, dict]:
        """`as_dict` of every deployment this process has health of or knows to be cooled down elsewhere."""
        board = self.board
        deps = list(self.by_deployment)
        if board is not None:
            deps += [d for d in board.cooling(time.monotonic()) if d not in self.by_deployment]
        blank = DeploymentHealth(retry_milli_tokens=self.retry_max_milli)
        return {d: self.by_deployment.get(d, blank).as_dict(board.until(d) if board is not None else 0.0)
                for d in deps}

    def record_success(self, dep_id: str, *, ttft_ms: float | None, duration_ms: float, completion_tokens: int) -> None:
        h = self.get(dep_id)
        h.requests += 1
        h.consecutive_failures = 0
        if self.board is not None and (h.cooldown_until or self.board.until(dep_id)):
            self.board.clear(dep_id)
        h.cooldown_until = 0.0
        h.retry_milli_tokens = min(self.retry_max_milli, h.retry_milli_tokens + self.retry_refill_milli)
        h.error_rate = _ewma(h.error_rate, 0.0)
        if ttft_ms is not None:
            h.ttft_ms = _ewma(h.ttft_ms, ttft_ms)
        gen_ms = duration_ms - (ttft_ms or 0.0)
        if completion_tokens > 1 and gen_ms > 0:
            h.tokens_per_s = _ewma(h.tokens_per_s, completion_tokens / (gen_ms / 1000))

    def record_failure(self, dep_id: str, now: float | None = None) -> None:
        """A failure of the deployment (never the caller's error, e.g. a 400: the router does not
        record those, so they neither cool a deployment down nor spend its retry budget)."""
        h = self.get(dep_id)
        h.retry_milli_tokens = max(0, h.retry_milli_tokens - 1000)
        h.requests += 1
        h.errors += 1
        h.consecutive_failures += 1
        h.error_rate = _ewma(h.error_rate, 1.0)
        if h.consecutive_failures >= self.cooldown_failures:
            h.cooldown_until = (time.monotonic() if now is None else now) + self.cooldown_s
            h.consecutive_failures = 0   # after the cooldown one trial request decides (half-open)
            if self.board is not None:
                self.board.publish(dep_id, self.cooldown_s)

"""Live health per deployment: moving averages of time to first token, tokens per second and
error rate, plus a cooldown (circuit breaker) for a deployment that keeps failing."""
from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["Health", "DeploymentHealth"]

ALPHA = 0.2   # weight of the newest sample in the moving averages


@dataclass(slots=True)
class DeploymentHealth:
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    error_rate: float = 0.0
    requests: int = 0
    errors: int = 0
    consecutive_failures: int = 0
    cooldown_until: float = 0.0

    def as_dict(self) -> dict:
        return {"ttft_ms": self.ttft_ms, "tokens_per_s": self.tokens_per_s, "error_rate": round(self.error_rate, 4),
                "requests": self.requests, "errors": self.errors,
                "cooling_down": self.cooldown_until > time.monotonic()}


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else old + ALPHA * (new - old)


class Health:
    def __init__(self, *, cooldown_failures: int = 3, cooldown_s: float = 30.0) -> None:
        self.by_deployment: dict[str, DeploymentHealth] = {}
        self.cooldown_failures = cooldown_failures
        self.cooldown_s = cooldown_s

    def get(self, dep_id: str) -> DeploymentHealth:
        h = self.by_deployment.get(dep_id)
        if h is None:
            h = self.by_deployment[dep_id] = DeploymentHealth()
        return h

    def available(self, dep_id: str, now: float | None = None) -> bool:
        h = self.by_deployment.get(dep_id)
        return h is None or h.cooldown_until <= (time.monotonic() if now is None else now)

    def record_success(self, dep_id: str, *, ttft_ms: float | None, duration_ms: float, completion_tokens: int) -> None:
        h = self.get(dep_id)
        h.requests += 1
        h.consecutive_failures = 0
        h.cooldown_until = 0.0
        h.error_rate = _ewma(h.error_rate, 0.0)
        if ttft_ms is not None:
            h.ttft_ms = _ewma(h.ttft_ms, ttft_ms)
        gen_ms = duration_ms - (ttft_ms or 0.0)
        if completion_tokens > 1 and gen_ms > 0:
            h.tokens_per_s = _ewma(h.tokens_per_s, completion_tokens / (gen_ms / 1000))

    def record_failure(self, dep_id: str, now: float | None = None) -> None:
        h = self.get(dep_id)
        h.requests += 1
        h.errors += 1
        h.consecutive_failures += 1
        h.error_rate = _ewma(h.error_rate, 1.0)
        if h.consecutive_failures >= self.cooldown_failures:
            h.cooldown_until = (time.monotonic() if now is None else now) + self.cooldown_s
            h.consecutive_failures = 0   # after the cooldown one trial request decides (half-open)

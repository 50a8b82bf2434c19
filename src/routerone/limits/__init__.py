"""Rate limits per key, account and upstream deployment: the `Limiter` seam and its three backends.

`MemoryLimiter` is the embedded default (one process); `SharedLimiter` shares limits between the
workers of one `serve --workers N` through shared memory; `RedisLimiter` shares limits between
processes and machines. The algorithm and its guarantees are described in `limits/base.py`.
The Redis names are loaded on first use, so a gateway without Redis never imports the client.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from routerone.limits.base import (DenyReason, LimitDecision, Limiter, LimitRule, LimitTicket,
                                   normalize_rules, retry_after_s)
from routerone.limits.headers import ScopeUsage, format_reset, rate_limit_headers
from routerone.limits.memory import MemoryLimiter
from routerone.limits.shared import SharedLimiter, SharedLimiterState

if TYPE_CHECKING:
    from routerone.limits.redis import KEY_PREFIX, SCRIPT_NAME, RedisLimiter

__all__ = ["DenyReason", "LimitDecision", "Limiter", "LimitRule", "LimitTicket", "MemoryLimiter",
           "RedisLimiter", "ScopeUsage", "SharedLimiter", "SharedLimiterState", "KEY_PREFIX", "SCRIPT_NAME", "format_reset",
           "normalize_rules", "rate_limit_headers", "retry_after_s"]

_FROM_REDIS = {"RedisLimiter", "KEY_PREFIX", "SCRIPT_NAME"}


def __getattr__(name: str) -> Any:
    if name in _FROM_REDIS:
        return getattr(import_module("routerone.limits.redis"), name)
    raise AttributeError(f"module 'routerone.limits' has no attribute {name!r}")

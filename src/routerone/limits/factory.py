"""Choose the limiter from settings: in-process by default, Redis when configured. `limiter = "auto"`
means Redis when `redis_url` is set. `serve --workers N` without Redis gives its workers a shared-memory
limiter instead (limits/shared.py; made by server.py, which owns the block)."""
from __future__ import annotations

from ..settings import Settings
from .base import Limiter
from .memory import MemoryLimiter

__all__ = ["make_limiter", "uses_redis"]


def uses_redis(settings: Settings) -> bool:
    return settings.limiter == "redis" or (settings.limiter == "auto" and bool(settings.redis_url))


def make_limiter(settings: Settings) -> Limiter:
    if not uses_redis(settings):
        return MemoryLimiter()
    if not settings.redis_url:
        raise ValueError("limiter: 'redis' needs redis_url (ROUTERONE_REDIS_URL)")
    from .redis import RedisLimiter   # the redis client is only loaded when Redis is configured
    return RedisLimiter(settings.redis_url, failure_policy=settings.redis_failure_policy,
                        fallback=MemoryLimiter())

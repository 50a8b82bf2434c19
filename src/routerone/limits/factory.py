"""Choose the limiter from settings: in-process by default, Redis when configured (required for
several processes). `limiter = "auto"` means Redis when `redis_url` is set."""
from __future__ import annotations

from ..settings import Settings
from .base import Limiter
from .memory import MemoryLimiter

__all__ = ["make_limiter"]


def make_limiter(settings: Settings) -> Limiter:
    use_redis = settings.limiter == "redis" or (settings.limiter == "auto" and settings.redis_url)
    if not use_redis:
        return MemoryLimiter()
    if not settings.redis_url:
        raise ValueError("limiter: 'redis' needs redis_url (ROUTERONE_REDIS_URL)")
    from .redis import RedisLimiter   # the redis client is only loaded when Redis is configured
    return RedisLimiter(settings.redis_url, failure_policy=settings.redis_failure_policy,
                        fallback=MemoryLimiter())

"""Choose the sticky store from settings, as limits/factory.py chooses the limiter: Redis when
`redis_url` is set (shared by every worker and instance on it); else the shared-memory table that
`serve --workers N` made in the parent (server.py owns the block); else in-process."""
from __future__ import annotations

from ..settings import Settings
from .sticky import StickyMap, StickyStore

__all__ = ["make_sticky_store"]


def make_sticky_store(settings: Settings, shared=None) -> StickyStore:
    """`shared`: a `SharedStickyState.handle` from the parent of `--workers N`, or None."""
    if settings.redis_url:
        from .sticky_redis import RedisStickyStore   # the redis client is only loaded when configured
        return RedisStickyStore(settings.redis_url)
    if shared is not None:
        from .sticky_shared import SharedStickyTable
        return SharedStickyTable(shared)
    return StickyMap()

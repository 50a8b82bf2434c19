"""Contract for the readiness pings: `Store.ping` and `Limiter.ping` return when the backend answers
and raise when it cannot be reached (that is what /readyz reports). Each store, each limiter."""
from __future__ import annotations

import asyncio
import socket

import pytest

from routerone.limits import MemoryLimiter, RedisLimiter
from routerone.store.base import Store
from routerone.store.postgres import PostgresStore

from test_limiter_contract import require_redis


def _closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_store_ping_answers(store: Store) -> None:
    assert await store.ping() is None
    await store.create_account("after-ping")          # the store is still usable afterwards
    assert await store.ping() is None


async def test_postgres_ping_raises_when_the_database_is_unreachable() -> None:
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{_closed_port()}/test")
    try:
        with pytest.raises((OSError, asyncio.TimeoutError)):
            await asyncio.wait_for(store.ping(), 5)
    finally:
        await store.close()


async def test_memory_limiter_ping_always_answers() -> None:
    limiter = MemoryLimiter()
    assert await limiter.ping() is None
    await limiter.close()


@pytest.mark.redis
async def test_redis_limiter_ping_answers_and_raises_when_unreachable() -> None:
    url = require_redis()
    up = RedisLimiter(url, failure_policy="closed")
    down = RedisLimiter(f"redis://127.0.0.1:{_closed_port()}/0", failure_policy="closed")
    try:
        assert await up.ping() is None
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(down.ping(), 5)
        assert "onnect" in type(info.value).__name__ or isinstance(info.value, OSError), info.value
    finally:
        await up.close()
        await down.close()

"""Authenticate `Authorization: Bearer sk-...` without a database round trip per request.

Keys are looked up by hash once and cached with their account. A background poll of the store's
`auth_version` (bumped by every revoke/update, from any process) drops the cache, so revocation by
the admin API or the CLI takes effect within `poll_interval_s` everywhere; in the process that
revokes, at once.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ..errors import AuthenticationFailed
from ..store.base import Account, ApiKey, Store
from .background import cancel_and_wait
from .keys import hash_key, looks_like_key

__all__ = ["AuthContext", "Authenticator"]
log = logging.getLogger("routerone.auth")


@dataclass(frozen=True, slots=True)
class AuthContext:
    key: ApiKey
    account: Account

    @property
    def is_admin(self) -> bool:
        return self.key.role == "admin"


class Authenticator:
    def __init__(self, store: Store, *, cache_ttl_s: float = 30.0, poll_interval_s: float = 1.0) -> None:
        self.store = store
        self.cache_ttl_s = cache_ttl_s
        self.poll_interval_s = poll_interval_s
        self._cache: dict[str, tuple[AuthContext | None, float]] = {}
        self._version = -1
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._version = await self.store.auth_version()
        self._task = asyncio.create_task(self._poll(), name="auth-version-poll")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                v = await self.store.auth_version()
            except Exception:  # noqa: BLE001 - a store hiccup must not kill the poller
                log.warning("auth version poll failed", exc_info=True)
                continue
            if v != self._version:
                self._version = v
                self._cache.clear()

    def invalidate(self) -> None:
        self._cache.clear()

    async def authenticate(self, authorization: str | None) -> AuthContext:
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthenticationFailed()
        token = authorization[7:].strip()
        if not looks_like_key(token):
            raise AuthenticationFailed()
        digest = hash_key(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is None or hit[1] < now:
            ctx = await self._load(digest)
            self._cache[digest] = hit = (ctx, now + (self.cache_ttl_s if ctx else 5.0))
        ctx = hit[0]
        if ctx is None or ctx.key.revoked or (ctx.key.expires_at is not None and ctx.key.expires_at <= time.time()):
            raise AuthenticationFailed()
        return ctx

    async def _load(self, digest: str) -> AuthContext | None:
        key = await self.store.key_by_hash(digest)
        if key is None:
            return None
        account = await self.store.get_account(key.account_id)
        return AuthContext(key, account) if account else None

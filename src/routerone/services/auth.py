"""Authenticate `Authorization: Bearer sk-...` without a database round trip per request.

Keys are looked up by hash once and cached with their account. A background poll of the store's
`auth_version` (bumped by every revoke/update, from any process) drops the cache, so revocation by
the admin API or the CLI takes effect within `poll_interval_s` everywhere; in the process that
revokes, at once.

Both caches are bounded (`max_entries` known keys, as many unknown ones; the oldest entries go
first), and unknown keys are remembered for 5 s only. Failures are counted per client address
(`limits.auth_failures`): an address past its limit is refused with 429 before any lookup, unless
its key is already cached. The address is whatever the HTTP layer put in `CLIENT_ADDRESS`.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from dataclasses import dataclass

from ..errors import AuthenticationFailed, RateLimited
from ..limits.auth_failures import AuthFailureLimiter
from ..store.base import Account, ApiKey, Store
from ..store.errors import is_unavailable
from .background import cancel_and_wait
from .keys import hash_key, looks_like_key

__all__ = ["AuthContext", "Authenticator", "CLIENT_ADDRESS"]
log = logging.getLogger("routerone.auth")

# the calling client's address, set per request by the HTTP layer (a request-scoped value)
CLIENT_ADDRESS: contextvars.ContextVar[str | None] = contextvars.ContextVar("client_address", default=None)
NEGATIVE_TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class AuthContext:
    key: ApiKey
    account: Account

    @property
    def is_admin(self) -> bool:
        return self.key.role == "admin"


class Authenticator:
    def __init__(self, store: Store, *, cache_ttl_s: float = 30.0, poll_interval_s: float = 1.0,
                 max_entries: int = 10000, failures: AuthFailureLimiter | None = None) -> None:
        self.store = store
        self.cache_ttl_s = cache_ttl_s
        self.poll_interval_s = poll_interval_s
        self.max_entries = max_entries
        self.failures = failures or AuthFailureLimiter(0)
        self._cache: dict[str, tuple[AuthContext, float]] = {}     # key hash -> (context, expiry)
        self._unknown: dict[str, float] = {}                        # key hash -> expiry
        self._version = -1
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._version = await self.store.auth_version()
        self._task = asyncio.create_task(self._poll(), name="auth-version-poll")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _poll(self) -> None:
        unavailable = False
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                v = await self.store.auth_version()
            except Exception as exc:  # noqa: BLE001 - a store hiccup must not kill the poller
                if not is_unavailable(exc):
                    log.warning("auth version poll failed", exc_info=True)
                elif not unavailable:    # an outage: one line, no traceback, until a poll answers
                    log.warning("auth version poll failed: database unavailable (%s: %s); said once until "
                                "a poll answers", type(exc).__name__, exc)
                unavailable = unavailable or is_unavailable(exc)
                continue
            if unavailable:
                unavailable = False
                log.warning("auth version poll answers again")
            if v != self._version:
                self._version = v
                self.invalidate()

    def invalidate(self) -> None:
        self._cache.clear()
        self._unknown.clear()

    @property
    def cached_entries(self) -> int:
        return len(self._cache) + len(self._unknown)

    async def authenticate(self, authorization: str | None) -> AuthContext:
        address = CLIENT_ADDRESS.get()
        token = authorization[7:].strip() if authorization and authorization.startswith("Bearer ") else ""
        if not looks_like_key(token):
            raise self._failed(address)
        digest = hash_key(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is None or hit[1] < now:
            if self._unknown.get(digest, 0.0) >= now:
                raise self._failed(address)
            self._refuse_if_blocked(address)      # before the lookup that unknown keys cost
            ctx = await self._load(digest)
            if ctx is None:
                _put(self._unknown, digest, now + NEGATIVE_TTL_S, self.max_entries)
                raise self._failed(address)
            hit = (ctx, now + self.cache_ttl_s)
            _put(self._cache, digest, hit, self.max_entries)
        ctx = hit[0]
        if ctx.key.revoked or (ctx.key.expires_at is not None and ctx.key.expires_at <= time.time()):
            raise AuthenticationFailed()
        return ctx

    def _refuse_if_blocked(self, address: str | None) -> None:
        wait_s = self.failures.blocked_for_s(address)
        if wait_s > 0:
            raise RateLimited("Too many failed authentication attempts from this address; retry later",
                              code="too_many_auth_failures",
                              headers={"Retry-After": str(max(1, math.ceil(wait_s)))})

    def _failed(self, address: str | None) -> Exception:
        """The error for a failed authentication: 401, or 429 once the address is over its limit."""
        self._refuse_if_blocked(address)
        self.failures.failed(address)
        return AuthenticationFailed()

    async def _load(self, digest: str) -> AuthContext | None:
        key = await self.store.key_by_hash(digest)
        if key is None:
            return None
        account = await self.store.get_account(key.account_id)
        return AuthContext(key, account) if account else None


def _put(cache: dict, key: str, value, max_entries: int) -> None:
    """Insert, evicting the oldest entries (insertion order) to stay within `max_entries`."""
    cache.pop(key, None)
    while len(cache) >= max_entries:
        del cache[next(iter(cache))]
    cache[key] = value

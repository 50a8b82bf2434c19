"""Console credentials: argon2id password hashes, session tokens, CSRF tokens, sign-in throttling.

Passwords are hashed with argon2id (argon2-cffi's defaults: RFC 9106 low-memory profile) off the
event loop. A session token is 256 random bits; the store keeps only its SHA-256 (the token is as
strong as an API key, so one hash is enough and the lookup stays O(1)).
"""
from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import secrets
import time
from collections import OrderedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["hash_password", "verify_password", "new_token", "token_hash", "same", "looks_like_token", "Throttle",
           "PasswordProblem", "check_new_password", "generate_password", "address_block"]

_HASHER = PasswordHasher()        # argon2id
_DUMMY_HASH = _HASHER.hash("not a real password: equalises the time of unknown emails")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 200


class PasswordProblem(ValueError):
    pass


def check_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordProblem(f"The password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordProblem(f"The password must have at most {MAX_PASSWORD_CHARS} characters")
    return password


def generate_password() -> str:
    return secrets.token_urlsafe(12)     # 16 characters, 96 bits


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; with no hash (unknown email) spends the same time and says False."""
    def run() -> bool:
        try:
            return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    return await asyncio.to_thread(run)


def new_token() -> str:
    return secrets.token_urlsafe(32)


_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,100}")


def looks_like_token(value: object) -> bool:
    """True for what new_token() makes (URL-safe base64, at most 100 characters). A cookie or form
    field that is anything else (bytes that are not UTF-8 arrive as lone surrogates, which cannot be
    encoded again) names no session and matches no token."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    return (looks_like_token(a) and looks_like_token(b)
            and secrets.compare_digest(a.encode(), b.encode()))    # type: ignore[union-attr]


def address_block(address: str) -> str:
    """What the per-address sign-in throttle counts: an IPv4 address, or an IPv6 address's /64 (one
    client usually holds a whole /64, and could otherwise try from a new address each time)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Throttle:
    """Failed sign-ins per key ("email:x", "ip:y") in a sliding window, in bounded memory: at most
    `max_keys` keys are tracked (the least recently failed are forgotten first)."""

    def __init__(self, *, max_failures: int, window_s: float, max_keys: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def retry_after_s(self, key: str, now: float | None = None) -> float:
        """0 if `key` may try now, else seconds until its oldest counted failure leaves the window."""
        now = time.monotonic() if now is None else now
        times = [t for t in self._failures.get(key, ()) if t > now - self.window_s]
        if len(times) < self.max_failures:
            return 0.0
        return max(0.0, times[-self.max_failures] + self.window_s - now)

    def failed(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        times = [t for t in self._failures.pop(key, ()) if t > now - self.window_s]
        times.append(now)
        self._failures[key] = times[-self.max_failures:]
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)

"""API key material: CSPRNG generation, hashing, display prefix. Keys are shown once, stored hashed.

Keys carry 256 bits of randomness, so a single SHA-256 is enough (no password-style stretching:
there is nothing to brute-force), and it keeps the lookup O(1) by hash.
"""
from __future__ import annotations

import hashlib
import secrets

__all__ = ["generate_key", "hash_key", "display_prefix", "looks_like_key"]

KEY_PREFIX = "sk-ro-"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:len(KEY_PREFIX) + 4] + "…" + key[-4:]


def looks_like_key(token: str) -> bool:
    return token.startswith("sk-") and 20 <= len(token) <= 200 and token.isascii()

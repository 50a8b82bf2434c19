"""Sticky conversations: a multi-turn conversation stays on the model `auto` chose for its first turn.

A conversation is identified by a hash of its opening -- the messages before the first assistant
message -- plus a scope (the API key), so turn 1 ([system, user]) and turn n ([system, user,
assistant, ..., user]) share a key without storing any text. Entries live `ttl_s` seconds from
their last use (a lookup that finds one refreshes it).

The seam, as limits/ has for rate limits: a `StickyStore` remembers key -> model id, one contract
suite (tests/contract/test_sticky_contract.py) for its implementations:
- `StickyMap` (here): in-process, at most `max_entries` kept (least recently used dropped first).
  `remote` is False: the planner asks it synchronously, no await, no I/O.
- `RedisStickyStore` (sticky_redis.py, when `redis_url` is set): one key per conversation under
  `ro:sticky:v1:`, shared by every worker and instance on that Redis. `remote` is True: the caller
  awaits `lookup` (one GETEX round trip) for a later turn of an `auto` request before planning;
  first turns and named models cost no round trip (a pin is written in the background).
- `SharedStickyTable` (sticky_shared.py): `serve --workers N` without Redis, one shared-memory
  table for the workers of one machine.
A store that cannot answer (Redis down) answers "not known": the conversation is decided afresh,
never failed.
"""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any, Callable, Protocol, Sequence

import orjson

DEFAULT_TTL_S = 3600.0
DEFAULT_MAX_ENTRIES = 100_000

__all__ = ["StickyStore", "LocalStickyStore", "StickyMap", "conversation_key", "DEFAULT_TTL_S", "DEFAULT_MAX_ENTRIES"]


class StickyStore(Protocol):
    remote: bool     # True: `lookup` is a network round trip (await it); False: `get` answers at once

    def get(self, key: str) -> str | None:
        """The pinned model, refreshing its TTL; without I/O. A remote store returns None (unknown)."""
        ...

    async def lookup(self, key: str) -> str | None:
        """The pinned model, refreshing its TTL; None when unknown, expired or unreachable."""
        ...

    async def remember(self, key: str, model: str) -> None:
        """Pin `key` to `model` (TTL from now); waits until written (or failed: never raises)."""
        ...

    def pin(self, key: str, model: str) -> None:
        """`remember` without waiting: a remote store writes in the background."""
        ...

    async def close(self) -> None:
        ...


def conversation_key(messages: Sequence[dict[str, Any]], scope: str = "") -> tuple[str, bool]:
    """(key, is_later_turn): the hash of the messages before the first assistant message, and
    whether the request already contains an assistant message."""
    opening = []
    later = False
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "assistant":
            later = True
            break
        opening.append(m)
    h = hashlib.blake2b(str(scope).encode(), digest_size=16)
    h.update(b"\x00")
    h.update(orjson.dumps(opening, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest(), later


class LocalStickyStore:
    """The async face of a store that answers at once, without I/O (its own `get` and `put`)."""
    remote = False

    def get(self, key: str) -> str | None:
        raise NotImplementedError

    def put(self, key: str, model: str) -> None:
        raise NotImplementedError

    def pin(self, key: str, model: str) -> None:
        self.put(key, model)

    async def lookup(self, key: str) -> str | None:
        return self.get(key)

    async def remember(self, key: str, model: str) -> None:
        self.put(key, model)

    async def close(self) -> None:
        pass


class StickyMap(LocalStickyStore):
    """In-process `StickyStore`: an LRU dict bounded by `max_entries`."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, max_entries: int = DEFAULT_MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> str | None:
        item = self._entries.get(key)
        if item is None:
            return None
        model, expires = item
        now = self._clock()
        if now >= expires:
            del self._entries[key]
            return None
        self._entries[key] = (model, now + self.ttl_s)
        self._entries.move_to_end(key)
        return model

    def put(self, key: str, model: str) -> None:
        self._entries[key] = (model, self._clock() + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    pin = put

"""Sticky conversations: a multi-turn conversation stays on the model `auto` chose for its first turn.

A conversation is identified by a hash of its opening -- the messages before the first assistant
message -- plus a scope (the API key), so turn 1 ([system, user]) and turn n ([system, user,
assistant, ..., user]) share a key without storing any text. Entries live `ttl_s` seconds from
their last use, and at most `max_entries` are kept (least recently used dropped first), so memory
is bounded. The map is per process: behind a load balancer without session affinity another
instance re-decides (and pins its own choice), which costs a prompt-cache miss, not correctness.
"""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any, Callable, Sequence

import orjson

DEFAULT_TTL_S = 3600.0
DEFAULT_MAX_ENTRIES = 100_000


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


class StickyMap:
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

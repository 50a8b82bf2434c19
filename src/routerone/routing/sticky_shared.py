"""Shared-memory `StickyStore`: the workers of one `serve --workers N` (without Redis) share one table.

The parent creates a `SharedStickyState` (a `SlotBlock` of routing/slot_table.py: one
`multiprocessing.shared_memory` block and one lock file) before it spawns the workers; each worker attaches
a `SharedStickyTable` through the picklable `handle`. SO_REUSEPORT spreads an SDK's pooled
connections over the workers, so a per-process map would miss most later turns.

The table is set-associative: `slots` entries (a power of two) in buckets of `WAYS`; a
conversation's 64-bit key digest picks its bucket, and a pin takes the conversation's own entry,
else a free or expired one, else the bucket's least recently used (smallest expiry: an entry
expires `ttl_s` after its last use). So memory is fixed and eviction is LRU within a bucket (an
approximation of the in-process map's global LRU: a bucket that gets more than `WAYS` live
conversations drops its least recently used before the table is full). Per entry: the key digest, the expiry
(CLOCK_MONOTONIC, one clock for every process) and the model id, at most `MODEL_ID_BYTES` bytes of
UTF-8 (a longer id is not pinned: such a conversation is decided afresh each turn).

Operations run under the flock of limits/filelock.py (microseconds; the kernel releases it when a
holder dies). A lock not obtained within `LOCK_TIMEOUT_S`, or a block another process truncated or
overwrote (slot_table.py checks its size and magic under the lock), answers "not known" (decided
afresh), counted in `fallback_events` and logged once. A holder killed mid-write can leave one entry with a
torn model id: the planner finds no such model and decides afresh. Digests are 64-bit BLAKE2b:
two live conversations sharing one is a 2^-64 event per pair.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .slot_table import SlotBlock, SlotHandle, SlotTable, digest
from .sticky import DEFAULT_TTL_S, LocalStickyStore

__all__ = ["SharedStickyState", "SharedStickyTable", "WAYS", "MODEL_ID_BYTES", "LOCK_TIMEOUT_S"]

WAYS = 8
MODEL_ID_BYTES = 120
LOCK_TIMEOUT_S = 0.05
DEFAULT_SLOTS = 1 << 17        # 131,072 conversations (the in-process map keeps 100,000 per process)
_TABLE = {"magic": 0x524F535431, "header_ints": 2, "name_bytes": MODEL_ID_BYTES}   # "ROST1"


def _digest(key: str) -> int:
    """64 bits of the key, 0 reserved (a free entry): a conversation key (32 hex digits of BLAKE2b)
    gives its first 16 digits; any other string is hashed."""
    try:
        value = int(key[:16], 16) - (1 << 63) if len(key) == 32 else None
    except ValueError:
        value = None
    return digest(key) if value is None else value or 1


@dataclass(frozen=True)
class _Handle(SlotHandle):
    ttl_s: float


class SharedStickyState(SlotBlock):
    """Owned by the parent: the block and the lock. Pass `handle` to the workers; `unlink` at the end."""

    def __init__(self, *, slots: int = DEFAULT_SLOTS, ttl_s: float = DEFAULT_TTL_S) -> None:
        if ttl_s <= 0 or slots < WAYS:
            raise ValueError(f"ttl_s must be > 0 and slots >= {WAYS}")
        super().__init__("sticky", slots=1 << (slots - 1).bit_length(), **_TABLE)
        self.handle = _Handle(self.handle.shm_name, self.handle.lock_path, ttl_s)


class SharedStickyTable(LocalStickyStore):
    """A worker's view of a `SharedStickyState` (see the module docstring)."""

    def __init__(self, handle: _Handle, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._table = SlotTable(handle, what="shared sticky table", lock_timeout_s=LOCK_TIMEOUT_S,
                                if_unlocked="that conversation is routed afresh", **_TABLE)
        self.ttl_s, self._clock = handle.ttl_s, clock
        self._bucket_mask = self._table.slots // WAYS - 1

    @property
    def fallback_events(self) -> int:
        return self._table.lock_misses

    def get(self, key: str) -> str | None:
        k, t = _digest(key), self._table
        if not t.locked():
            return None
        try:
            keys, expiry = t.keys, t.times
            base = (k & self._bucket_mask) * WAYS
            for i in range(base, base + WAYS):
                if keys[i] == k:
                    now = self._clock()
                    if now >= expiry[i]:
                        keys[i] = 0
                        return None
                    expiry[i] = now + self.ttl_s
                    return t.name(i)
            return None
        finally:
            t.release()

    def put(self, key: str, model: str) -> None:
        name = model.encode()
        if len(name) > MODEL_ID_BYTES:
            return
        k, t = _digest(key), self._table
        if not t.locked():
            return
        try:
            keys, expiry = t.keys, t.times
            base = (k & self._bucket_mask) * WAYS
            slot, free, oldest = -1, -1, None
            for i in range(base, base + WAYS):
                ki = keys[i]
                if ki == k:
                    slot = i               # its own entry
                    break
                if ki == 0:
                    if free < 0:
                        free = i
                elif free < 0 and (oldest is None or expiry[i] < oldest):
                    lru, oldest = i, expiry[i]
            if slot < 0:                   # else the first free one, else the least recently used
                slot = free if free >= 0 else lru
            t.set(slot, k, self._clock() + self.ttl_s, name)   # a holder killed mid-write: an entry nobody finds
        finally:
            t.release()

    pin = put

    async def close(self) -> None:
        self._table.close()

    def __len__(self) -> int:
        """Live entries (for tests; takes no lock)."""
        now, t = self._clock(), self._table
        return sum(1 for i in range(t.slots) if t.keys[i] != 0 and t.times[i] > now)

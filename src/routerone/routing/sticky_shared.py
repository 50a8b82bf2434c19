"""Shared-memory `StickyStore`: the workers of one `serve --workers N` (without Redis) share one table.

The parent creates a `SharedStickyState` (one `multiprocessing.shared_memory` block and one lock
file, as limits/shared.py does for rate limits) before it spawns the workers; each worker attaches
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
holder dies). A lock not obtained within `LOCK_TIMEOUT_S` answers "not known" (decided afresh),
counted in `fallback_events` and logged once. A holder killed mid-write can leave one entry with a
torn model id: the planner finds no such model and decides afresh. Digests are 64-bit BLAKE2b:
two live conversations sharing one is a 2^-64 event per pair.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Callable

from ..limits.filelock import FileLock
from ..limits.shared import _check_room, new_lock_file, unlink_block
from .sticky import DEFAULT_TTL_S, LocalStickyStore

__all__ = ["SharedStickyState", "SharedStickyTable", "WAYS", "MODEL_ID_BYTES", "LOCK_TIMEOUT_S"]
log = logging.getLogger("routerone.routing")

WAYS = 8
MODEL_ID_BYTES = 120
LOCK_TIMEOUT_S = 0.05
DEFAULT_SLOTS = 1 << 17        # 131,072 conversations (the in-process map keeps 100,000 per process)
_MAGIC = 0x524F535431          # "ROST1"
_HEADER = 2                    # int64: magic, slots


def _layout(slots: int) -> tuple[int, int, int, int, int]:
    """Byte offsets of keys (int64), expiries (float64), lengths (int32), names; total size."""
    keys = _HEADER * 8
    expiry = keys + slots * 8
    lengths = expiry + slots * 8
    names = lengths + slots * 4
    return keys, expiry, lengths, names, names + slots * MODEL_ID_BYTES


def _digest(key: str) -> int:
    """64 bits of the key, 0 reserved (a free entry): a conversation key (32 hex digits of BLAKE2b)
    gives its first 16 digits; any other string is hashed."""
    try:
        value = int(key[:16], 16) - (1 << 63) if len(key) == 32 else None
    except ValueError:
        value = None
    if value is None:
        value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little", signed=True)
    return value or 1


@dataclass(frozen=True)
class _Handle:
    shm_name: str
    lock_path: str
    ttl_s: float


class SharedStickyState:
    """Owned by the parent: the block and the lock. Pass `handle` to the workers; `unlink` at the end."""

    def __init__(self, *, slots: int = DEFAULT_SLOTS, ttl_s: float = DEFAULT_TTL_S) -> None:
        if ttl_s <= 0 or slots < WAYS:
            raise ValueError(f"ttl_s must be > 0 and slots >= {WAYS}")
        slots = 1 << (slots - 1).bit_length()
        size = _layout(slots)[-1]
        _check_room(size)
        self.shm = shared_memory.SharedMemory(create=True, size=size)
        header = self.shm.buf[:_HEADER * 8].cast("q")
        header[1], header[0] = slots, _MAGIC
        header.release()
        self.lock_file = new_lock_file("sticky")
        self.handle = _Handle(self.shm.name, self.lock_file.path, ttl_s)
        self.size_bytes = size

    def unlink(self) -> None:
        unlink_block(self.shm, self.lock_file)


class SharedStickyTable(LocalStickyStore):
    """A worker's view of a `SharedStickyState` (see the module docstring)."""

    def __init__(self, handle: _Handle, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._shm = shared_memory.SharedMemory(name=handle.shm_name)
        self._lock = FileLock(handle.lock_path)
        self.ttl_s, self._clock = handle.ttl_s, clock
        header = self._shm.buf[:_HEADER * 8].cast("q")
        magic, slots = header[0], header[1]
        header.release()
        if magic != _MAGIC:
            self._shm.close()
            self._lock.close()
            raise ValueError("shared sticky table: the block is not a sticky table")
        keys, expiry, lengths, names, size = _layout(slots)
        buf = self._shm.buf
        self._keys = buf[keys:expiry].cast("q")
        self._expiry = buf[expiry:lengths].cast("d")
        self._lengths = buf[lengths:names].cast("i")
        self._names = buf[names:size]
        self._bucket_mask = slots // WAYS - 1
        self._warned = False
        self.fallback_events = 0

    def get(self, key: str) -> str | None:
        k = _digest(key)
        if not self._locked():
            return None
        try:
            keys, expiry = self._keys, self._expiry
            base = (k & self._bucket_mask) * WAYS
            for i in range(base, base + WAYS):
                if keys[i] == k:
                    now = self._clock()
                    if now >= expiry[i]:
                        keys[i] = 0
                        return None
                    expiry[i] = now + self.ttl_s
                    at = i * MODEL_ID_BYTES
                    return bytes(self._names[at:at + self._lengths[i]]).decode(errors="replace")
            return None
        finally:
            self._lock.release()

    def put(self, key: str, model: str) -> None:
        name = model.encode()
        if len(name) > MODEL_ID_BYTES:
            return
        k = _digest(key)
        if not self._locked():
            return
        try:
            keys, expiry = self._keys, self._expiry
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
            keys[slot] = 0                 # a holder killed from here on leaves an entry nobody finds
            at = slot * MODEL_ID_BYTES
            self._names[at:at + len(name)] = name
            self._lengths[slot] = len(name)
            expiry[slot] = self._clock() + self.ttl_s
            keys[slot] = k
        finally:
            self._lock.release()

    pin = put

    async def close(self) -> None:
        for view in (self._keys, self._expiry, self._lengths, self._names):
            view.release()
        self._shm.close()
        self._lock.close()

    def __len__(self) -> int:
        """Live entries (for tests; takes no lock)."""
        now = self._clock()
        return sum(1 for i in range(len(self._keys)) if self._keys[i] != 0 and self._expiry[i] > now)

    def _locked(self) -> bool:
        if self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            return True
        self.fallback_events += 1
        if not self._warned:
            self._warned = True
            log.warning("shared sticky table: lock not obtained within %.2f s; that conversation is "
                        "routed afresh (logged once)", LOCK_TIMEOUT_S)
        return False

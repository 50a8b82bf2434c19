"""Shared cooldowns for the workers of one `serve --workers N` without Redis: once a worker cools a
deployment down, the others skip it too until the cooldown ends (with Redis: cooldown_redis.py).

The parent creates a `SharedCooldownState` (one `multiprocessing.shared_memory` block and one lock
file, as limits/shared.py and routing/sticky_shared.py do) before it spawns the workers; each
attaches a `SharedCooldownBoard` through the picklable `handle`. The block holds `SLOTS` entries
(deployment id, at most `DEP_ID_BYTES` bytes of UTF-8, its 64-bit digest and the cooldown's end on
CLOCK_MONOTONIC, one clock for every process) and a generation counter that every write bumps.

Hot path: none. Health reads the board's local dict. A background task reads the generation
every `refresh_interval_s` (one memory read) and, when it changed, copies the live entries under
the lock (flock, limits/filelock.py): a cooldown another worker started applies here within that
interval. Starting a cooldown (`publish`) and ending one early on a success (`clear`) write under
the lock (microseconds), only when health changes state. A lock not obtained within
`LOCK_TIMEOUT_S`, a full table (every entry live: the soonest-ending one is replaced) or an id too
long leaves that cooldown to the worker's own health: counted in `fallback_events` (the lock's,
logged once). A holder killed mid-write can leave one entry nobody finds (its digest is written
last). A cooldown shared here lasts at most `MAX_SHARED_COOLDOWN_S` (7 days, as with Redis): an
end further away (the table written over by another process) is ignored. The retry budget stays per process.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Callable

from ..limits.filelock import FileLock
from ..limits.shared import _check_room, new_lock_file, unlink_block
from .health import MAX_SHARED_COOLDOWN_MS

__all__ = ["SharedCooldownState", "SharedCooldownBoard", "SLOTS", "DEP_ID_BYTES"]
log = logging.getLogger("routerone.routing")

SLOTS = 1024
DEP_ID_BYTES = 240
LOCK_TIMEOUT_S = 0.05
MAX_SHARED_COOLDOWN_S = MAX_SHARED_COOLDOWN_MS / 1000   # a later end (+inf: the table written over) is none
_MAGIC = 0x524F434431          # "ROCD1"
_HEADER = 3                    # int64: magic, slots, generation


def _layout(slots: int) -> tuple[int, int, int, int, int]:
    """Byte offsets of digests (int64), ends (float64), lengths (int32), ids; total size."""
    keys = _HEADER * 8
    ends = keys + slots * 8
    lengths = ends + slots * 8
    ids = lengths + slots * 4
    return keys, ends, lengths, ids, ids + slots * DEP_ID_BYTES


def _digest(dep_id: str) -> int:
    value = int.from_bytes(hashlib.blake2b(dep_id.encode(), digest_size=8).digest(), "little", signed=True)
    return value or 1            # 0: a free entry


@dataclass(frozen=True)
class _Handle:
    shm_name: str
    lock_path: str


class SharedCooldownState:
    """Owned by the parent: the block and the lock. Pass `handle` to the workers; `unlink` at the end."""

    def __init__(self, *, slots: int = SLOTS) -> None:
        size = _layout(slots)[-1]
        _check_room(size)
        self.shm = shared_memory.SharedMemory(create=True, size=size)
        header = self.shm.buf[:_HEADER * 8].cast("q")
        header[1], header[0] = slots, _MAGIC
        header.release()
        self.lock_file = new_lock_file("cooldown")
        self.handle = _Handle(self.shm.name, self.lock_file.path)

    def unlink(self) -> None:
        unlink_block(self.shm, self.lock_file)


class SharedCooldownBoard:
    """A worker's view of a `SharedCooldownState` (see the module docstring); a `CooldownBoard`."""
    refresh_interval_s = 0.1

    def __init__(self, handle: _Handle, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._shm = shared_memory.SharedMemory(name=handle.shm_name)
        self._lock = FileLock(handle.lock_path)
        self._clock = clock
        header = self._shm.buf[:_HEADER * 8].cast("q")
        if header[0] != _MAGIC:
            header.release()
            self._shm.close()
            self._lock.close()
            raise ValueError("shared cooldowns: the block is not a cooldown table")
        self._slots = header[1]
        self._header = header
        keys, ends, lengths, ids, size = _layout(self._slots)
        buf = self._shm.buf
        self._keys = buf[keys:ends].cast("q")
        self._ends = buf[ends:lengths].cast("d")
        self._lengths = buf[lengths:ids].cast("i")
        self._ids = buf[ids:size]
        self._seen = -1                        # the generation the local copy was read at
        self.shared: dict[str, float] = {}     # dep id -> end of its shared cooldown: the local copy
        self._refresher: asyncio.Task | None = None
        self._warned = False
        self.fallback_events = 0

    # -- the hot path: local reads only --------------------------------------------------------
    def until(self, dep_id: str) -> float:
        return self.shared.get(dep_id, 0.0)

    def cooling(self, now: float) -> dict[str, float]:
        return {d: t for d, t in self.shared.items() if t > now}

    # -- state changes (rare): a write under the lock -------------------------------------------
    def publish(self, dep_id: str, cooldown_s: float) -> None:
        name = dep_id.encode()
        if len(name) > DEP_ID_BYTES:
            self.fallback_events += 1
            return
        if not self._locked():
            return
        try:
            k, now = _digest(dep_id), self._clock()
            keys, ends = self._keys, self._ends
            slot = next((i for i in range(self._slots) if keys[i] == k), -1)
            if slot < 0:
                slot = next((i for i in range(self._slots) if keys[i] == 0 or ends[i] <= now), -1)
            if slot < 0:                                   # full: the soonest-ending one goes
                self.fallback_events += 1
                slot = min(range(self._slots), key=ends.__getitem__)
            end = now + min(cooldown_s, MAX_SHARED_COOLDOWN_S)
            if keys[slot] == k and ends[slot] > end:
                return
            keys[slot] = 0
            at = slot * DEP_ID_BYTES
            self._ids[at:at + len(name)] = name
            self._lengths[slot] = len(name)
            ends[slot] = end
            keys[slot] = k
            self._header[2] += 1
        finally:
            self._lock.release()

    def clear(self, dep_id: str) -> None:
        self.shared.pop(dep_id, None)
        if not self._locked():
            return
        try:
            k = _digest(dep_id)
            for i in range(self._slots):
                if self._keys[i] == k:
                    self._keys[i] = 0
                    self._header[2] += 1
        finally:
            self._lock.release()

    def refresh(self) -> None:
        """Copy the live entries into the local dict if another write happened since the last copy."""
        generation = self._header[2]
        if generation == self._seen or not self._locked():
            return
        try:
            now, keys, ends, lengths = self._clock(), self._keys, self._ends, self._lengths
            fresh = {}
            for i in range(self._slots):
                if keys[i] != 0 and now < ends[i] <= now + MAX_SHARED_COOLDOWN_S:
                    at = i * DEP_ID_BYTES
                    fresh[bytes(self._ids[at:at + lengths[i]]).decode(errors="replace")] = ends[i]
            self._seen = self._header[2]
        finally:
            self._lock.release()
        self.shared.clear()                    # in place: Health holds this dict
        self.shared.update(fresh)

    async def start(self) -> None:
        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def flush(self) -> None:
        return None                            # writes are synchronous

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        for view in (self._header, self._keys, self._ends, self._lengths, self._ids):
            view.release()
        self._shm.close()
        self._lock.close()

    async def _refresh_loop(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(self.refresh_interval_s)

    def _locked(self) -> bool:
        if self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            return True
        self.fallback_events += 1
        if not self._warned:
            self._warned = True
            log.warning("shared cooldowns: lock not obtained within %.2f s; that cooldown stays this "
                        "worker's own (logged once)", LOCK_TIMEOUT_S)
        return False

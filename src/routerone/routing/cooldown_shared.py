"""Shared cooldowns for the workers of one `serve --workers N` without Redis: once a worker cools a
deployment down, the others skip it too until the cooldown ends (with Redis: cooldown_redis.py).

The parent creates a `SharedCooldownState` (a `SlotBlock` of routing/slot_table.py, as
routing/sticky_shared.py's) before it spawns the workers; each
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
import time
from typing import Callable

from .health import MAX_SHARED_COOLDOWN_MS
from .slot_table import SlotBlock, SlotHandle, SlotTable, digest

__all__ = ["SharedCooldownState", "SharedCooldownBoard", "SLOTS", "DEP_ID_BYTES"]

SLOTS = 1024
DEP_ID_BYTES = 240
LOCK_TIMEOUT_S = 0.05
MAX_SHARED_COOLDOWN_S = MAX_SHARED_COOLDOWN_MS / 1000   # a later end (+inf: the table written over) is none
_TABLE = {"magic": 0x524F434431, "header_ints": 3, "name_bytes": DEP_ID_BYTES}   # "ROCD1"; header[2]: generation


class SharedCooldownState(SlotBlock):
    """Owned by the parent: the block and the lock. Pass `handle` to the workers; `unlink` at the end."""

    def __init__(self, *, slots: int = SLOTS) -> None:
        super().__init__("cooldown", slots=slots, **_TABLE)


class SharedCooldownBoard:
    """A worker's view of a `SharedCooldownState` (see the module docstring); a `CooldownBoard`."""
    refresh_interval_s = 0.1

    def __init__(self, handle: SlotHandle, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._table = SlotTable(handle, what="shared cooldowns", lock_timeout_s=LOCK_TIMEOUT_S,
                                if_unlocked="that cooldown stays this worker's own", **_TABLE)
        self._clock = clock
        self._seen = -1                        # the generation the local copy was read at
        self.shared: dict[str, float] = {}     # dep id -> end of its shared cooldown: the local copy
        self._refresher: asyncio.Task | None = None
        self._unshared = 0                     # an id too long, the table full

    @property
    def fallback_events(self) -> int:
        return self._unshared + self._table.lock_misses

    # -- the hot path: local reads only --------------------------------------------------------
    def until(self, dep_id: str) -> float:
        return self.shared.get(dep_id, 0.0)

    def cooling(self, now: float) -> dict[str, float]:
        return {d: t for d, t in self.shared.items() if t > now}

    # -- state changes (rare): a write under the lock -------------------------------------------
    def publish(self, dep_id: str, cooldown_s: float) -> None:
        name = dep_id.encode()
        if len(name) > DEP_ID_BYTES:
            self._unshared += 1
            return
        t = self._table
        if not t.locked():
            return
        try:
            k, now = digest(dep_id), self._clock()
            keys, ends, slots = t.keys, t.times, range(t.slots)
            slot = next((i for i in slots if keys[i] == k), -1)
            if slot < 0:
                slot = next((i for i in slots if keys[i] == 0 or ends[i] <= now), -1)
            if slot < 0:                                   # full: the soonest-ending one goes
                self._unshared += 1
                slot = min(slots, key=ends.__getitem__)
            end = now + min(cooldown_s, MAX_SHARED_COOLDOWN_S)
            if keys[slot] == k and ends[slot] > end:
                return
            t.set(slot, k, end, name)
            t.header[2] += 1
        finally:
            t.release()

    def clear(self, dep_id: str) -> None:
        self.shared.pop(dep_id, None)
        t = self._table
        if not t.locked():
            return
        try:
            k = digest(dep_id)
            for i in range(t.slots):
                if t.keys[i] == k:
                    t.keys[i] = 0
                    t.header[2] += 1
        finally:
            t.release()

    def refresh(self) -> None:
        """Copy the live entries into the local dict if another write happened since the last copy."""
        t = self._table
        if (t.intact() and t.header[2] == self._seen) or not t.locked():    # intact: the read can't SIGBUS
            return
        try:
            now, keys, ends = self._clock(), t.keys, t.times
            fresh = {t.name(i): ends[i] for i in range(t.slots)
                     if keys[i] != 0 and now < ends[i] <= now + MAX_SHARED_COOLDOWN_S}
            self._seen = t.header[2]
        finally:
            t.release()
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
        self._table.close()

    async def _refresh_loop(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(self.refresh_interval_s)

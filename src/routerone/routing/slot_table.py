"""A fixed table of named entries in one shared-memory block, for the workers of one
`serve --workers N` without Redis: routing/sticky_shared.py (conversation -> model) and
routing/cooldown_shared.py (deployment -> end of its cooldown) are both this table.

The parent creates a `SlotBlock` (one `multiprocessing.shared_memory` block and one lock file, as
limits/shared.py does for rate limits) before it spawns the workers; each worker attaches a
`SlotTable` through the picklable `handle`. The block: a header of int64s (magic, slots, then the
user's), then per slot a 64-bit key digest (0: a free slot), a float64 time (on CLOCK_MONOTONIC, one
clock for every process), an int32 name length and `name_bytes` bytes of UTF-8 name. Operations run
under the flock of limits/filelock.py (the kernel releases it when a holder dies); `set` writes the
digest last, so a holder killed mid-write leaves at worst one entry nobody finds.

The block is a file in /dev/shm (mode 0600) that another process of the same user can truncate:
touching a page past its new end would SIGBUS the worker. So `locked` checks, under the lock, that
the block still has its size (fstat) and its magic before the caller touches it, and answers False
(the caller's fallback, as for a lock not obtained) when not, as limits/shared.py does. A truncation
inside that check's microseconds still faults (only a sealed memfd would close that).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from multiprocessing import shared_memory

from ..limits.filelock import FileLock
from ..limits.shared import _DAMAGED, _check_room, block_intact, new_lock_file, unlink_block

__all__ = ["SlotBlock", "SlotTable", "SlotHandle", "digest"]
log = logging.getLogger("routerone.routing")


def digest(text: str) -> int:
    """64 bits of BLAKE2b of `text`, never 0 (a free slot)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True) or 1


def _layout(header_ints: int, slots: int, name_bytes: int) -> tuple[int, int, int, int, int]:
    """Byte offsets of keys (int64), times (float64), lengths (int32), names; total size."""
    keys = header_ints * 8
    times = keys + slots * 8
    lengths = times + slots * 8
    names = lengths + slots * 4
    return keys, times, lengths, names, names + slots * name_bytes


@dataclass(frozen=True)
class SlotHandle:
    shm_name: str
    lock_path: str


class SlotBlock:
    """Owned by the parent: the block and the lock. `unlink` at the end."""

    def __init__(self, kind: str, *, magic: int, header_ints: int, slots: int, name_bytes: int) -> None:
        size = _layout(header_ints, slots, name_bytes)[-1]
        _check_room(size)
        self.shm = shared_memory.SharedMemory(create=True, size=size)
        header = self.shm.buf[:header_ints * 8].cast("q")
        header[1], header[0] = slots, magic
        header.release()
        self.lock_file = new_lock_file(kind)
        self.handle = SlotHandle(self.shm.name, self.lock_file.path)
        self.size_bytes = size

    def unlink(self) -> None:
        unlink_block(self.shm, self.lock_file)


class SlotTable:
    """A worker's view of a `SlotBlock`: `keys`, `times`, `lengths` are memoryviews by slot, `header`
    the int64 header (the user's entries from index 2). `what` names the table in errors and in the
    one warning a lock not obtained within `lock_timeout_s`, or a damaged block, logs (`if_unlocked`:
    what then happens); such misses are counted in `lock_misses`."""

    def __init__(self, handle: SlotHandle, *, magic: int, header_ints: int, name_bytes: int, what: str,
                 if_unlocked: str, lock_timeout_s: float) -> None:
        self._shm = shared_memory.SharedMemory(name=handle.shm_name)
        self._lock = FileLock(handle.lock_path)
        self._fd: int = getattr(self._shm, "_fd", -1)     # POSIX SharedMemory keeps its descriptor
        header = self._shm.buf[:header_ints * 8].cast("q")
        if header[0] != magic:
            header.release()
            self._shm.close()
            self._lock.close()
            raise ValueError(f"{what}: the block is not a {what}")
        self.slots = header[1]
        self.header = header
        self.name_bytes = name_bytes
        keys, times, lengths, names, size = _layout(header_ints, self.slots, name_bytes)
        buf = self._shm.buf
        self.keys = buf[keys:times].cast("q")
        self.times = buf[times:lengths].cast("d")
        self.lengths = buf[lengths:names].cast("i")
        self._names = buf[names:size]
        self._size_bytes, self._magic = size, magic
        self._what, self._if_unlocked, self._lock_timeout_s = what, if_unlocked, lock_timeout_s
        self._warned: set[str] = set()
        self.lock_misses = 0

    def name(self, slot: int) -> str:
        """The slot's name (a length out of range, the block written over, is read as bounded)."""
        at = slot * self.name_bytes
        return bytes(self._names[at:at + min(max(self.lengths[slot], 0), self.name_bytes)]).decode(errors="replace")

    def set(self, slot: int, key: int, time: float, name: bytes) -> None:
        """Fill `slot` (under the lock; `name` at most `name_bytes`), its digest written last."""
        self.keys[slot] = 0
        at = slot * self.name_bytes
        self._names[at:at + len(name)] = name
        self.lengths[slot] = len(name)
        self.times[slot] = time
        self.keys[slot] = key

    def locked(self) -> bool:
        """Take the lock (then `release` it) on an intact block; False, counted and logged once per
        cause, if the lock is not obtained or the block was truncated or overwritten."""
        if not self._lock.acquire(timeout=self._lock_timeout_s):
            self._miss("lock not obtained within %.2f s" % self._lock_timeout_s)
            return False
        if not self.intact():
            self._lock.release()
            self._miss(_DAMAGED)
            return False
        return True

    def intact(self) -> bool:
        """The block still has its size and its magic: safe to touch (see the module docstring)."""
        return block_intact(self._fd, self._size_bytes) and self.header[0] == self._magic

    def _miss(self, why: str) -> None:
        self.lock_misses += 1
        if why not in self._warned:
            self._warned.add(why)
            log.warning("%s: %s; %s (logged once)", self._what, why, self._if_unlocked)

    def release(self) -> None:
        self._lock.release()

    def close(self) -> None:
        for view in (self.header, self.keys, self.times, self.lengths, self._names):
            view.release()
        self._shm.close()
        self._lock.close()

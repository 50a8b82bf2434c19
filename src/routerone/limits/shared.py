"""Shared-memory limiter: the embedded limiter for `serve --workers N` without Redis.

The parent creates a `SharedLimiterState` (one `multiprocessing.shared_memory` block and one
lock file) before it spawns the workers; each worker attaches a `SharedLimiter` to it
through the picklable `handle`. The algorithm is the sliding-window log of base.py, the same as
memory.py, kept in fixed arrays so every process reads and writes the same log:

- scopes: an open-addressing table (linear probing) of 64-bit scope digests, each with its log
  (a singly linked list of entries in admission order: head, tail, length, token sum) and its
  leases (a doubly linked list in expiry order: head, tail, count);
- entries: one per (scope, request id) that is in a log, holds a lease, or both; found through a
  hash table on (scope digest, request-id digest), recycled through a free list;
- the arrays are struct-of-arrays `memoryview.cast` views (one Python index per field access).

Check-and-record runs under the lock and never awaits, so it is atomic across processes and
coroutines; the clock is `time.monotonic` (CLOCK_MONOTONIC: one clock for every process).

Bounded memory: `entries` log/lease entries and `scopes` scopes (fixed at creation). When an
acquire needs more than is free, every scope is swept and the table rebuilt without idle scopes;
if that is still not enough, the acquire is refused with `DenyReason.UNAVAILABLE` (the gateway
answers 503 `limiter_unavailable`) and a warning is logged once: never admitted unchecked, never
corrupted. The lock is an advisory `flock` on a small file (each process opens it itself): the
kernel releases it when its holder dies, so a worker killed (even SIGKILL) while holding it cannot
wedge the others; a lock still not obtained within `LOCK_TIMEOUT_S` (a holder stopped, not dead) is
refused the same way. A holder killed inside its few microseconds of writing can leave one
operation half-recorded (a count off by one request until its window passes); nothing is admitted
unchecked.
Digests are 64-bit BLAKE2b: two request ids (or scopes) sharing one is a 2^-64 event per pair.

Another process of the same user may truncate the block (a file in /dev/shm): touching a page past
its new end is a SIGBUS. Each operation first checks, under the lock, the block's size (fstat, ~1 us)
and its magic, and refuses (limiter_unavailable, warned once) when either is wrong. A truncation
landing between that check and the access (microseconds) still faults; closing that window needs a
memfd sealed against shrinking (F_SEAL_SHRINK), handed to the spawned workers (not done).
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Callable, Sequence

from routerone.limits.base import (DenyReason, LimitDecision, LimitRule, LimitTicket,
                                   normalize_rules, retry_after_s)
from routerone.limits.filelock import FileLock, OwnedLockFile, new_lock_file
from routerone.limits.headers import ScopeUsage, rate_limit_headers

__all__ = ["SharedLimiter", "SharedLimiterState", "LOCK_TIMEOUT_S", "new_lock_file", "unlink_block"]
log = logging.getLogger("routerone.limits")

LOCK_TIMEOUT_S = 1.0
def block_intact(fd: int, size_bytes: int) -> bool:
    """Whether a shared block's file still has its size (`fd` its descriptor; -1: not a file, always
    whole). Another process of the same user can truncate it (a file in /dev/shm, mode 0600): touching
    a page past the file's new end would SIGBUS this worker. The caller checks its magic next (zeroed)."""
    if fd < 0:
        return True
    try:
        return os.fstat(fd).st_size >= size_bytes
    except OSError:
        return False


_DAMAGED = "its block in /dev/shm was truncated or overwritten by another process (restart the server)"
_CONCURRENCY_RETRY_S = 1.0
_MAGIC = 0x524F4C4D31   # "ROLM1"
_LOG, _LEASE = 1, 2
# header (int64 slots)
_H_MAGIC, _H_SCOPES, _H_ENTRIES, _H_BUCKETS, _H_FREE, _H_BUMP, _H_LIVE, _H_NFREE, _H_SIZE = range(9)
_SCOPE_FIELDS = (("s_key", "q"), ("s_tok", "q"), ("s_lhead", "i"), ("s_ltail", "i"), ("s_llen", "i"),
                 ("s_qhead", "i"), ("s_qtail", "i"), ("s_qlen", "i"))
_ENTRY_FIELDS = (("e_sk", "q"), ("e_rid", "q"), ("e_at", "d"), ("e_tok", "q"), ("e_exp", "d"),
                 ("e_lnext", "i"), ("e_qnext", "i"), ("e_qprev", "i"), ("e_hnext", "i"), ("e_flags", "i"))
_SIZES = {"q": 8, "d": 8, "i": 4}


class _Full(Exception):
    pass


def _digest(text: str) -> int:
    value = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)
    return value or 1          # 0 marks an empty scope slot


def _check_room(size: int) -> None:
    """The block is sparse: a /dev/shm too small for it would fault (SIGBUS) once filled, not at creation."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return
    if st.f_bavail * st.f_frsize < size:
        raise ValueError(f"shared limiter: /dev/shm has {st.f_bavail * st.f_frsize // 2**20} MiB free, the limiter "
                         f"needs {size // 2**20} MiB (lower limiter_entries, or enlarge /dev/shm: docker --shm-size)")


def _pow2(n: int) -> int:
    return 1 << max(4, (n - 1).bit_length())


def _layout(scopes: int, entries: int, buckets: int) -> tuple[list[tuple[str, str, int, int]], int]:
    """(name, format, byte offset, count) per array, and the total size. Index 0 of each array is
    the null link, so a zero-filled block is an empty limiter."""
    arrays, offset = [("header", "q", 0, _H_SIZE)], _H_SIZE * 8
    for fields, count in ((_SCOPE_FIELDS, scopes), (_ENTRY_FIELDS, entries + 1), ((("b_head", "i"),), buckets)):
        for name, fmt in fields:
            arrays.append((name, fmt, offset, count))
            offset += (count * _SIZES[fmt] + 7) // 8 * 8
    return arrays, offset


@dataclass(frozen=True)
class _Handle:
    shm_name: str
    lock_path: str
    window_s: float
    lease_s: float


class SharedLimiterState:
    """Owned by the parent: the block and the lock. Pass `handle` to the workers; `unlink` at the end."""

    def __init__(self, *, entries: int = 1 << 19, scopes: int = 1 << 16, window_s: float = 60.0,
                 lease_s: float = 600.0) -> None:
        if window_s <= 0 or lease_s <= 0 or entries < 1 or scopes < 1:
            raise ValueError("window_s and lease_s must be > 0; entries and scopes >= 1")
        n_scopes, n_buckets = _pow2(scopes), _pow2(entries)
        arrays, size = _layout(n_scopes, entries, n_buckets)
        _check_room(size)
        self.shm = shared_memory.SharedMemory(create=True, size=size)
        header = self.shm.buf[:_H_SIZE * 8].cast("q")
        header[_H_SCOPES], header[_H_ENTRIES], header[_H_BUCKETS] = n_scopes, entries, n_buckets
        header[_H_BUMP], header[_H_MAGIC] = 1, _MAGIC
        header.release()
        self.lock_file = new_lock_file("limiter")
        self.handle = _Handle(self.shm.name, self.lock_file.path, window_s, lease_s)
        self.size_bytes = size

    def unlink(self) -> None:
        unlink_block(self.shm, self.lock_file)


def unlink_block(shm: shared_memory.SharedMemory, lock_file: OwnedLockFile) -> None:
    """The owner's end of a shared block: the memory and its lock file removed."""
    shm.close()
    shm.unlink()
    lock_file.remove()


class SharedLimiter:
    """A worker's view of a `SharedLimiterState` (see the module docstring)."""

    def __init__(self, handle: _Handle, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._shm = shared_memory.SharedMemory(name=handle.shm_name)
        self._lock = FileLock(handle.lock_path)
        self._window_s, self._lease_s, self._clock = handle.window_s, handle.lease_s, clock
        header = self._shm.buf[:_H_SIZE * 8].cast("q")
        if header[_H_MAGIC] != _MAGIC:
            header.release()
            self._shm.close()
            self._lock.close()
            raise ValueError("shared limiter: the block is not a limiter state")
        n_scopes, entries, n_buckets = header[_H_SCOPES], header[_H_ENTRIES], header[_H_BUCKETS]
        header.release()
        self._views = []
        for name, fmt, offset, count in _layout(n_scopes, entries, n_buckets)[0]:
            view = self._shm.buf[offset:offset + count * _SIZES[fmt]].cast(fmt)
            self._views.append(view)
            setattr(self, "_" + name, view)
        self._smask, self._bmask, self._nentries = n_scopes - 1, n_buckets - 1, entries
        self._size = _layout(n_scopes, entries, n_buckets)[1]
        self._fd: int = getattr(self._shm, "_fd", -1)     # POSIX SharedMemory keeps its descriptor
        self._scope_digests: dict[str, int] = {}
        self._warned = False
        self.fallback_events = 0

    @classmethod
    def attach(cls, handle: _Handle) -> "SharedLimiter":
        return cls(handle)

    # -- the Limiter seam ------------------------------------------------------------------------
    async def acquire(self, rules: Sequence[LimitRule], request_id: str, tokens: int) -> LimitDecision:
        if tokens < 0 or not request_id:
            raise ValueError("acquire needs a request_id and tokens >= 0")
        rules = normalize_rules(rules)
        keys = [self._scope_key(r.scope) for r in rules]
        rid = _digest(request_id)
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            return self._unavailable(rules, "its lock was not obtained within %.1f s" % LOCK_TIMEOUT_S)
        try:
            if not self._intact():
                return self._unavailable(rules, _DAMAGED)
            now = self._clock()
            slots = [self._swept(k, now) for k in keys]
            wait, denied, reason = self._check(rules, slots, rid, tokens, now)
            if denied is None:
                try:
                    slots = self._room(keys, slots, now)
                except _Full:
                    return self._unavailable(rules, "it is full (%d entries, %d scopes)"
                                             % (self._nentries, self._smask + 1))
                self._record(rules, slots, keys, rid, tokens, now)
            usage = [self._usage(s, now) for s in slots]
        finally:
            self._lock.release()
        headers = rate_limit_headers(rules, usage)
        if denied is not None:
            return LimitDecision(False, None, retry_after_s(wait), headers, denied, reason)
        return LimitDecision(True, LimitTicket(request_id, rules, tokens), 0.0, headers)

    async def release(self, ticket: LimitTicket, tokens_used: int) -> None:
        rid = _digest(ticket.request_id)
        keys = [self._scope_key(r.scope) for r in ticket.rules]
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            log.error("shared limiter: release skipped, the lock was not obtained (leases end on expiry)")
            return
        try:
            if not self._intact():
                self._unavailable(ticket.rules, _DAMAGED)
                return
            for key in keys:
                slot = self._find_scope(key)
                e = self._find_entry(key, rid) if slot >= 0 else 0
                if not e:
                    continue
                if self._e_flags[e] & _LEASE:
                    self._unlease(slot, e)
                keep = max(0, tokens_used)
                if self._e_flags[e] & _LOG and self._e_tok[e] > keep:
                    self._s_tok[slot] -= self._e_tok[e] - keep
                    self._e_tok[e] = keep
                if not self._e_flags[e]:
                    self._free(e)
        finally:
            self._lock.release()

    async def peek(self, rules: Sequence[LimitRule], tokens: int = 0) -> bool:
        rules = normalize_rules(rules)
        keys = [self._scope_key(r.scope) for r in rules]
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            return False
        try:
            if not self._intact():
                self._unavailable(rules, _DAMAGED)
                return False
            now = self._clock()
            slots = [self._swept(k, now) for k in keys]
            return self._check(rules, slots, 0, tokens, now)[1] is None
        finally:
            self._lock.release()

    async def close(self) -> None:
        for view in self._views:
            view.release()
        self._views.clear()
        self._shm.close()
        self._lock.close()

    async def ping(self) -> None:
        return None

    def _intact(self) -> bool:
        """Under the lock, before any access (see block_intact)."""
        return block_intact(self._fd, self._size) and self._header[_H_MAGIC] == _MAGIC

    # -- decisions (the same rules as memory.py; slot -1 is a scope with nothing logged) ----------
    def _check(self, rules, slots, rid: int, tokens: int, now: float) -> tuple[float, str | None, str | None]:
        worst, denied, reason = 0.0, None, None
        for rule, slot in zip(rules, slots):
            wait, why = self._rule_wait(rule, slot, rid, tokens, now)
            if why is None or reason == DenyReason.TOKENS_EXCEED_TPM:
                continue
            if denied is None or why == DenyReason.TOKENS_EXCEED_TPM or wait > worst:
                worst, denied, reason = wait, rule.scope, why
        return worst, denied, reason

    def _rule_wait(self, rule: LimitRule, slot: int, rid: int, tokens: int, now: float) -> tuple[float, str | None]:
        e = self._find_entry(self._s_key[slot], rid) if slot >= 0 and rid else 0
        flags = self._e_flags[e] if e else 0
        logged, token_sum = (self._s_llen[slot], self._s_tok[slot]) if slot >= 0 else (0, 0)
        wait, why = 0.0, None
        if not flags & _LOG:
            if rule.tpm is not None and tokens > rule.tpm:
                return self._window_s, DenyReason.TOKENS_EXCEED_TPM
            if rule.rpm is not None and logged >= rule.rpm:
                oldest = self._nth(self._s_lhead[slot], logged - rule.rpm) if logged else 0
                wait = self._e_at[oldest] + self._window_s - now if oldest else self._window_s   # rpm = 0
                why = DenyReason.RPM
            if rule.tpm is not None and token_sum + tokens > rule.tpm:
                tpm_wait = self._tokens_free_at(slot, rule.tpm - tokens, now)
                if why is None or tpm_wait > wait:
                    wait, why = tpm_wait, DenyReason.TPM
        leases = self._s_qlen[slot] if slot >= 0 else 0
        if rule.concurrency is not None and not flags & _LEASE and leases >= rule.concurrency and why is None:
            wait, why = _CONCURRENCY_RETRY_S, DenyReason.CONCURRENCY
        return wait, why

    def _nth(self, e: int, n: int) -> int:
        for _ in range(n):
            e = self._e_lnext[e]
        return e

    def _tokens_free_at(self, slot: int, target: int, now: float) -> float:
        remaining, e = self._s_tok[slot], self._s_lhead[slot]
        while e:
            remaining -= self._e_tok[e]
            if remaining <= target:
                return self._e_at[e] + self._window_s - now
            e = self._e_lnext[e]
        return self._window_s

    def _usage(self, slot: int, now: float) -> ScopeUsage:
        if slot < 0 or not self._s_llen[slot]:
            return ScopeUsage(0, self._s_tok[slot] if slot >= 0 else 0, 0.0)
        reset = self._e_at[self._s_ltail[slot]] + self._window_s - now
        return ScopeUsage(self._s_llen[slot], self._s_tok[slot], reset)

    def _record(self, rules, slots, keys, rid: int, tokens: int, now: float) -> None:
        for rule, slot, key in zip(rules, slots, keys):
            log_it, lease_it = rule.rpm is not None or rule.tpm is not None, rule.concurrency is not None
            e = self._find_entry(key, rid)
            if not e:
                e = self._alloc(key, rid)
            flags = self._e_flags[e]
            if log_it and not flags & _LOG:
                self._e_at[e], self._e_tok[e], self._e_lnext[e] = now, tokens, 0
                tail = self._s_ltail[slot]
                if tail:
                    self._e_lnext[tail] = e
                else:
                    self._s_lhead[slot] = e
                self._s_ltail[slot] = e
                self._s_llen[slot] += 1
                self._s_tok[slot] += tokens
                flags |= _LOG
            if lease_it and not flags & _LEASE:
                self._e_exp[e], self._e_qnext[e] = now + self._lease_s, 0
                tail = self._e_qprev[e] = self._s_qtail[slot]
                if tail:
                    self._e_qnext[tail] = e
                else:
                    self._s_qhead[slot] = e
                self._s_qtail[slot] = e
                self._s_qlen[slot] += 1
                flags |= _LEASE
            self._e_flags[e] = flags
            if not flags:
                self._free(e)

    # -- scopes ------------------------------------------------------------------------------------
    def _scope_key(self, scope: str) -> int:
        key = self._scope_digests.get(scope)
        if key is None:
            if len(self._scope_digests) > 100_000:
                self._scope_digests.clear()
            key = self._scope_digests[scope] = _digest(scope)
        return key

    def _find_scope(self, key: int) -> int:
        s_key, mask = self._s_key, self._smask
        i = key & mask
        while s_key[i]:
            if s_key[i] == key:
                return i
            i = (i + 1) & mask
        return -1

    def _swept(self, key: int, now: float) -> int:
        """The scope's slot, its expired entries swept; -1 when it has none."""
        slot = self._find_scope(key)
        if slot >= 0:
            self._sweep(slot, now)
        return slot

    def _room(self, keys: list[int], slots: list[int], now: float) -> list[int]:
        """Make room to record one request in every scope (an entry each, a slot for new ones):
        sweep everything and drop idle scopes when short; raise _Full when that is not enough."""
        h, limit = self._header, self._smask * 3 // 4
        new = slots.count(-1)
        if h[_H_NFREE] + self._nentries + 1 - h[_H_BUMP] < len(keys) or h[_H_LIVE] + new > limit:
            self._rebuild(now)
            slots = [self._find_scope(k) for k in keys]
            new = slots.count(-1)
            if h[_H_NFREE] + self._nentries + 1 - h[_H_BUMP] < len(keys) or h[_H_LIVE] + new > limit:
                raise _Full
        return [slot if slot >= 0 else self._new_scope(key) for slot, key in zip(slots, keys)]

    def _new_scope(self, key: int) -> int:
        s_key, mask = self._s_key, self._smask
        i = key & mask
        while s_key[i]:
            i = (i + 1) & mask
        s_key[i] = key
        self._header[_H_LIVE] += 1
        return i

    def _rebuild(self, now: float) -> None:
        """Sweep every scope, then lay the table out again without the idle ones."""
        keep = []
        views = [getattr(self, "_" + name) for name, _ in _SCOPE_FIELDS]
        for i in range(self._smask + 1):
            if self._s_key[i]:
                self._sweep(i, now)
                if self._s_llen[i] or self._s_qlen[i]:
                    keep.append([view[i] for view in views])
                for view in views:
                    view[i] = 0
        for row in keep:
            i = row[0] & self._smask
            while self._s_key[i]:
                i = (i + 1) & self._smask
            for view, value in zip(views, row):
                view[i] = value
        self._header[_H_LIVE] = len(keep)

    def _sweep(self, slot: int, now: float) -> None:
        horizon = now - self._window_s
        e_at, e_flags = self._e_at, self._e_flags
        e = self._s_lhead[slot]
        while e and e_at[e] <= horizon:
            nxt = self._e_lnext[e]
            self._s_llen[slot] -= 1
            self._s_tok[slot] -= self._e_tok[e]
            e_flags[e] &= ~_LOG
            if not e_flags[e]:
                self._free(e)
            e = nxt
        self._s_lhead[slot] = e
        if not e:
            self._s_ltail[slot] = 0
        e = self._s_qhead[slot]
        while e and self._e_exp[e] <= now:
            self._unlease(slot, e)
            if not e_flags[e]:
                self._free(e)
            e = self._s_qhead[slot]

    def _unlease(self, slot: int, e: int) -> None:
        prev, nxt = self._e_qprev[e], self._e_qnext[e]
        if prev:
            self._e_qnext[prev] = nxt
        else:
            self._s_qhead[slot] = nxt
        if nxt:
            self._e_qprev[nxt] = prev
        else:
            self._s_qtail[slot] = prev
        self._s_qlen[slot] -= 1
        self._e_flags[e] &= ~_LEASE

    # -- entries -----------------------------------------------------------------------------------
    def _bucket(self, key: int, rid: int) -> int:
        return (key ^ rid) & self._bmask      # both are uniform digests

    def _find_entry(self, key: int, rid: int) -> int:
        e = self._b_head[self._bucket(key, rid)]
        e_sk, e_rid, e_hnext = self._e_sk, self._e_rid, self._e_hnext
        while e:
            if e_rid[e] == rid and e_sk[e] == key:
                return e
            e = e_hnext[e]
        return 0

    def _alloc(self, key: int, rid: int) -> int:
        h = self._header
        e = h[_H_FREE]
        if e:
            h[_H_FREE] = self._e_hnext[e]
            h[_H_NFREE] -= 1
        else:
            e = h[_H_BUMP]
            h[_H_BUMP] = e + 1
        b = self._bucket(key, rid)
        self._e_sk[e], self._e_rid[e], self._e_flags[e] = key, rid, 0
        self._e_hnext[e] = self._b_head[b]
        self._b_head[b] = e
        return e

    def _free(self, e: int) -> None:
        b = self._bucket(self._e_sk[e], self._e_rid[e])
        e_hnext, cur = self._e_hnext, self._b_head[b]
        if cur == e:
            self._b_head[b] = e_hnext[e]
        else:
            while cur and e_hnext[cur] != e:
                cur = e_hnext[cur]
            if cur:
                e_hnext[cur] = e_hnext[e]
        h = self._header
        e_hnext[e], h[_H_FREE] = h[_H_FREE], e
        h[_H_NFREE] += 1

    def _unavailable(self, rules, why: str) -> LimitDecision:
        self.fallback_events += 1
        if not self._warned:
            self._warned = True
            log.warning("shared limiter: refusing requests (503 limiter_unavailable) because %s; raise "
                        "limiter_entries or set redis_url", why)
        return LimitDecision(False, None, retry_after_s(1.0), {}, rules[0].scope if rules else None,
                             DenyReason.UNAVAILABLE)

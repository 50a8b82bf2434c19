"""SharedLimiter beyond the contract suite (which runs it like MemoryLimiter and RedisLimiter):
exactness across real processes, the window boundaries on a fake clock, and what happens when its
fixed capacity is reached (refused with limiter_unavailable, never admitted unchecked, and the
counts stay exact once room frees).
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import uuid

import pytest

from routerone.limits import DenyReason, LimitRule, SharedLimiter, SharedLimiterState
from routerone.limits.shared import _Handle


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state():
    made: list[SharedLimiterState] = []

    def make(**kw) -> SharedLimiterState:
        made.append(SharedLimiterState(**kw))
        return made[-1]
    yield make
    for s in made:
        s.unlink()


def _scope(name: str) -> str:
    return f"{name}:{uuid.uuid4().hex[:12]}"


# -- several processes --------------------------------------------------------------------------------
def _hammer(handle, rules: list[LimitRule], tokens: int, n: int, hold: bool, barrier, results) -> None:
    async def run() -> int:
        limiter = SharedLimiter(handle)
        barrier.wait()
        decisions = await asyncio.gather(
            *(limiter.acquire(rules, f"{os.getpid()}-{i}", tokens) for i in range(n)))
        assert all(d.reason != DenyReason.UNAVAILABLE for d in decisions)
        if not hold:
            await asyncio.gather(*(limiter.release(d.ticket, tokens) for d in decisions if d.allowed))
        await limiter.close()
        return sum(d.allowed for d in decisions)
    results.put(asyncio.run(run()))


@pytest.mark.slow
@pytest.mark.parametrize("rules, tokens, n, admitted", [
    ([LimitRule("key:rpm", rpm=30)], 0, 50, 30),
    ([LimitRule("key:tpm", tpm=1000)], 37, 45, 1000 // 37),
    ([LimitRule("key:conc", concurrency=7)], 0, 20, 7),
    ([LimitRule("key:both", rpm=100), LimitRule("acct:both", rpm=25)], 0, 30, 25),   # all-or-nothing
], ids=["rpm", "tpm", "concurrency", "two-rules"])
def test_processes_sharing_one_limiter_admit_exactly_r(state, rules, tokens, n, admitted):
    """R+k requests in one window over 3 processes (n each, all at once) -> exactly R admitted."""
    ctx = multiprocessing.get_context("spawn")
    shared = state(entries=4096, scopes=64)
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(shared.handle, rules, tokens, n, True, barrier, results))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    counts = [results.get(timeout=5) for _ in procs]
    assert sum(counts) == admitted, counts


# -- exact boundaries on a fake clock -----------------------------------------------------------------
async def test_window_boundaries_are_exact(state):
    clock = _Clock()
    limiter = SharedLimiter(state().handle, clock=clock)
    rule = LimitRule(_scope("key"), rpm=3, tpm=300)
    for offset in (0, 10, 20):
        clock.now = 1000 + offset
        assert (await limiter.acquire([rule], uuid.uuid4().hex, 100)).allowed
    clock.now = 1030
    assert (await limiter.acquire([rule], "a", 0)).retry_after_s == 30.0
    clock.now = 1059.5
    assert (await limiter.acquire([rule], "b", 0)).retry_after_s == 1.0
    clock.now = 1060.0                                           # the t=0 entry just left
    ok = await limiter.acquire([rule], "c", 100)
    assert ok.allowed and ok.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert (await limiter.acquire([rule], "d", 100)).retry_after_s == 10.0   # t=10 leaves at 1070
    tpm = LimitRule(_scope("key"), tpm=100)
    for offset, tokens in ((0, 10), (5, 60), (7, 30)):
        clock.now = 2000 + offset
        assert (await limiter.acquire([tpm], uuid.uuid4().hex, tokens)).allowed
    clock.now = 2010
    assert (await limiter.acquire([tpm], "e", 50)).retry_after_s == 55.0     # 10 and 60 must leave
    await limiter.close()


# -- fixed capacity -----------------------------------------------------------------------------------
async def test_full_entries_refuse_as_unavailable_then_recover_exactly(state):
    clock = _Clock()
    limiter = SharedLimiter(state(entries=8, scopes=16).handle, clock=clock)
    rule = LimitRule(_scope("key"), rpm=100)
    assert all([(await limiter.acquire([rule], f"r{i}", 0)).allowed for i in range(8)])
    full = await limiter.acquire([rule], "r8", 0)
    assert not full.allowed and full.reason == DenyReason.UNAVAILABLE and full.ticket is None
    assert limiter.fallback_events == 1
    assert await limiter.peek([LimitRule(_scope("other"), rpm=1)]) is True     # peek needs no room
    clock.now += 60                                              # the 8 leave the window: room again
    assert all([(await limiter.acquire([rule], f"s{i}", 0)).allowed for i in range(8)])
    tight = LimitRule(rule.scope, rpm=8)                          # and the count is still exact
    denied = await limiter.acquire([tight], "t", 0)
    assert not denied.allowed and denied.reason == DenyReason.RPM
    assert denied.headers["x-ratelimit-remaining-requests"] == "0"
    await limiter.close()


async def test_released_leases_free_their_entries(state):
    limiter = SharedLimiter(state(entries=4, scopes=16).handle)
    rule = LimitRule(_scope("key"), concurrency=2)
    for i in range(20):                                           # 20 requests through 4 entries
        d = await limiter.acquire([rule], f"r{i}", 0)
        assert d.allowed, (i, d)
        await limiter.release(d.ticket, 0)
        await limiter.release(d.ticket, 0)                        # idempotent
    await limiter.close()


async def test_idle_scopes_make_room_in_the_scope_table(state):
    clock = _Clock()
    limiter = SharedLimiter(state(entries=256, scopes=16).handle, clock=clock)   # room for 11 scopes
    busy = [LimitRule(_scope(f"key{i}"), rpm=1) for i in range(11)]
    for rule in busy:
        assert (await limiter.acquire([rule], "x", 0)).allowed
    assert (await limiter.acquire([LimitRule(_scope("new"), rpm=1)], "x", 0)).reason == DenyReason.UNAVAILABLE
    clock.now += 61                                               # all 11 idle now: dropped on the rebuild
    fresh = [LimitRule(_scope(f"fresh{i}"), rpm=1) for i in range(11)]
    for rule in fresh:
        assert (await limiter.acquire([rule], "y", 0)).allowed
    for rule in fresh:                                            # each still counts its own request
        assert (await limiter.acquire([rule], "z", 0)).reason == DenyReason.RPM
    await limiter.close()


def test_a_block_that_is_not_a_limiter_is_refused(tmp_path):
    from multiprocessing import shared_memory
    block = shared_memory.SharedMemory(create=True, size=4096)
    lock_file = tmp_path / "limiter.lock"
    lock_file.touch()
    try:
        with pytest.raises(ValueError, match="not a limiter state"):
            SharedLimiter(_Handle(block.name, str(lock_file), 60.0, 600.0))
    finally:
        block.close()
        block.unlink()


# -- the same decisions as MemoryLimiter ----------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
async def test_random_operations_decide_like_the_memory_limiter(state, seed):
    """A random mix of acquires (repeated request ids too), releases, peeks and clock steps over a few
    overlapping scopes: every decision, Retry-After and header equals MemoryLimiter's."""
    import random

    from routerone.limits import MemoryLimiter
    rng = random.Random(seed)
    clock = _Clock()
    memory = MemoryLimiter(window_s=20.0, lease_s=30.0, clock=clock)
    shared = SharedLimiter(state(entries=2048, scopes=64, window_s=20.0, lease_s=30.0).handle, clock=clock)
    names = [_scope(n) for n in ("key", "key", "acct", "dep")]
    limits = [dict(rpm=rng.choice([None, 3, 8]), tpm=rng.choice([None, 200, 500]),
                   concurrency=rng.choice([None, 2, 4])) for _ in names]
    tickets = []
    for step in range(1500):
        op = rng.random()
        if op < 0.6:
            picked = rng.sample(range(len(names)), rng.randint(1, 3))
            rules = [LimitRule(names[i], **limits[i]) for i in picked]
            rid, tokens = f"r{rng.randint(0, 400)}", rng.choice([0, 10, 60, 150, 600])
            a, b = await memory.acquire(rules, rid, tokens), await shared.acquire(rules, rid, tokens)
            assert (a.allowed, a.reason, a.denied_scope, a.retry_after_s, a.headers) == \
                   (b.allowed, b.reason, b.denied_scope, b.retry_after_s, b.headers), (step, rules, rid, tokens)
            if a.allowed:
                tickets.append(a.ticket)
        elif op < 0.8 and tickets:
            ticket = tickets.pop(rng.randrange(len(tickets)))
            used = rng.randint(0, ticket.tokens + 5)
            await memory.release(ticket, used)
            await shared.release(ticket, used)
        elif op < 0.9:
            rules = [LimitRule(names[i], **limits[i]) for i in rng.sample(range(len(names)), 2)]
            tokens = rng.choice([0, 100])
            assert await memory.peek(rules, tokens) == await shared.peek(rules, tokens), step
        else:
            clock.now += rng.choice([0.5, 1.0, 3.0, 7.5, 20.0])
    assert shared.fallback_events == 0
    await shared.close()


def _die_holding_the_lock(handle, ready) -> None:
    limiter = SharedLimiter(handle)
    assert limiter._lock.acquire(timeout=1.0)
    ready.set()
    import time
    time.sleep(60)          # killed here, the lock still held


@pytest.mark.slow
def test_a_worker_killed_holding_the_lock_does_not_wedge_the_others(state):
    """The lock is a flock: the kernel drops it with its dead holder, so the survivors keep deciding
    (a process-shared semaphore would stay taken and refuse every limited request from then on)."""
    ctx = multiprocessing.get_context("spawn")
    shared = state(entries=4096, scopes=64)
    ready = ctx.Event()
    victim = ctx.Process(target=_die_holding_the_lock, args=(shared.handle, ready))
    victim.start()
    try:
        assert ready.wait(30)
        survivor = SharedLimiter(shared.handle)
        assert not survivor._lock.acquire(timeout=0.05)      # really held by the other process
        victim.kill()                                         # SIGKILL: no cleanup in the victim
        victim.join(10)
        rule = [LimitRule(_scope("key"), rpm=2)]
        got = [asyncio.run(survivor.acquire(rule, f"r{i}", 0)) for i in range(3)]
        assert [d.allowed for d in got] == [True, True, False]
        assert got[2].reason == DenyReason.RPM
        asyncio.run(survivor.close())
    finally:
        if victim.is_alive():
            victim.kill()


# -- the block truncated by another process of the same user (ops7) ---------------------------------
_TRUNCATED_WORKER = r"""
import asyncio, os, sys
from routerone.limits import LimitRule, LimitTicket, SharedLimiter, SharedLimiterState
state = SharedLimiterState(entries=1024)
try:
    async def run():
        limiter = SharedLimiter(state.handle)
        rules = [LimitRule("key:truncated", rpm=100)]
        assert (await limiter.acquire(rules, "before", 0)).allowed
        fd = os.open("/dev/shm/" + state.handle.shm_name.lstrip("/"), os.O_RDWR)   # someone else's open
        full = os.fstat(fd).st_size
        os.ftruncate(fd, 0 if sys.argv[1] == "zeroed" else int(sys.argv[1]))
        if sys.argv[1] == "zeroed":                    # and grown again: the size is right, the content gone
            os.ftruncate(fd, full)
        os.close(fd)
        decision = await limiter.acquire(rules, "after", 0)
        print("acquire", decision.allowed, decision.reason, flush=True)
        print("peek", await limiter.peek(rules), flush=True)
        await limiter.release(decision.ticket or LimitTicket("after", tuple(rules), 0), 0)
        print("released", flush=True)
        await limiter.close()
    asyncio.run(run())
finally:
    state.unlink()
"""


@pytest.mark.parametrize("size", ["0", "4096", "zeroed"])
def test_a_block_truncated_by_another_process_refuses_instead_of_killing_the_worker(size):
    """Before (ops7), the next acquire touched pages past the file's new end: SIGBUS, the worker
    died. Now each operation checks the block's size (and its magic) under the lock first and refuses
    with limiter_unavailable. (A truncation inside that check's few microseconds still faults: only
    a sealed memfd would close that, see the module docstring.)"""
    out = subprocess.run([sys.executable, "-c", _TRUNCATED_WORKER, size], capture_output=True,
                         text=True, timeout=60, env={**os.environ})
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert out.stdout.splitlines() == ["acquire False limiter_unavailable", "peek False", "released"], out

"""SQLiteStore writes on the event loop, and hands a batch to its thread when another process holds
the write lock, so the loop never waits on a lock."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import time

from routerone.store.base import NewKey, Reservation
from routerone.store.sqlite import SQLiteStore


async def _funded(path: str) -> tuple[SQLiteStore, int, int]:
    store = SQLiteStore(path)
    await store.migrate()
    acc = await store.create_account("a")
    await store.adjust_balance(acc.id, 1_000_000, kind="credit")
    key = await store.create_key(NewKey(account_id=acc.id, key_hash="h", prefix="p"))
    return store, acc.id, key.id


async def test_a_locked_database_is_waited_for_off_the_loop(tmp_path) -> None:
    path = str(tmp_path / "r1.db")
    store, account_id, key_id = await _funded(path)
    try:
        assert await store.reserve(Reservation("first", account_id, key_id, 100, time.time() + 60))
        assert store.handoffs == 0                       # uncontended: ran on the loop

        other = sqlite3.connect(path, isolation_level=None)   # "another process" takes the write lock
        other.execute("BEGIN IMMEDIATE")
        pending = asyncio.ensure_future(store.reserve(Reservation("second", account_id, key_id, 100,
                                                                  time.time() + 60)))
        ticks = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.3:            # the loop keeps turning meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
        assert not pending.done() and ticks >= 10
        assert store.handoffs == 1
        other.execute("COMMIT")
        other.close()
        assert await asyncio.wait_for(pending, 5) is True

        assert await store.reserve(Reservation("third", account_id, key_id, 100, time.time() + 60))
        assert store.handoffs == 1                       # back on the loop once the lock is free
        acc = await store.get_account(account_id)
        assert acc is not None and acc.reserved_micros == 300
    finally:
        await store.close()


async def test_calls_of_one_loop_turn_share_one_transaction_and_fail_alone(tmp_path) -> None:
    store, account_id, key_id = await _funded(str(tmp_path / "r1.db"))
    try:
        assert await store.reserve(Reservation("dup", account_id, key_id, 10, time.time() + 60))
        results = await asyncio.gather(
            *(store.reserve(Reservation("dup" if i == 3 else f"r{i}", account_id, key_id, 10, time.time() + 60))
              for i in range(8)), return_exceptions=True)
        assert isinstance(results[3], sqlite3.IntegrityError)
        assert [r for i, r in enumerate(results) if i != 3] == [True] * 7
        acc = await store.get_account(account_id)
        assert acc is not None and acc.reserved_micros == 8 * 10
    finally:
        await store.close()


async def test_the_checkpointer_truncates_a_grown_wal_and_writers_never_do(tmp_path, monkeypatch) -> None:
    """A writer that restarts a big WAL truncates it when journal_size_limit is set, and did so on
    the event loop (a 300 ms stall at p99 in the benchmark). The checkpointer thread does it instead."""
    monkeypatch.setattr(SQLiteStore, "WAL_TRUNCATE_BYTES", 256 << 10)
    path = str(tmp_path / "r1.db")
    store, account_id, key_id = await _funded(path)
    try:
        for i in range(400):       # ~400 commits: well past 256 KB of WAL
            assert await store.reserve(Reservation(f"w{i}", account_id, key_id, 1, time.time() + 60))
        assert store._loop_db is not None
        assert store._loop_db.execute("PRAGMA journal_size_limit").fetchone()[0] == -1
        wal = path + "-wal"
        deadline = time.monotonic() + 5
        while os.path.getsize(wal) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert os.path.getsize(wal) == 0, "the checkpointer did not truncate the WAL"
        assert await store.reserve(Reservation("after", account_id, key_id, 1, time.time() + 60))
        acc = await store.get_account(account_id)
        assert acc is not None and acc.reserved_micros == 401
    finally:
        await store.close()


async def test_a_lock_held_briefly_is_retried_on_the_loop_not_handed_to_the_thread(tmp_path) -> None:
    """Two workers on one file hold the write lock for one batch each (microseconds): the loop tries
    again on its next turns instead of sending the batch to the thread, whose busy handler sleeps."""
    path = str(tmp_path / "r1.db")
    store, account_id, key_id = await _funded(path)
    try:
        assert await store.reserve(Reservation("first", account_id, key_id, 100, time.time() + 60))
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, lambda: (other.execute("COMMIT"), other.close()))   # held ~10 ms
        assert await asyncio.wait_for(store.reserve(Reservation("second", account_id, key_id, 100,
                                                                time.time() + 60)), 5) is True
        assert store.lock_retries > 0 and store.handoffs == 0
        acc = await store.get_account(account_id)
        assert acc is not None and acc.reserved_micros == 200
    finally:
        await store.close()

"""The SQLite engine under `SQLiteStore`: WAL, group commit, writes on the event loop when they cannot wait.

Writes (`_tx`) are group-committed: the calls made in one turn of the event loop share one
transaction, in arrival order, so results are those of running them one after another while the
commit is paid once per batch (a call that raises sends the batch back to run call by call, see
`_run_batch`). A batch runs on the event-loop thread
itself, on a connection whose busy timeout is 0: in WAL mode with synchronous=NORMAL a commit
appends to the WAL in the OS page cache and never fsyncs (checkpoints, which do, run on their own
thread and connection), so a batch costs microseconds per call and no thread hand-off. Measured: a
hop to a writer thread per batch cost more than the SQL itself, because every sqlite3 call on that
thread releases and re-takes the GIL while the loop is busy. If another process holds the write
lock (several gateways on one file), the batch is handed to the writer thread, whose connection
waits for the lock (busy_timeout 30 s), so the loop never waits on a lock. Reads and `_run` calls
use that thread too. `BEGIN IMMEDIATE` takes SQLite's write lock up front, so several processes on
one file serialize correctly. An in-memory database (":memory:") has one connection and runs
everything on the thread.
"""
from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

__all__ = ["SQLiteEngine"]
T = TypeVar("T")


class SQLiteEngine:
    """Connections, the group-committed write path (`_tx`), the writer thread (`_run`) and the
    checkpointer of one SQLite file; `SQLiteStore` adds the store's queries on top."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None          # the writer thread's connection
        self._loop_db: sqlite3.Connection | None = None     # the event loop's (busy timeout 0)
        self._inline = path != ":memory:" and not path.startswith("file::memory:")
        self.handoffs = 0                                   # batches handed to the thread (lock busy)
        self.lock_retries = 0                               # tries on the loop that found the lock busy
        self._pending: list[tuple[Callable[[sqlite3.Connection], object], asyncio.Future]] = []
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()
        self._pumping = False

    # -- plumbing -------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open(busy_timeout_ms=30_000)
            if self._inline:
                # Checkpoints (copying the WAL into the database file, with an fsync) happen on a
                # separate connection and thread, so a request's commit never pays for one.
                self._checkpointer = threading.Thread(target=self._checkpoint_loop, daemon=True,
                                                      name="sqlite-checkpoint")
                self._checkpointer.start()
        return self._db

    def _open(self, *, busy_timeout_ms: int) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA busy_timeout=30000")
        for attempt in range(50):   # switching to WAL needs a moment alone with a new file
            try:
                db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError:
                time.sleep(0.02 * (attempt + 1))
        db.execute("PRAGMA synchronous=NORMAL")
        if self._inline:
            db.execute("PRAGMA wal_autocheckpoint=0")
            # no journal_size_limit: a writer that restarts a big WAL would truncate it, on the event
            # loop, and truncating hundreds of MB took ~300 ms here; the checkpointer truncates instead
        db.execute("PRAGMA foreign_keys=ON")
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        return db

    WAL_TRUNCATE_BYTES = 64 << 20

    def _checkpoint_loop(self, interval_s: float = 1.0) -> None:
        """Every second a PASSIVE checkpoint, which never blocks writers. Under steady load that
        cannot finish (new frames keep arriving), so the WAL grows; past WAL_TRUNCATE_BYTES this
        thread takes a TRUNCATE checkpoint, which holds the write lock while it copies the rest and
        truncates the file. Meanwhile the loop's writes find the lock taken and wait on the writer
        thread (see `_pump_on_loop`): requests wait, the event loop does not."""
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        wal = self.path + "-wal"
        try:
            while not self._stop.wait(interval_s):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    if os.path.exists(wal) and os.path.getsize(wal) > self.WAL_TRUNCATE_BYTES:
                        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                except sqlite3.Error:
                    pass   # busy now; the next round catches up
        finally:
            db.close()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._connect()))

    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in a write transaction, group-committed with the other calls of this loop turn
        (see the module docstring)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, fut))
        if not self._pumping:
            self._pumping = True
            if self._inline and self._db is not None:
                loop.call_soon(self._pump_on_loop, loop)
            else:
                loop.run_in_executor(self._pool, self._pump, loop)
        return await fut

    # Another process holding the write lock (`serve --workers N` on one file) usually holds it for
    # one batch: tens of microseconds. The loop tries again on its next turns (LOCK_SPIN_S), then
    # every millisecond (LOCK_RETRY_S), calls arriving meanwhile joining the batch; only a lock held
    # longer than that (a TRUNCATE checkpoint, a long admin transaction) sends the batch to the
    # writer thread. Measured: handing every contended batch to the thread, whose connection waits
    # in SQLite's busy handler (it sleeps 1, 2, 5, 10 ms ... between tries), left two workers on
    # one file idle ~15% of the time and doubled their p99.
    LOCK_SPIN_S = 0.002
    LOCK_RETRY_S = 0.05

    def _pump_on_loop(self, loop: asyncio.AbstractEventLoop, waiting_since: float = 0.0) -> None:
        if self._loop_db is None:
            self._loop_db = self._open(busy_timeout_ms=0)
        batch, self._pending = self._pending, []
        try:
            self._loop_db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:   # another process holds the write lock (see LOCK_SPIN_S)
            self._pending[:0] = batch
            now = time.perf_counter()
            waiting_since = waiting_since or now
            self.lock_retries += 1
            if now - waiting_since < self.LOCK_SPIN_S:
                loop.call_soon(self._pump_on_loop, loop, waiting_since)
            elif now - waiting_since < self.LOCK_RETRY_S:
                loop.call_later(0.001, self._pump_on_loop, loop, waiting_since)
            else:                          # held for long: wait off the loop
                self.handoffs += 1
                loop.run_in_executor(self._pool, self._pump, loop)
            return
        _resolve(_run_batch(self._loop_db, batch))
        if self._pending:                 # a caller added work while resolving: next turn
            loop.call_soon(self._pump_on_loop, loop)
        else:
            self._pumping = False

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        db = self._connect()
        while True:
            batch, self._pending = self._pending, []
            if not batch:
                self._pumping = False
                if not self._pending:     # nothing slipped in between the check and the flag
                    return
                self._pumping = True
                continue
            try:
                db.execute("BEGIN IMMEDIATE")
            except Exception as exc:  # noqa: BLE001 - tell every caller
                loop.call_soon_threadsafe(_resolve, [(fut, False, exc) for _, fut in batch])
                continue
            loop.call_soon_threadsafe(_resolve, _run_batch(db, batch))

    async def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(5)
        if self._loop_db is not None:
            self._loop_db.close()
            self._loop_db = None
        if self._db is not None:
            await self._run(lambda db: db.close())
            self._db = None
        self._pool.shutdown(wait=True)


def _run_batch(db: sqlite3.Connection, batch: list) -> list[tuple[asyncio.Future, bool, object]]:
    """Inside the transaction BEGIN IMMEDIATE opened: run the calls in order, then COMMIT. No
    savepoints on the hot path (they cost as much as the statements): if any call raises, or the
    commit fails, the whole batch is rolled back and each call is run again in a transaction of its
    own, so only the failing caller gets its exception."""
    try:
        results = [(fut, True, fn(db)) for fn, fut in batch]
        db.execute("COMMIT")
        return results
    except Exception as exc:  # noqa: BLE001 - retried one by one below
        if db.in_transaction:
            db.execute("ROLLBACK")
        if len(batch) == 1:
            return [(batch[0][1], False, exc)]
    results = []
    for fn, fut in batch:
        try:
            db.execute("BEGIN IMMEDIATE")
            results.append((fut, True, fn(db)))
            db.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - that caller's own error
            if db.in_transaction:
                db.execute("ROLLBACK")
            results.append((fut, False, exc))
    return results


def _resolve(results: list[tuple[asyncio.Future, bool, object]]) -> None:
    for fut, ok, value in results:
        if not fut.done():
            fut.set_result(value) if ok else fut.set_exception(value)  # type: ignore[arg-type]

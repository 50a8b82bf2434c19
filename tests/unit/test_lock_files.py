"""The shared-memory limiter's and sticky table's lock files (limits/filelock.py): a gateway killed
with SIGKILL left its zero-byte `routerone-*.lock` files in /dev/shm for ever. The next start
removes the stale ones, and never one whose owner is alive."""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from routerone.limits.filelock import FileLock, LEGACY_STALE_S, new_lock_file, remove_stale_lock_files

SPAWN = multiprocessing.get_context("spawn")


def _own_and_wait(lock_dir: str, kind: str, made, stop) -> None:
    """A gateway's parent: makes a lock file, says where, lives until told (or killed)."""
    lock = new_lock_file(kind, lock_dir)
    made.put(lock.path)
    stop.wait(60)
    lock.remove()


@pytest.fixture
def owner(tmp_path):
    """Start an owner process: (path of its lock file, stop it cleanly, SIGKILL it)."""
    procs = []

    def start(kind: str = "limiter"):
        made, stop = SPAWN.Queue(), SPAWN.Event()
        p = SPAWN.Process(target=_own_and_wait, args=(str(tmp_path), kind, made, stop))
        p.start()
        procs.append(p)
        path = made.get(timeout=60)

        def kill() -> None:
            os.kill(p.pid, signal.SIGKILL)
            p.join(10)

        def stop_cleanly() -> None:
            stop.set()
            p.join(10)
        return path, stop_cleanly, kill
    yield start
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join(10)


def _names(tmp_path: Path) -> set[str]:
    return {p.name for p in tmp_path.iterdir()}


def test_a_killed_owners_lock_file_is_removed_at_the_next_start(tmp_path, owner) -> None:
    killed, _, kill = owner("limiter")
    alive, stop_alive, _ = owner("sticky")
    kill()
    assert Path(killed).exists()                    # SIGKILL: no clean-up ran
    mine = new_lock_file("limiter", str(tmp_path))  # the next start
    assert _names(tmp_path) == {Path(alive).name, Path(mine.path).name}
    stop_alive()
    mine.remove()
    assert _names(tmp_path) == set()


def test_a_live_owners_file_is_kept_while_its_workers_hold_the_flock(tmp_path, owner) -> None:
    alive, _, kill = owner()
    worker = FileLock(alive)                        # a worker attached to it, inside its critical section
    assert worker.acquire(timeout=1)
    assert remove_stale_lock_files(str(tmp_path)) == []
    worker.release()
    assert remove_stale_lock_files(str(tmp_path)) == []
    assert Path(alive).exists()
    kill()
    assert remove_stale_lock_files(str(tmp_path)) == [alive]
    assert worker.acquire(timeout=1)                # an orphaned worker keeps working on the open file
    worker.release()
    worker.close()


def test_this_processs_own_lock_files_are_kept(tmp_path) -> None:
    first = new_lock_file("limiter", str(tmp_path))
    second = new_lock_file("sticky", str(tmp_path))
    assert remove_stale_lock_files(str(tmp_path)) == []
    assert Path(first.path).exists() and Path(second.path).exists()
    first.remove()
    second.remove()
    second.remove()                                 # twice: no error


def test_files_from_before_the_owner_mark_go_when_old_and_unlocked(tmp_path) -> None:
    """A lock file made by an earlier version has no owner mark: removed only when no flock is held
    on it and it is older than LEGACY_STALE_S (its gateway's workers open it within seconds of it
    being made and never again); other files are never touched."""
    old, fresh, held = (tmp_path / f"routerone-limiter-{n}.lock" for n in ("old0001", "new0001", "held001"))
    other = tmp_path / "someone-else.lock"
    for p in (old, fresh, held, other):
        p.touch()
    long_ago = time.time() - LEGACY_STALE_S - 60
    for p in (old, held, other):
        os.utime(p, (long_ago, long_ago))
    holder = FileLock(str(held))
    assert holder.acquire(timeout=1)
    assert remove_stale_lock_files(str(tmp_path)) == [str(old)]
    assert _names(tmp_path) == {fresh.name, held.name, other.name}
    holder.release()
    holder.close()

"""An exclusive lock between processes that dies with its holder: `flock` on a small file.

Each `FileLock` opens the file itself, so it excludes other processes and other `FileLock`s on the
same path in this one; the kernel drops the lock when the holding process dies (even by SIGKILL),
so a killed holder cannot wedge the others (a process-shared semaphore would stay taken).
Used by the shared-memory limiter, whose critical sections last microseconds: a contended
`acquire` first tries again at once for up to `SPIN_S` (the holder, running on another core, is
about to release), then polls every `POLL_S`, giving up after `timeout`. Measured with `serve
--workers 2` at c=64 on 2 cores: ~8 requests in 100 found the lock taken, and sleeping at once (a
50 us sleep took 180 us here, timer slack included) stopped the worker's event loop that long each
time, for a lock free again a few microseconds later.

The lock files themselves: `new_lock_file` makes one in /dev/shm for a shared block's owner (the
`serve --workers N` parent) and marks it as owned with an open-file-description (OFD) read lock,
held until `remove` or the owner's death. OFD locks and `flock` do not interact on Linux, so the
mark never gets in the workers' way. An owner killed by SIGKILL cannot remove its file; the next
`new_lock_file` removes every `routerone-*.lock` file in the directory whose mark is gone
(`remove_stale_lock_files`): a live owner's mark makes the test lock fail, so its file stays.
Files made before the mark existed are removed only when no `flock` is held on them and they are
older than LEGACY_STALE_S (their gateway's workers opened them within seconds, and never again).
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import struct
import tempfile
import time

__all__ = ["FileLock", "OwnedLockFile", "new_lock_file", "remove_stale_lock_files", "LEGACY_STALE_S"]
log = logging.getLogger("routerone.limits")

_BUSY = (errno.EAGAIN, errno.EWOULDBLOCK)
_MARK_BUSY = (errno.EAGAIN, errno.EACCES)
_PREFIX, _OWNED, _SUFFIX = "routerone-", "-owned-", ".lock"
LEGACY_STALE_S = 3600.0
_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", None)      # Linux >= 3.15; elsewhere nothing is removed


def _ofd_lock(fd: int, kind: int) -> bool:
    """An OFD lock on the whole file, not waiting: True when taken, False when another holds one.
    struct flock: l_type, l_whence (short), l_start, l_len (off_t), l_pid (0 for OFD locks)."""
    try:
        fcntl.fcntl(fd, _OFD_SETLK, struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0))
        return True
    except OSError as exc:
        if exc.errno not in _MARK_BUSY:
            raise
        return False


class FileLock:
    __slots__ = ("_fd",)
    POLL_S = 0.00005
    SPIN_S = 0.0002

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def _try(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in _BUSY:
                raise
            return False

    def acquire(self, timeout: float) -> bool:
        """True once held; False if another holder kept it for `timeout` seconds."""
        if self._try():
            return True
        now = time.monotonic()
        spin_until, deadline = now + min(self.SPIN_S, timeout), now + timeout
        while time.monotonic() < spin_until:
            if self._try():
                return True
        while time.monotonic() < deadline:
            time.sleep(self.POLL_S)
            if self._try():
                return True
        return False

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OwnedLockFile:
    """A lock file and its owner's mark (see the module docstring); `remove` at the owner's end."""
    __slots__ = ("path", "_fd")

    def __init__(self, path: str, fd: int) -> None:
        self.path, self._fd = path, fd

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if self._fd >= 0:
            os.close(self._fd)      # the mark goes with the descriptor
            self._fd = -1


def _lock_dir() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


def new_lock_file(kind: str, lock_dir: str | None = None) -> OwnedLockFile:
    """A fresh, empty, owned lock file for a shared block's FileLock (in /dev/shm where there is
    one), made after removing the stale ones a killed owner left there."""
    lock_dir = lock_dir or _lock_dir()
    try:
        remove_stale_lock_files(lock_dir or tempfile.gettempdir())
    except OSError as exc:       # a clean-up, never a reason not to start
        log.warning("could not look for stale lock files: %s", exc)
    fd, path = tempfile.mkstemp(prefix=f"{_PREFIX}{kind}{_OWNED}", suffix=_SUFFIX, dir=lock_dir)
    if _OFD_SETLK is not None:
        _ofd_lock(fd, fcntl.F_RDLCK)
    return OwnedLockFile(path, fd)


def remove_stale_lock_files(lock_dir: str, *, now: float | None = None) -> list[str]:
    """Remove this user's `routerone-*.lock` files in `lock_dir` that no live owner marks (see the
    module docstring); returns their paths. Never one a live owner marks, nor another user's."""
    if _OFD_SETLK is None:
        return []
    now = time.time() if now is None else now
    removed = []
    for name in sorted(os.listdir(lock_dir)):
        if name.startswith(_PREFIX) and name.endswith(_SUFFIX) and _stale(path := os.path.join(lock_dir, name), now):
            try:
                os.unlink(path)
                removed.append(path)
            except FileNotFoundError:
                pass
    if removed:
        log.info("removed %d stale lock file(s) left by a gateway that was killed: %s", len(removed), removed)
    return removed


def _stale(path: str, now: float) -> bool:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:                 # gone, another user's, a link: not ours to judge
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            return False
        if _OWNED in os.path.basename(path):
            return _ofd_lock(fd, fcntl.F_WRLCK)        # taken: nobody marks it any more
        if now - st.st_mtime < LEGACY_STALE_S:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in _BUSY:
                raise
            return False
    finally:
        os.close(fd)                # our probe lock (OFD or flock) goes with it

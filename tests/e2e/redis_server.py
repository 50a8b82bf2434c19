"""A redis-server of the test's own, on a free port, that the test may stop and start again (the
shared Redis at 127.0.0.1:6379 is used by others and must never be stopped). No persistence: a
restart comes back empty, as a Redis restarted without a dump would."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

__all__ = ["OwnRedis"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """`with OwnRedis() as r: r.url; r.stop(); r.start()` (same port after a restart)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self._dir = tempfile.mkdtemp(prefix="ro-redis-")

    def start(self, timeout_s: float = 10.0) -> "OwnRedis":
        exe = shutil.which("redis-server")
        if exe is None:
            reason = "redis-server is not installed"
            if os.environ.get("CI"):
                pytest.fail(f"{reason}; CI is set, so the Redis restart tests must run", pytrace=False)
            pytest.skip(reason)
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self._dir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)      # as a crash: no goodbye to clients
            self.proc.wait(10)
        self.proc = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def __enter__(self) -> "OwnRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

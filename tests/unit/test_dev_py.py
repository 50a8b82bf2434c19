"""`python3 dev.py serve` as an operator (or a supervisor, or `timeout`) stops it: with SIGTERM.

dev.py ran Router One as a child process and did not pass the signal on, so `kill <dev.py>` ended
dev.py and left Router One orphaned, still listening on the port (found playing a new operator).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import dev  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _kill_leftovers(port: int) -> list[int]:
    """Router One processes still serving `port` (the orphan this test is about), ended here."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"routerone" in cmd and str(port).encode() in cmd:
            found.append(int(pid))
            os.kill(int(pid), signal.SIGKILL)
    return found


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_sigterm_to_dev_py_serve_stops_router_one(tmp_path):
    if not (dev._installed("") or dev._installed("test")):
        pytest.skip("dev.py would install into .venv first")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    proc = subprocess.Popen([sys.executable, str(ROOT / "dev.py"), "serve", "--port", str(port),
                             "--database-url", f"sqlite:///{tmp_path}/r.db"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=45) == 0          # Router One itself drained and exited 0
        time.sleep(0.5)
        assert not _listening(port), "Router One still listening after dev.py got SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()
        leftovers = _kill_leftovers(port)
    assert leftovers == []

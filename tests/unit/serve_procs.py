"""A real `routerone serve` run until it listens, for tests of what its start prints."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path


def serve_until_listening(db: Path, env: dict) -> str:
    """`routerone serve` on a free port with SQLite file `db` and environment `env`, until it
    prints "listening on", then SIGTERM; what it printed up to then."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "routerone", "--database-url", f"sqlite:///{db}", "serve",
                          "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    lines = []
    try:
        for line in p.stdout:
            lines.append(line)
            if "listening on" in line:
                break
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    return "".join(lines)

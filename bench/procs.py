"""Processes under test: start, pin to CPUs, read their CPU time and memory from /proc, probe HTTP."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    parent[int(d)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return out


def status_kb(pid: int, field_name: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pin(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of pid and its descendants (affinity is per thread)."""
    if not cpus:
        return
    for p in children_of(pid):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{p}/task")]
        except OSError:
            continue
        for t in tids:
            try:
                os.sched_setaffinity(t, cpus)
            except OSError:
                pass


class Proc:
    def __init__(self, name: str, cmd: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
                 cpus: set[int] | None = None, log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name.replace(' ', '_').replace('/', '_')}.log"
        self.cpus = cpus
        self._logf = open(self.log, "w")
        self.p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self._logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True,
                                  preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        self.pid = self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def pids(self) -> list[int]:
        return children_of(self.pid) if self.alive() else []

    def peak_rss_mb(self) -> dict[str, float]:
        """Peak resident set (VmHWM) of the process tree: the largest single process, and the sum."""
        hwm = [status_kb(p, "VmHWM") for p in self.pids()]
        return {"max_process_mb": max(hwm, default=0) / 1024, "tree_mb": sum(hwm) / 1024,
                "processes": len(hwm)}

    def tail(self, n: int = 12) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)   # our own session: this process and its children
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(timeout=5)
        self._logf.close()


def http(method: str, url: str, body: dict | None = None, key: str | None = None, timeout: float = 10) -> tuple[int, dict]:
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw[:1] in (b"{", b"[") else {"raw": raw.decode(errors="replace")})
    except urllib.error.HTTPError as exc:
        return exc.code, {"raw": exc.read().decode(errors="replace")[:500]}


def wait_ready(proc: Proc, url: str, timeout_s: float) -> str:
    """"" when url answers, else the reason it did not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            return f"{proc.name} exited with code {proc.p.returncode}:\n{proc.tail()}"
        try:
            status, _ = http("GET", url, timeout=2)
            if status < 500:
                return ""
        except (urllib.error.URLError, ConnectionError, OSError, TimeoutError):
            pass
        time.sleep(0.2)
    return f"{proc.name} not ready at {url} within {timeout_s:.0f}s:\n{proc.tail()}"


# -- targets -------------------------------------------------------------------------------------

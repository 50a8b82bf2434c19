"""The same closed-loop, keep-alive, c=64 load as bench/loadgen.py, from `wrk` (C, one thread, epoll),
with per-process CPU accounting of the whole machine during the measured window.

Why a second load generator: on a 2-core machine the load generator shares the cores with the
gateway workers, the upstream, PostgreSQL and Redis; whatever it spends is taken from them. wrk
spends about half what loadgen.py does per request, so `--workers 2` rows measured with it say
more about Router One and less about the harness. Both are run, on the same servers, and reported.

`wrk` is Debian's package; `ensure_wrk` installs it (apt-get) when it is missing and we are root.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from loadgen import cpu_seconds

__all__ = ["ensure_wrk", "wrk_load", "CpuAccount"]

_LUA = """
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("WRK_KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "duration_us": %d, "status_errors": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %f}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def ensure_wrk(log) -> str | None:
    exe = shutil.which("wrk")
    if exe or os.geteuid() != 0 or not shutil.which("apt-get"):
        return exe
    log("wrk: installing the Debian package ...")
    r = subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, timeout=600)
    return shutil.which("wrk")


def _system_jiffies() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:8]]


class CpuAccount:
    """CPU time of named process groups, and of the whole machine, over a window, in cores."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.c0 = {k: cpu_seconds(v) for k, v in groups.items()}
        self.s0 = _system_jiffies()
        self.t0 = time.perf_counter()

    def result(self) -> dict:
        dt = max(1e-9, time.perf_counter() - self.t0)
        s1 = _system_jiffies()
        d = [b - a for a, b in zip(self.s0, s1)]
        total = max(1, sum(d))
        ncpu = os.cpu_count() or 1
        cores = {k: round((cpu_seconds(v) - self.c0[k]) / dt, 3) for k, v in self.groups.items()}
        return {"cores": cores, "machine_busy_cores": round((total - d[3] - d[4]) / total * ncpu, 3),
                "machine_idle_cores": round((d[3] + d[4]) / total * ncpu, 3)}


def wrk_load(exe: str, url: str, key: str, body: str, c: int, duration: float, warmup: float, tmp: Path,
             groups: dict[str, list[int]], cpus=None) -> dict:
    """One warm-up run, then the measured run; the CPU of `groups` (and of wrk) over the measured run."""
    script = tmp / "post.lua"
    script.write_text(_LUA)
    env = dict(os.environ, WRK_BODY=body, WRK_KEY=key or "")
    pre = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    base = [exe, "-t1", f"-c{c}", "--timeout", "30s", "-s", str(script)]
    if warmup > 0:
        subprocess.run(base[:1] + [f"-d{max(1, round(warmup))}s"] + base[1:] + [url], env=env, capture_output=True,
                       timeout=warmup + 60, preexec_fn=pre)
    p = subprocess.Popen(base[:1] + [f"-d{max(1, round(duration))}s"] + base[1:] + [url], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=pre)
    acct = CpuAccount({**groups, "load generator (wrk)": [p.pid]})
    time.sleep(max(0.5, duration - 0.5))   # the window: inside the run, not its connection set-up/tear-down
    cpu = acct.result()
    out, err = p.communicate(timeout=duration + 60)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"failed": (err or out)[-400:]}
    w = json.loads(lines[-1])
    secs = w["duration_us"] / 1e6
    errors = w["status_errors"] + w["connect"] + w["read"] + w["write"] + w["timeout"]
    ok = w["requests"] - w["status_errors"]
    rps = ok / secs
    gw = cpu["cores"].get("gateway", 0.0)
    return {"tool": "wrk", "url": url, "concurrency": c, "duration_s": secs, "requests": w["requests"], "ok": ok,
            "errors": errors, "rps": rps,
            "lat_ms": {"p50": w["p50_us"] / 1000, "p90": w["p90_us"] / 1000, "p99": w["p99_us"] / 1000,
                       "max": w["max_us"] / 1000, "mean": w["mean_us"] / 1000},
            "server_cpu_ms_per_req": gw * 1000 / rps if rps else None, "cpu": cpu}

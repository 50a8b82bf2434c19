"""Router One benchmark: one command, one run, the whole comparison.

    .venv/bin/python bench/run.py [--quick] [--skip-litellm] [--skip-postgres] [--profile]

Starts a lean fake OpenAI upstream (bench/upstream.py), then measures in turn, each server under
test in its own OS process on loopback:

  direct             the upstream itself (the floor)
  bare pass-through  aiohttp + uvloop proxy with no features (bench/passthrough.py, the reference)
  Router One         `python -m routerone serve`, embedded default (SQLite, in-process limiter), full
                     pipeline: auth, limits, billing, usage log, routing
  Router One PG      the same with PostgreSQL (store) and Redis (limiter)
  LiteLLM            `litellm --num_workers 1`, installed into bench/.venv-litellm by the script,
                     skipped with the reason printed when it cannot be installed or started

Scenarios (closed loop, bench/loadgen.py, its own process): non-streaming at concurrency 1, 32, 64;
streaming time to first token at 1 and 32; a paced stream (5 ms per chunk) at 32 to catch
buffering. Per server: CPU time per request (utime+stime from /proc over the measured window) and
peak RSS (VmHWM). With two or more cores the server under test is pinned to CPU 0 and the upstream
and load generator to CPU 1, so "one worker" means one core.

Writes bench/results/results.md (the tables, also printed), results.json and chart.png. With
--profile, also samples Router One under load with py-spy (installed into bench/.venv-tools) and
writes profile-*.txt (collapsed stacks), profile-json.svg and profile.md (top hotspots).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
ADMIN_KEY = "sk-ro-bench-admin-key-0123456789abcdef"
UPSTREAM_KEY = "sk-bench-upstream"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/13"
MODEL = "gpt-4o-mini"
SRC_PATH = ""      # with --ref: the exported source tree the gateway imports routerone from


@dataclass(frozen=True)
class Scenario:
    id: str
    label: str
    stream: bool
    concurrency: int
    prompt: str


SCENARIOS = [
    Scenario("json_c1", "non-streaming c=1", False, 1, "Say hello in a few words. [[words:16]]"),
    Scenario("json_c32", "non-streaming c=32", False, 32, "Say hello in a few words. [[words:16]]"),
    Scenario("json_c64", "non-streaming c=64", False, 64, "Say hello in a few words. [[words:16]]"),
    Scenario("stream_c1", "streaming c=1", True, 1, "Stream a short reply. [[words:16]]"),
    Scenario("stream_c32", "streaming c=32", True, 32, "Stream a short reply. [[words:16]]"),
    Scenario("paced_c32", "paced stream c=32 (20 chunks x 5 ms)", True, 32,
             "Stream a reply slowly. [[words:20]] [[pace:5]]"),
]


# -- processes -----------------------------------------------------------------------------------
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
@dataclass
class Target:
    key: str
    label: str
    url: str = ""
    api_key: str = ""
    proc: Proc | None = None
    watch: Callable[[], list[int]] = list
    skipped: str = ""
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def base_env() -> dict[str, str]:
    drop = ("ROUTERONE_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GROQ_", "DEEPSEEK_", "MISTRAL_", "TOGETHER_",
            "OPENROUTER_", "AZURE_OPENAI_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def start_routerone(label: str, key: str, upstream_base: str, tmp: Path, cpus, *, postgres: bool) -> Target:
    t = Target(key, label)
    d = tmp / key
    d.mkdir()
    (d / "routerone.toml").write_text(
        f'[providers.openai]\nbase_url = "{upstream_base}"\napi_key = "{UPSTREAM_KEY}"\n')
    env = base_env()
    if SRC_PATH:
        env["PYTHONPATH"] = SRC_PATH
    env.update({"ROUTERONE_CONFIG": str(d / "routerone.toml"), "ROUTERONE_ADMIN_KEY": ADMIN_KEY,
                "ROUTERONE_DEMO": "off", "ROUTERONE_DATABASE_URL": f"sqlite:///{d / 'routerone.db'}"})
    if postgres:
        db = f"routerone_bench_{os.getpid()}"
        why = pg_admin(f'DROP DATABASE IF EXISTS "{db}"', f'CREATE DATABASE "{db}"')
        if why:
            t.skipped = f"PostgreSQL unavailable at 127.0.0.1:5432 ({why})"
            return t
        t.cleanup.append(lambda: pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        env["ROUTERONE_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{db}"
        env["ROUTERONE_REDIS_URL"] = REDIS_URL
        env["ROUTERONE_LIMITER"] = "redis"
        if not redis_ping():
            t.skipped = "Redis unavailable at 127.0.0.1:6379"
            return t
        t.info["database"] = f"postgresql (db {db})"
        t.info["limiter"] = f"redis ({REDIS_URL})"
    else:
        t.info["database"] = "sqlite (temp file)"
        t.info["limiter"] = "memory"
    port = free_port()
    proc = Proc(label, [PY, "-m", "routerone", "serve", "--port", str(port)], env=env, cwd=str(d), cpus=cpus,
                log_dir=tmp)
    t.proc = proc
    base = f"http://127.0.0.1:{port}"
    why = wait_ready(proc, base + "/healthz", 60)
    if why:
        t.skipped = f"Router One did not start: {why}"
        return t
    pin(proc.pid, cpus)
    st, acc = http("POST", base + "/admin/accounts", {"name": "bench", "balance_micros": 10**12}, ADMIN_KEY)
    if st != 200:
        t.skipped = f"admin POST /admin/accounts -> {st}: {acc}"
        return t
    st, key_resp = http("POST", base + "/admin/keys", {"account_id": acc["data"]["id"], "name": "bench",
                                                       "rpm": 100_000_000, "tpm": 2_000_000_000}, ADMIN_KEY)
    if st != 200:
        t.skipped = f"admin POST /admin/keys -> {st}: {key_resp}"
        return t
    t.url, t.api_key = base + "/v1/chat/completions", key_resp["data"]["key"]
    t.watch = proc.pids
    t.info["limits"] = "key rpm=100,000,000 tpm=2,000,000,000 (exercised, never hit)"
    t.info["rss_after_start_mb"] = round(status_kb(proc.pid, "VmRSS") / 1024, 1)
    return t


def start_passthrough(upstream_base: str, tmp: Path, cpus) -> Target:
    t = Target("bare", "bare pass-through (aiohttp+uvloop)")
    port = free_port()
    proc = Proc("passthrough", [PY, str(HERE / "passthrough.py"), "--port", str(port), "--upstream", upstream_base],
                env=base_env(), cpus=cpus, log_dir=tmp)
    t.proc = proc
    why = wait_ready(proc, f"http://127.0.0.1:{port}/healthz", 30)
    if why:
        t.skipped = why
        return t
    t.url, t.watch = f"http://127.0.0.1:{port}/v1/chat/completions", proc.pids
    t.info["rss_after_start_mb"] = round(status_kb(proc.pid, "VmRSS") / 1024, 1)
    return t


def start_litellm(upstream_base: str, tmp: Path, cpus, log) -> Target:
    import litellm_setup
    t = Target("litellm", "LiteLLM proxy (1 worker)")
    exe, why = litellm_setup.ensure_installed(log)
    if exe is None:
        t.skipped = why
        return t
    t.info["version"] = litellm_setup.version()
    cfg = litellm_setup.write_config(tmp / "litellm.yaml", upstream_base, MODEL)
    port = free_port()
    proc = Proc("litellm", litellm_setup.command(cfg, port), env=litellm_setup.environment(), cwd=str(tmp),
                cpus=cpus, log_dir=tmp)
    t.proc = proc
    why = wait_ready(proc, f"http://127.0.0.1:{port}/health/liveliness", 180)
    if why:
        t.skipped = f"LiteLLM did not start: {why}"
        return t
    pin(proc.pid, cpus)
    t.url, t.api_key, t.watch = f"http://127.0.0.1:{port}/v1/chat/completions", litellm_setup.MASTER_KEY, proc.pids
    t.info["rss_after_start_mb"] = round(max(status_kb(p, "VmRSS") for p in proc.pids()) / 1024, 1)
    return t


def pg_admin(*statements: str) -> str:
    """Run statements on the admin database; "" on success, else the reason."""
    try:
        import asyncio

        import asyncpg
    except ImportError as exc:
        return f"asyncpg missing: {exc}"

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            for s in statements:
                await conn.execute(s)
        finally:
            await conn.close()
    try:
        asyncio.run(run())
        return ""
    except Exception as exc:  # noqa: BLE001 - any failure means "skip with this reason"
        return f"{type(exc).__name__}: {exc}"


def redis_ping() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# -- measuring ---------------------------------------------------------------------------------------
def loadgen(t: Target, s: Scenario, duration: float, warmup: float, cpus) -> dict:
    cmd = [PY, str(HERE / "loadgen.py"), "--url", t.url, "-c", str(s.concurrency), "-d", str(duration),
           "--warmup", str(warmup), "--model", MODEL, "--prompt", s.prompt, "--timeout", "30",
           "--watch", ",".join(str(p) for p in t.watch())]
    if t.api_key:
        cmd += ["--key", t.api_key]
    if s.stream:
        cmd.append("--stream")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 90,
                       preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    if r.returncode != 0:
        return {"failed": (r.stderr or r.stdout).strip()[-500:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(t: Target, duration: float, warmup: float, cpus, log) -> dict:
    out: dict = {"label": t.label, "info": t.info, "scenarios": {}, "loadavg_before": os.getloadavg()[0]}
    for s in SCENARIOS:
        res = loadgen(t, s, duration, warmup, cpus)
        out["scenarios"][s.id] = res
        log("    " + summary_line(s, res))
    if t.proc is not None:
        out["rss"] = t.proc.peak_rss_mb()
        log(f"    peak RSS {out['rss']['max_process_mb']:.1f} MB (largest process; tree {out['rss']['tree_mb']:.1f} MB"
            f" over {out['rss']['processes']} process(es))")
    out["loadavg_after"] = os.getloadavg()[0]
    return out


def summary_line(s: Scenario, r: dict) -> str:
    if "failed" in r:
        return f"{s.label:<40} FAILED: {r['failed']}"
    line = (f"{s.label:<40} {r['rps']:>9.1f} req/s  p50 {fmt_ms(r['lat_ms']['p50'])} ms  "
            f"p99 {fmt_ms(r['lat_ms']['p99'])} ms  errors {r['errors']}")
    if s.stream:
        line += f"  ttft p50 {fmt_ms(r['ttft_ms']['p50'])} ms  reads/stream {r.get('reads_per_stream_p50')}"
    if r.get("server_cpu_ms_per_req") is not None:
        line += f"  cpu {r['server_cpu_ms_per_req']:.3f} ms/req"
    return line


# -- reporting -----------------------------------------------------------------------------------
def fmt_ms(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def fmt_rps(v) -> str:
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def get(results: dict, target: str, scen: str, *path):
    r = results.get("targets", {}).get(target, {})
    v = r.get("scenarios", {}).get(scen) if r else None
    if not v or "failed" in v:
        return None
    for p in path:
        v = v.get(p) if isinstance(v, dict) else None
        if v is None:
            return None
    return v


def checks(results: dict) -> list[dict]:
    R, D, B, P, L = "routerone", "direct", "bare", "routerone_pg", "litellm"
    out = []

    def add(what: str, value, limit: str, ok, note: str = "") -> None:
        out.append({"target": what, "measured": value, "limit": limit,
                    "ok": None if ok is None else bool(ok), "note": note})

    def diff(a, b):
        return None if a is None or b is None else a - b

    p50 = diff(get(results, R, "json_c1", "lat_ms", "p50"), get(results, D, "json_c1", "lat_ms", "p50"))
    add("non-streaming c=1: p50 added over direct", f"{p50:+.3f} ms" if p50 is not None else "n/a", "<= 1 ms",
        None if p50 is None else p50 <= 1.0)
    p99 = diff(get(results, R, "json_c1", "lat_ms", "p99"), get(results, D, "json_c1", "lat_ms", "p99"))
    add("non-streaming c=1: p99 added over direct", f"{p99:+.3f} ms" if p99 is not None else "n/a", "<= 2 ms",
        None if p99 is None else p99 <= 2.0)
    rps = get(results, R, "json_c64", "rps")
    cpu = get(results, R, "json_c64", "server_cpu_ms_per_req")
    add("one worker, c=64: throughput", f"{rps:,.0f} req/s" if rps else "n/a", ">= 2,500 req/s",
        None if rps is None else rps >= 2500,
        f"CPU cost {cpu:.3f} ms/req = {1000 / cpu:,.0f} req/s per fully available core" if cpu else "")
    bare = get(results, B, "json_c64", "rps")
    ratio = rps / bare if rps and bare else None
    add("one worker, c=64: share of bare pass-through", f"{ratio:.0%} ({fmt_rps(bare)} req/s bare)" if ratio else "n/a",
        ">= 40%", None if ratio is None else ratio >= 0.40)
    ll = get(results, L, "json_c64", "rps")
    lr = rps / ll if rps and ll else None
    add("one worker, c=64: multiple of LiteLLM", f"{lr:.1f}x ({fmt_rps(ll)} req/s LiteLLM)" if lr else "n/a", ">= 25x",
        None if lr is None else lr >= 25,
        "" if ll else (results.get("targets", {}).get(L, {}).get("skipped") or "LiteLLM not measured"))
    tot_r, tot_d = get(results, R, "paced_c32", "lat_ms", "p50"), get(results, D, "paced_c32", "lat_ms", "p50")
    rel = (tot_r / tot_d - 1) if tot_r and tot_d else None
    add("paced stream c=32: total stream time vs direct (p50)",
        f"{rel:+.1%} ({fmt_ms(tot_r)} vs {fmt_ms(tot_d)} ms)" if rel is not None else "n/a", "within 5%",
        None if rel is None else rel <= 0.05)
    tt = diff(get(results, R, "paced_c32", "ttft_ms", "p50"), get(results, D, "paced_c32", "ttft_ms", "p50"))
    add("paced stream c=32: TTFT p50 added over direct", f"{tt:+.3f} ms" if tt is not None else "n/a", "<= 2 ms",
        None if tt is None else tt <= 2.0)
    for key, label in ((R, "Router One"), (P, "Router One PG+Redis")):
        rss = results.get("targets", {}).get(key, {}).get("rss", {}).get("max_process_mb")
        add(f"peak RSS per worker ({label})", f"{rss:.1f} MB" if rss else "n/a", "<= 150 MB",
            None if not rss else rss <= 150)
    pg = get(results, P, "json_c64", "rps")
    pr = pg / rps if pg and rps else None
    add("PostgreSQL+Redis vs embedded throughput (c=64)", f"{pr:.0%} ({fmt_rps(pg)} req/s)" if pr else "n/a", ">= 60%",
        None if pr is None else pr >= 0.60,
        "" if pg else (results.get("targets", {}).get(P, {}).get("skipped") or "not measured"))
    return out


def markdown(results: dict) -> str:
    m = results["meta"]
    order = [k for k in ("direct", "bare", "routerone", "routerone_pg", "litellm") if k in results["targets"]]
    T = results["targets"]
    lines = [f"# Router One benchmark — {m['date']}", "",
             f"Command: `{m['command']}`  ",
             f"Measured: {m.get('source', '')}  ",
             f"Machine: {m['machine']}; {m['cpus']} CPU(s); Python {m['python']}; pinning: {m['pinning']}  ",
             f"Per scenario: {m['warmup_s']} s warm-up + {m['duration_s']} s measured, closed loop "
             f"(bench/loadgen.py, raw asyncio protocol on uvloop); upstream: bench/upstream.py "
             f"(16 tokens per reply; paced stream 20 chunks x 5 ms).  ",
             f"Load average at start: {m['loadavg_start']:.2f} (other work on the machine skews results).", ""]
    skipped = [(T[k]["label"], T[k]["skipped"]) for k in order if T[k].get("skipped")]
    for label, why in skipped:
        lines.append(f"- **{label} skipped:** {why.splitlines()[0][:300]}")
    if skipped:
        lines.append("")
    live = [k for k in order if not T[k].get("skipped")]

    lines += ["## Non-streaming (req/s, latency ms)", "",
              "| server | c=1 req/s | c=1 p50 | c=1 p99 | c=32 req/s | c=32 p50 | c=32 p99 | c=64 req/s | c=64 p50 | c=64 p99 | errors |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k in live:
        row = [T[k]["label"]]
        errs = 0
        for s in ("json_c1", "json_c32", "json_c64"):
            row += [fmt_rps(get(results, k, s, "rps")), fmt_ms(get(results, k, s, "lat_ms", "p50")),
                    fmt_ms(get(results, k, s, "lat_ms", "p99"))]
            errs += get(results, k, s, "errors") or 0
        row.append(str(errs))
        lines.append("| " + " | ".join(row) + " |")

    lines += ["", "## Streaming (ms)", "",
              "| server | c=1 TTFT p50 | c=1 TTFT p99 | c=32 TTFT p50 | c=32 TTFT p99 | c=32 streams/s | paced c=32 TTFT p50 | paced total p50 | paced total p99 | paced reads/stream | errors |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k in live:
        errs = sum(get(results, k, s, "errors") or 0 for s in ("stream_c1", "stream_c32", "paced_c32"))
        lines.append("| " + " | ".join([
            T[k]["label"], fmt_ms(get(results, k, "stream_c1", "ttft_ms", "p50")),
            fmt_ms(get(results, k, "stream_c1", "ttft_ms", "p99")),
            fmt_ms(get(results, k, "stream_c32", "ttft_ms", "p50")), fmt_ms(get(results, k, "stream_c32", "ttft_ms", "p99")),
            fmt_rps(get(results, k, "stream_c32", "rps")),
            fmt_ms(get(results, k, "paced_c32", "ttft_ms", "p50")), fmt_ms(get(results, k, "paced_c32", "lat_ms", "p50")),
            fmt_ms(get(results, k, "paced_c32", "lat_ms", "p99")),
            str(get(results, k, "paced_c32", "reads_per_stream_p50") or "-"), str(errs)]) + " |")

    lines += ["", "## Server cost", "",
              "| server | CPU ms/req c=1 | CPU ms/req c=64 | req/s per core at c=64 CPU cost | CPU ms/stream c=32 | CPU ms/paced stream | RSS MB after start | peak RSS MB (largest process) | processes |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k in live:
        rss = T[k].get("rss") or {}

        def cpu(s):
            v = get(results, k, s, "server_cpu_ms_per_req")
            return "-" if v is None else f"{v:.3f}"

        def capacity(k):
            v = get(results, k, "json_c64", "server_cpu_ms_per_req")
            return f"{1000 / v:,.0f}" if v else "-"
        lines.append("| " + " | ".join([
            T[k]["label"], cpu("json_c1"), cpu("json_c64"), capacity(k), cpu("stream_c32"), cpu("paced_c32"),
            str(T[k].get("info", {}).get("rss_after_start_mb", "-")),
            f"{rss['max_process_mb']:.1f}" if rss else "-", str(rss.get("processes", "-"))]) + " |")

    lines += ["", "## Targets (Router One, embedded default, one worker)", "",
              "| target | measured | limit | holds |", "|---|---|---|---|"]
    for c in results["checks"]:
        mark = "yes" if c["ok"] else ("n/a" if c["ok"] is None else "**NO**")
        note = f" ({c['note']})" if c["note"] else ""
        lines.append(f"| {c['target']} | {c['measured']} | {c['limit']} | {mark}{note} |")
    lines += ["", "CPU time is utime+stime of the server's process tree over the measured window, divided by the "
              "requests completed in it (/proc clock ticks: 10 ms resolution). Peak RSS is VmHWM over the "
              "server's whole run. `direct` rows measure the upstream itself.", "",
              "![chart](chart.png)", ""]
    return "\n".join(lines)


def chart(results: dict, path: Path) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"no chart: {exc}"
    T = results["targets"]
    keys = [k for k in ("direct", "bare", "routerone", "routerone_pg", "litellm") if k in T and not T[k].get("skipped")]
    labels = {"direct": "direct", "bare": "bare pass-through", "routerone": "Router One",
              "routerone_pg": "Router One PG+Redis", "litellm": "LiteLLM"}
    colors = {"direct": "#999999", "bare": "#4c72b0", "routerone": "#dd8452", "routerone_pg": "#c44e52",
              "litellm": "#55a868"}
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    width = 0.8 / max(1, len(keys))

    def bars(ax, groups, metric, title, ylabel, log=True):
        for i, k in enumerate(keys):
            vals = [metric(k, g) or 0 for g in groups]
            xs = [j + i * width for j in range(len(groups))]
            b = ax.bar(xs, vals, width, label=labels[k], color=colors[k])
            for rect, v in zip(b, vals):
                if v:
                    ax.annotate(f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2f}",
                                (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                                ha="center", va="bottom", fontsize=6.5, rotation=90)
        ax.set_xticks([j + width * (len(keys) - 1) / 2 for j in range(len(groups))])
        ax.set_xticklabels([g[1] for g in groups])
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)

    bars(axes[0][0], [("json_c1", "c=1"), ("json_c32", "c=32"), ("json_c64", "c=64")],
         lambda k, g: get(results, k, g[0], "rps"), "Non-streaming throughput (higher is better)", "req/s (log)")
    bars(axes[0][1], [("json_c1", "c=1"), ("json_c32", "c=32"), ("json_c64", "c=64")],
         lambda k, g: get(results, k, g[0], "lat_ms", "p50"), "Non-streaming p50 latency (lower is better)", "ms (log)")
    bars(axes[0][2], [("json_c1", "c=1"), ("json_c32", "c=32"), ("json_c64", "c=64")],
         lambda k, g: get(results, k, g[0], "lat_ms", "p99"), "Non-streaming p99 latency (lower is better)", "ms (log)")
    bars(axes[1][0], [("stream_c1", "TTFT c=1"), ("stream_c32", "TTFT c=32"), ("paced_c32", "TTFT paced c=32"),
                      ("paced_total", "paced total")],
         lambda k, g: get(results, k, "paced_c32", "lat_ms", "p50") if g[0] == "paced_total"
         else get(results, k, g[0], "ttft_ms", "p50"),
         "Streaming p50 (lower is better)", "ms (log)")
    bars(axes[1][1], [("json_c1", "non-streaming c=1"), ("json_c64", "non-streaming c=64"),
                      ("stream_c32", "stream c=32")],
         lambda k, g: get(results, k, g[0], "server_cpu_ms_per_req"),
         "Server CPU time per request (lower is better)", "ms (log)")
    bars(axes[1][2], [("rss", "peak RSS (largest process)")],
         lambda k, g: (T[k].get("rss") or {}).get("max_process_mb"),
         "Server memory (lower is better)", "MB", log=False)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=len(keys), fontsize=9, bbox_to_anchor=(0.5, 0.955))
    fig.suptitle(f"Router One benchmark, {results['meta']['date']} ({results['meta']['cpus']} CPUs, loopback)")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return ""


# -- profiling ---------------------------------------------------------------------------------------
def ensure_pyspy(log) -> tuple[str | None, str]:
    venv = HERE / ".venv-tools"
    exe = venv / "bin" / "py-spy"
    if exe.exists():
        return str(exe), ""
    log("py-spy: installing into bench/.venv-tools ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "py-spy"],
                           capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    if r.returncode != 0 or not exe.exists():
        return None, (r.stderr or r.stdout).strip()[-300:]
    return str(exe), ""


def summarize_collapsed(path: Path, top: int = 20) -> dict:
    """From py-spy's raw output: self time by frame (file:line), inclusive time by function, and
    inclusive time of Router One's own functions (src/routerone), as % of all samples."""
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    ours: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        c = int(n)
        total += c
        frames = [f for f in stack.split(";") if f]
        if frames:
            self_t[frames[-1]] = self_t.get(frames[-1], 0) + c
        seen: set[str] = set()
        for f in frames:
            fn = f.rsplit(":", 1)[0] + ")" if ":" in f else f     # drop the line: per function
            if fn in seen:
                continue
            seen.add(fn)
            incl[fn] = incl.get(fn, 0) + c
            if "routerone/" in fn and "__main__" not in fn and "cli.py" not in fn and "server.py" not in fn:
                ours[fn] = ours.get(fn, 0) + c

    def mk(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, v * 100 / max(1, total)) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    return {"self": mk(self_t), "incl": mk(incl), "ours": mk(ours), "total": total}


def profile(upstream_base: str, tmp: Path, cpus_srv, cpus_lg, duration: float, log) -> None:
    exe, why = ensure_pyspy(log)
    if exe is None:
        log(f"profile skipped: py-spy unavailable ({why})")
        return
    t = start_routerone("Router One (profiled)", "routerone_prof", upstream_base, tmp, cpus_srv, postgres=False)
    if t.skipped:
        log(f"profile skipped: {t.skipped}")
        if t.proc:
            t.proc.stop()
        return
    md = ["# Router One profile under load", "",
          f"py-spy {subprocess.run([exe, '--version'], capture_output=True, text=True).stdout.strip()}, "
          f"sampling the embedded gateway (one worker) while bench/loadgen.py drives it for {duration:.0f} s per "
          "scenario, `--gil`: only the thread holding the GIL is sampled, so the percentages are shares of the "
          "Python CPU time (waits and C code that releases the GIL, such as sqlite3 statements or socket "
          "syscalls, are not counted; uvloop's C event loop shows as the `run_app` frame that calls it).", ""]
    try:
        for s in (SCENARIOS[0], SCENARIOS[2], SCENARIOS[4]):
            loadgen(t, s, 1.0, 0.5, cpus_lg)   # warm
            raw = RESULTS / f"profile-{s.id}.txt"
            spy = subprocess.Popen([exe, "record", "--pid", str(t.proc.pid), "--rate", "200", "--nonblocking",
                                    "--gil", "--duration", str(int(duration) + 1), "--format", "raw", "-o", str(raw)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)
            res = loadgen(t, s, duration, 0.2, cpus_lg)
            _, err = spy.communicate(timeout=duration + 60)
            log("    profiled " + summary_line(s, res))
            if not raw.exists():
                log(f"    py-spy wrote nothing: {err.strip()[-300:]}")
                continue
            sm = summarize_collapsed(raw)
            md += [f"## {s.label} ({sm['total']} samples; {res.get('rps', 0):,.0f} req/s while sampled, "
                   f"{res.get('server_cpu_ms_per_req') or 0:.3f} ms CPU/request)", "",
                   "Self time (the frame on top of the stack), by file:line:", "", "| % | frame |", "|---:|---|"]
            md += [f"| {p:.1f} | `{f}` |" for f, p in sm["self"]]
            md += ["", "Router One's own functions, inclusive (the pipeline's stages and what they call):", "",
                   "| % | function |", "|---:|---|"]
            md += [f"| {p:.1f} | `{f}` |" for f, p in sm["ours"]]
            md += ["", "All functions, inclusive:", "", "| % | function |", "|---:|---|"]
            md += [f"| {p:.1f} | `{f}` |" for f, p in sm["incl"]]
            md.append("")
        svg = RESULTS / "profile-json.svg"
        spy = subprocess.Popen([exe, "record", "--pid", str(t.proc.pid), "--rate", "200", "--nonblocking",
                                "--gil", "--duration", str(int(duration)), "-o", str(svg)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        loadgen(t, SCENARIOS[2], duration - 1, 0.2, cpus_lg)
        spy.wait(timeout=duration + 60)
    finally:
        t.proc.stop()
    (RESULTS / "profile.md").write_text("\n".join(md))
    log(f"profile written to {RESULTS / 'profile.md'}")


# -- main ------------------------------------------------------------------------------------------
def source_info(ref: str | None, tmp: Path) -> str:
    """Export `ref` for the gateway to import (with --ref) and describe what is measured."""
    global SRC_PATH

    def git(*args: str) -> str:
        r = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60)
        return r.stdout.strip() if r.returncode == 0 else ""
    if ref:
        commit = git("rev-parse", "--short", ref)
        if not commit:
            raise SystemExit(f"bench: unknown git ref {ref!r}")
        dest = tmp / "src-ref"
        dest.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], capture_output=True, timeout=120)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, timeout=120)
        SRC_PATH = str(dest / "src")
        return f"Router One at commit {commit} ({ref}, exported with git archive)"
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src")
    return f"Router One working tree at commit {commit}" + (" plus uncommitted changes under src/" if dirty else "")


def main() -> int:
    global RESULTS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short smoke run (about 2 minutes)")
    ap.add_argument("--skip-litellm", action="store_true")
    ap.add_argument("--skip-postgres", action="store_true", help="skip Router One with PostgreSQL + Redis")
    ap.add_argument("--duration", type=float, help="measured seconds per scenario (default 5, quick 1.5)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per scenario (default 1, quick 0.5)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    ap.add_argument("--profile", action="store_true", help="also profile Router One with py-spy")
    ap.add_argument("--only", default="", help="comma-separated subset: direct,bare,routerone,routerone_pg,litellm")
    ap.add_argument("--out", default=str(RESULTS), help="results directory (default bench/results)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (server logs, databases)")
    ap.add_argument("--ref", help="benchmark Router One as committed at this git ref (git archive into the temp "
                                  "dir) instead of the working tree")
    a = ap.parse_args()
    duration = a.duration or (1.5 if a.quick else 5.0)
    warmup = a.warmup if a.warmup is not None else (0.5 if a.quick else 1.0)
    if not (0 < duration <= 60 and 0 <= warmup <= 30):
        ap.error("duration must be in (0, 60] s and warmup in [0, 30] s")
    RESULTS = Path(a.out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    only = set(filter(None, a.only.split(",")))
    ncpu = len(os.sched_getaffinity(0))
    pinning = ncpu >= 2 and not a.no_pin
    cpus_srv, cpus_lg = ({0}, {1}) if pinning else (None, None)
    t_start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:6.1f}s] {msg}", flush=True)

    sys.path.insert(0, str(HERE))
    tmp = Path(tempfile.mkdtemp(prefix="routerone-bench-"))
    argv = " ".join(["python bench/run.py"] + sys.argv[1:])
    source = source_info(a.ref, tmp)
    results: dict = {"meta": {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": argv, "machine": platform.platform(),
        "cpus": ncpu, "python": platform.python_version(), "source": source, "duration_s": duration, "warmup_s": warmup,
        "pinning": "server under test on CPU 0, upstream + load generator on CPU 1" if pinning else "none",
        "loadavg_start": os.getloadavg()[0],
        "scenarios": [s.__dict__ for s in SCENARIOS]}, "targets": {}}
    log(f"bench: {ncpu} CPUs, {duration}s per scenario (+{warmup}s warm-up), temp dir {tmp}, "
        f"load average {os.getloadavg()[0]:.2f}")
    if os.getloadavg()[0] > 1.0:
        log("note: the machine is busy (load average > 1); numbers will be noisier than on an idle machine")

    up_port = free_port()
    upstream = Proc("upstream", [PY, str(HERE / "upstream.py"), "--port", str(up_port)], env=base_env(),
                    cpus=cpus_lg, log_dir=tmp)
    up_base = f"http://127.0.0.1:{up_port}/v1"
    why = wait_ready(upstream, f"http://127.0.0.1:{up_port}/health", 20)
    if why:
        print(f"bench: the upstream did not start: {why}", file=sys.stderr)
        upstream.stop()
        return 1
    try:
        plan: list[tuple[str, Callable[[], Target]]] = [
            ("direct", lambda: Target("direct", "direct (upstream)", url=up_base + "/chat/completions",
                                      watch=upstream.pids)),
            ("bare", lambda: start_passthrough(up_base, tmp, cpus_srv)),
            ("routerone", lambda: start_routerone("Router One (embedded)", "routerone", up_base, tmp, cpus_srv,
                                                  postgres=False)),
            ("routerone_pg", lambda: (Target("routerone_pg", "Router One (PostgreSQL + Redis)",
                                             skipped="--skip-postgres given") if a.skip_postgres else
                                      start_routerone("Router One (PostgreSQL + Redis)", "routerone_pg", up_base,
                                                      tmp, cpus_srv, postgres=True))),
            ("litellm", lambda: (Target("litellm", "LiteLLM proxy (1 worker)", skipped="--skip-litellm given")
                                 if a.skip_litellm else start_litellm(up_base, tmp, cpus_srv, log))),
        ]
        for key, starter in plan:
            if only and key not in only:
                continue
            log(f"== {key}: starting")
            if key == "direct":
                pin(upstream.pid, cpus_srv)      # the upstream is the server under test: its own core
            t = starter()
            try:
                if t.skipped:
                    log(f"   SKIPPED: {t.skipped}")
                    results["targets"][key] = {"label": t.label, "skipped": t.skipped, "info": t.info}
                    continue
                log(f"   {t.label} at {t.url}")
                results["targets"][key] = measure(t, duration, warmup, cpus_lg, log)
                if key == "direct":
                    results["targets"][key]["rss"] = upstream.peak_rss_mb()
            finally:
                if key == "direct":
                    pin(upstream.pid, cpus_lg)
                if t.proc is not None:
                    t.proc.stop()
                for fn in t.cleanup:
                    fn()
        results["checks"] = checks(results)
        results["meta"]["wall_s"] = round(time.monotonic() - t_start, 1)
        md = markdown(results)
        (RESULTS / "results.json").write_text(json.dumps(results, indent=1, default=str))
        (RESULTS / "results.md").write_text(md)
        why = chart(results, RESULTS / "chart.png")
        print()
        print(md)
        log(f"wrote {RESULTS / 'results.md'}, results.json" + (f" ({why})" if why else ", chart.png"))
        if a.profile:
            profile(up_base, tmp, cpus_srv, cpus_lg, max(duration, 5.0), log)
    finally:
        upstream.stop()
        if not a.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

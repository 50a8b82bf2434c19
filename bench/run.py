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
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from procs import Proc, free_port, http, pin, status_kb, wait_ready
from pyspy import ensure_pyspy, summarize_collapsed
from report import checks, chart, fmt_ms, markdown

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


# -- servers under test ------------------------------------------------------------------------
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
    st, acc = http("POST", base + "/admin/accounts",       # account names are unique
                   {"name": f"bench-{uuid.uuid4().hex[:12]}", "balance_micros": 10**12}, ADMIN_KEY)
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


# -- profiling ---------------------------------------------------------------------------------------
def profile(upstream_base: str, tmp: Path, cpus_srv, cpus_lg, duration: float, log, *, postgres: bool = False) -> None:
    exe, why = ensure_pyspy(HERE / ".venv-tools", log)
    if exe is None:
        log(f"profile skipped: py-spy unavailable ({why})")
        return
    t = start_routerone("Router One (profiled)", "routerone_prof", upstream_base, tmp, cpus_srv, postgres=postgres)
    if t.skipped:
        log(f"profile skipped: {t.skipped}")
        if t.proc:
            t.proc.stop()
        return
    md = ["# Router One profile under load", "",
          f"py-spy {subprocess.run([exe, '--version'], capture_output=True, text=True).stdout.strip()}, "
          f"sampling the gateway ({t.info.get('database', '')}, one worker) while bench/loadgen.py drives it for {duration:.0f} s per "
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
    ap.add_argument("--profile-postgres", action="store_true",
                    help="with --profile: profile Router One on PostgreSQL + Redis instead of the embedded default")
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
            profile(up_base, tmp, cpus_srv, cpus_lg, max(duration, 5.0), log, postgres=a.profile_postgres)
    finally:
        upstream.stop()
        if not a.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

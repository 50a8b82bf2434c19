"""Router One at scale (issue 15, item 5): workers, PostgreSQL + Redis, 1,000 streams, nginx + 3.

    .venv/bin/python bench/scale.py            # ~3 minutes; prints the tables, writes results/scale.md
    .venv/bin/python bench/scale.py --quick    # a shorter smoke run of the same harness
    .venv/bin/python bench/scale.py --skip-nginx --skip-streams
    .venv/bin/python bench/scale.py --skip-postgres --skip-nginx --skip-streams   # embedded rows only
    .venv/bin/python bench/scale.py --only-streams --skip-postgres --skip-nginx   # part 3 only (~1 minute)

What it measures, each server in its own OS processes on loopback, the fake upstream being
bench/upstream.py and the load bench/loadgen.py (closed loop, keep-alive) or bench/streams.py:

1. `serve --workers 2` vs one worker, non-streaming c=64: embedded (SQLite; one worker with its
   in-process limiter, two workers with the shared-memory limiter they get without Redis; then, with
   PostgreSQL/Redis started, one and two workers on the Redis limiter) and PostgreSQL + Redis. These runs are NOT pinned: two workers on two cores share them with the
   load generator, the upstream, PostgreSQL and Redis, and so does the one worker they are
   compared with. Each server is loaded twice: by bench/loadgen.py, then by `wrk` (bench/wrkload.py,
   installed from Debian when missing; `--no-wrk` skips it), which costs the shared cores less; the
   wrk runs also account every process's CPU (gateway, upstream, PostgreSQL + Redis, wrk, idle).
2. PostgreSQL + Redis vs embedded, one worker, c=64, pinned: the gateway on CPU 0; the load
   generator, the upstream, and this run's own PostgreSQL and Redis (started by the script, so
   they can be pinned like the rest) on the other CPUs.
3. 1,000 concurrent paced streams (20 chunks, 100 ms apart) through one worker (pinned like 2),
   against the upstream alone (direct): streams that stalled (a gap > 1 s between content reads
   that the upstream did not make: it paces at 100 ms), TTFT p99 added over direct, peak RSS.
   Each stream on a new connection (the targets), then again with clients that keep their
   connection (as the SDKs do; reported beside).
4. The same harness against nginx (deploy/nginx/routerone.conf.template) in front of three
   instances on PostgreSQL + Redis, beside one instance.

PostgreSQL and Redis: a private PostgreSQL cluster (initdb as user postgres in a temp dir) and a
private redis-server, on free ports, pinned with the load; `--shared-services` uses the ones at
127.0.0.1:5432 / :6379 instead (not pinned).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from procs import Proc, free_port, http, pin, status_kb, wait_ready
from wrkload import ensure_wrk, wrk_load

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
ADMIN_KEY = "sk-ro-bench-admin-key-0123456789abcdef"
UPSTREAM_KEY = "sk-bench-upstream"
MODEL = "gpt-4o-mini"
PROMPT = "Say hello in a few words. [[words:16]]"

sys.path.insert(0, str(ROOT / "tests" / "e2e"))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def base_env() -> dict[str, str]:
    drop = ("ROUTERONE_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "PROMETHEUS_MULTIPROC_DIR")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def affinity(cpus):
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


# -- services: private PostgreSQL and Redis that can be pinned ----------------------------------------
class Services:
    def __init__(self, tmp: Path, cpus: set[int] | None, shared: bool, pg_settings: tuple[str, ...] = ()) -> None:
        self.tmp, self.cpus, self.shared = tmp, cpus, shared
        self.pg_settings = pg_settings        # extra `-c name=value` for the private cluster (bench/pg_profile.py)
        self.procs: list[Proc] = []
        self.pg_data: Path | None = None
        self.pg_bin: Path | None = None
        self.note = ""

    def start(self) -> None:
        if self.shared:
            self.pg_admin_url = "postgresql://postgres@127.0.0.1:5432/postgres"
            self.redis_url = "redis://127.0.0.1:6379/13"
            self.note = "shared PostgreSQL 127.0.0.1:5432 and Redis 127.0.0.1:6379 (not pinned)"
            return
        rport = free_port()
        self.procs.append(Proc("redis", ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no"], cpus=self.cpus, log_dir=self.tmp))
        self.redis_url = f"redis://127.0.0.1:{rport}/0"
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            raise SystemExit("bench/scale.py: no initdb found; use --shared-services")
        self.pg_bin = bins[-1].parent
        self.pg_data = self.tmp / "pgdata"
        pg = pwd.getpwnam("postgres")
        self.tmp.chmod(0o755)
        self.tmp.parent.chmod(0o755)          # postgres must reach its data directory
        self.pg_data.mkdir()
        os.chown(self.pg_data, pg.pw_uid, pg.pw_gid)
        as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        r = subprocess.run([*as_pg, str(self.pg_bin / "initdb"), "-D", str(self.pg_data), "-A", "trust", "-U",
                            "postgres"], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"bench/scale.py: initdb failed (use --shared-services):\n{r.stderr[-800:]}")
        pport = free_port()
        self.procs.append(Proc("postgres", [*as_pg, str(self.pg_bin / "postgres"), "-D", str(self.pg_data), "-p",
                                            str(pport), "-k", str(self.pg_data), "-c", "listen_addresses=127.0.0.1",
                                            "-c", "max_connections=200",
                                            *[a for kv in self.pg_settings for a in ("-c", kv)]],
                                  cpus=self.cpus, log_dir=self.tmp))
        self.pg_admin_url = f"postgresql://postgres@127.0.0.1:{pport}/postgres"
        for _ in range(100):
            if subprocess.run([str(self.pg_bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(pport)],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        self.note = (f"private PostgreSQL {self.pg_bin.parent.name} (defaults, fsync on) and Redis, pinned with the load "
                     f"generator")

    def new_database(self, name: str) -> str:
        import asyncio

        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.pg_admin_url, timeout=10)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
        asyncio.run(run())
        return self.pg_admin_url.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


# -- gateways ---------------------------------------------------------------------------------------
class Gateway:
    """`routerone serve` (one or more workers), its account and key made through the admin API."""

    def __init__(self, name: str, tmp: Path, upstream: str, *, db_url: str, redis_url: str | None,
                 workers: int = 1, cpus=None, port: int | None = None) -> None:
        d = tmp / name
        d.mkdir(exist_ok=True)
        (d / "routerone.toml").write_text(f'[providers.openai]\nbase_url = "{upstream}"\napi_key = "{UPSTREAM_KEY}"\n')
        env = base_env()
        env.update({"ROUTERONE_CONFIG": str(d / "routerone.toml"), "ROUTERONE_ADMIN_KEY": ADMIN_KEY,
                    "ROUTERONE_DEMO": "off", "ROUTERONE_DATABASE_URL": db_url, "ROUTERONE_LOG_LEVEL": "warning"})
        if redis_url:
            env.update({"ROUTERONE_REDIS_URL": redis_url, "ROUTERONE_LIMITER": "redis"})
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cpus = cpus
        self.proc = Proc(name, [PY, "-m", "routerone", "serve", "--port", str(self.port), "--workers", str(workers)],
                         env=env, cwd=str(d), cpus=cpus, log_dir=tmp)
        self.workers = workers

    def ready(self) -> None:
        why = wait_ready(self.proc, self.url + "/healthz", 90)
        if why:
            raise SystemExit(why)
        if self.workers > 1:
            time.sleep(2.0)               # the other workers (spawned) finish starting
        pin(self.proc.pid, self.cpus)

    def pids(self) -> list[int]:
        return self.proc.pids()

    def stop(self) -> None:
        self.proc.stop()


def make_key(base_url: str) -> str:
    st, acc = http("POST", base_url + "/admin/accounts",   # account names are unique
                   {"name": f"bench-{uuid.uuid4().hex[:12]}", "balance_micros": 10**12}, ADMIN_KEY)
    assert st == 200, acc
    st, key = http("POST", base_url + "/admin/keys", {"account_id": acc["data"]["id"], "name": "bench",
                                                     "rpm": 100_000_000, "tpm": 2_000_000_000}, ADMIN_KEY)
    assert st == 200, key
    return key["data"]["key"]


def loadgen(url: str, key: str, c: int, duration: float, warmup: float, watch: list[int], cpus) -> dict:
    cmd = [PY, str(HERE / "loadgen.py"), "--url", url + "/v1/chat/completions", "-c", str(c), "-d", str(duration),
           "--warmup", str(warmup), "--model", MODEL, "--prompt", PROMPT, "--watch", ",".join(map(str, watch))]
    if key:
        cmd += ["--key", key]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 120, preexec_fn=affinity(cpus))
    if r.returncode != 0:
        return {"failed": (r.stderr or r.stdout)[-400:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def streams(url: str, key: str, a, cpus, keep_alive: bool = False) -> dict:
    cmd = [PY, str(HERE / "streams.py"), "--url", url + "/v1/chat/completions", "-c", str(a.streams),
           "-d", str(a.stream_duration), "--pace", "100", "--words", "20", "--model", MODEL]
    if keep_alive:
        cmd.append("--keep-alive")
    if key:
        cmd += ["--key", key]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.stream_duration + 180, preexec_fn=affinity(cpus))
    if r.returncode != 0:
        return {"failed": (r.stderr or r.stdout)[-400:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (from /proc), in seconds."""
    from loadgen import cpu_seconds as read
    return read(pids)


def gateway_streams(g: "Gateway", a, cpus, keep_alive: bool = False) -> dict:
    """streams() through a gateway, with its peak RSS and its CPU time per stream (the whole run's
    CPU time, warm-up included, over the streams completed)."""
    key = make_key(g.url)
    pids = g.pids()
    cpu0 = cpu_seconds(pids)
    r = streams(g.url, key, a, cpus, keep_alive=keep_alive)
    cpu_s = cpu_seconds(pids) - cpu0
    r["peak_rss_mb"] = peak_rss_mb(pids)
    if r.get("streams"):
        r["gateway_cpu_s"] = round(cpu_s, 3)
        r["cpu_ms_per_stream"] = round(cpu_s * 1000 / r["streams"], 3)
    return r


def peak_rss_mb(pids: list[int]) -> float:
    return max((status_kb(p, "VmHWM") for p in pids), default=0) / 1024


# -- the runs -----------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-nginx", action="store_true")
    ap.add_argument("--skip-streams", action="store_true")
    ap.add_argument("--only-streams", action="store_true",
                    help="part 3 only (and 4's streams unless --skip-nginx); results go to results/scale-streams.*, "
                         "not over the full run's scale.*")
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--shared-services", action="store_true")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--no-wrk", action="store_true", help="the workers rows with bench/loadgen.py only")
    ap.add_argument("--postgres-only", action="store_true",
                    help="of the workers rows, only PostgreSQL + Redis 1 and 2 workers (the pinned rows stay)")
    ap.add_argument("--results", default="", help="write bench/results/<this>.md and .json (default: scale)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="run the embedded 1-worker / 2-workers pair this many times, alternating, and report "
                         "every round and the median ratio (this VM's speed drifts by ~15%% between rows a "
                         "minute apart; one pair's ratio is not a measurement); default 3")
    a = ap.parse_args()
    if a.only_streams and a.skip_streams:
        ap.error("--only-streams and --skip-streams exclude each other")
    wrk_exe = None if (a.no_wrk or a.only_streams) else ensure_wrk(log)
    warmup, duration = (0.5, 2.0) if a.quick else (2.0, 8.0)
    a.stream_duration = 3.0 if a.quick else 8.0
    ncpu = os.cpu_count() or 1
    gw_cpu, load_cpus = ({0}, set(range(1, ncpu))) if ncpu >= 2 else (None, None)
    tmp = Path(tempfile.mkdtemp(prefix="routerone-scale-"))
    RESULTS.mkdir(exist_ok=True)
    out: dict = {"conditions": {"cpus": ncpu, "machine": platform.machine(), "python": platform.python_version(),
                                "loadavg_start": os.getloadavg(), "quick": a.quick, "warmup_s": warmup,
                                "duration_s": duration, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())},
                 "throughput": {}, "streams": {}}
    svc = Services(tmp / "svc", load_cpus, a.shared_services)
    (tmp / "svc").mkdir()
    upstream_port = free_port()
    up = Proc("upstream", [PY, str(HERE / "upstream.py"), "--port", str(upstream_port)], env=base_env(),
              cpus=load_cpus, log_dir=tmp)
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    started: list = [up]
    try:
        why = wait_ready(up, f"http://127.0.0.1:{upstream_port}/healthz", 30)
        if why:
            raise SystemExit(why)
        if not a.skip_postgres:
            svc.start()
            out["conditions"]["services"] = svc.note
        n_db = iter(range(100))

        def gateway(name, *, postgres, redis, workers=1, cpus=None, port=None) -> Gateway:
            db = (svc.new_database(f"scale_{os.getpid()}_{next(n_db)}") if postgres
                  else f"sqlite:///{tmp / (name + '.db')}")
            g = Gateway(name, tmp, upstream, db_url=db, redis_url=svc.redis_url if redis else None,
                        workers=workers, cpus=cpus, port=port)
            started.append(g)
            return g

        def run_json(label, g: Gateway, cpus, group, with_wrk=False) -> dict:
            g.ready()
            key = make_key(g.url)
            r = loadgen(g.url, key, 64, duration, warmup, g.pids(), cpus)
            r["peak_rss_mb"] = peak_rss_mb(g.pids())
            out["throughput"].setdefault(group, {})[label] = r
            log(f"  {group} | {label}: {r.get('rps', 0):,.0f} req/s, p99 {r.get('lat_ms', {}).get('p99')}, "
                f"errors {r.get('errors')}, cpu {r.get('server_cpu_ms_per_req')}")
            if with_wrk and wrk_exe:
                body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]},
                                  separators=(",", ":"))
                groups = {"gateway": g.pids(), "upstream": up.pids(),
                          "PostgreSQL + Redis": [p for sp in svc.procs for p in sp.pids()]}
                w = wrk_load(wrk_exe, g.url + "/v1/chat/completions", key, body, 64, duration, warmup, tmp, groups,
                             cpus)
                w["peak_rss_mb"] = peak_rss_mb(g.pids())
                out["throughput"].setdefault(group + " (wrk)", {})[label] = w
                log(f"  {group} (wrk) | {label}: {w.get('rps', 0):,.0f} req/s, p99 {w.get('lat_ms', {}).get('p99')}, "
                    f"errors {w.get('errors')}, cpu {w.get('server_cpu_ms_per_req')}, {w.get('cpu')}")
            g.stop()
            return r

        # 1. workers (not pinned: both runs share every core with the load)
        if not a.only_streams:
            workers_and_pinned(run_json, gateway, a, gw_cpu, load_cpus)
            if not a.postgres_only:
                embedded_rounds(run_json, gateway, a, out)
        # 3. streams
        if not a.skip_streams:
            log(f"3. {a.streams} concurrent paced streams")
            r = streams(f"http://127.0.0.1:{upstream_port}", "", a, load_cpus)
            out["streams"]["direct (upstream)"] = r
            log(f"  direct: {r}")
            g = gateway("emb1s", postgres=False, redis=False, cpus=gw_cpu)
            g.ready()
            r = gateway_streams(g, a, load_cpus)
            out["streams"]["Router One, 1 worker (embedded)"] = r
            log(f"  one worker: {r}")
            g.stop()
            # the same with clients that keep their connection (as the OpenAI/Anthropic SDKs do)
            r = streams(f"http://127.0.0.1:{upstream_port}", "", a, load_cpus, keep_alive=True)
            out["streams"]["direct (upstream), keep-alive clients"] = r
            log(f"  direct, keep-alive: {r}")
            g = gateway("emb1k", postgres=False, redis=False, cpus=gw_cpu)
            g.ready()
            r = gateway_streams(g, a, load_cpus, keep_alive=True)
            out["streams"]["Router One, 1 worker (embedded), keep-alive clients"] = r
            log(f"  one worker, keep-alive: {r}")
            g.stop()
        # 4. nginx + 3 instances
        if not a.skip_nginx and not a.skip_postgres:
            from topology_procs import Nginx
            log("4. nginx + 3 instances (PostgreSQL + Redis)")
            db = svc.new_database(f"scale_{os.getpid()}_topology")
            gws = []
            for i in range(3):
                g = Gateway(f"topo{i}", tmp, upstream, db_url=db, redis_url=svc.redis_url)
                started.append(g)
                gws.append(g)
                g.ready()
            (tmp / "nginx").mkdir()
            ngx = Nginx(tmp / "nginx", free_port(), [g.port for g in gws], worker_processes=max(1, ncpu))
            ngx.start()
            started.append(ngx)
            key = make_key(gws[0].url)
            if not a.only_streams:
                watch = [p for g in gws for p in g.pids()] + [ngx.proc.pid] + _children(ngx.proc.pid)
                r = loadgen(ngx.url, key, 64, duration, warmup, watch, None)
                r["peak_rss_mb"] = max(peak_rss_mb(g.pids()) for g in gws)
                out["throughput"]["topology"] = {"nginx + 3 instances (PostgreSQL + Redis)": r}
                log(f"  nginx + 3, c=64: {r.get('rps', 0):,.0f} req/s, errors {r.get('errors')}")
            if not a.skip_streams:
                r = streams(ngx.url, key, a, None)
                r["peak_rss_mb"] = max(peak_rss_mb(g.pids()) for g in gws)
                out["streams"]["nginx + 3 instances (PostgreSQL + Redis)"] = r
                log(f"  nginx + 3 streams: {r}")
    finally:
        for s in reversed(started):
            s.stop()
        svc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    out["conditions"]["loadavg_end"] = os.getloadavg()
    from report import scale_markdown
    md = scale_markdown(out)
    stem = a.results or ("scale-streams" if a.only_streams else "scale")
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1))
    (RESULTS / f"{stem}.md").write_text(md)
    print(md)
    return 0


def workers_and_pinned(run_json, gateway, a, gw_cpu, load_cpus) -> None:
    """Parts 1 and 2: --workers 2 vs one worker (not pinned), PostgreSQL + Redis vs embedded (pinned)."""
    log("1. --workers 2 vs one worker, c=64, not pinned")
    if not a.postgres_only:
        run_json("embedded, 1 worker (in-process limiter)", gateway("emb1", postgres=False, redis=False), None,
                 "workers", True)
        run_json("embedded, 2 workers (shared-memory limiter)", gateway("emb2", postgres=False, redis=False,
                                                                         workers=2), None, "workers", True)
    if not a.skip_postgres and not a.postgres_only:
        run_json("embedded, 1 worker (Redis limiter)", gateway("emb1r", postgres=False, redis=True), None,
                 "workers", True)
        run_json("embedded, 2 workers (Redis limiter)", gateway("emb2r", postgres=False, redis=True, workers=2),
                 None, "workers", True)
    if not a.skip_postgres:
        run_json("PostgreSQL + Redis, 1 worker", gateway("pg1", postgres=True, redis=True), None, "workers", True)
        run_json("PostgreSQL + Redis, 2 workers", gateway("pg2", postgres=True, redis=True, workers=2), None,
                 "workers", True)
    # 2. PostgreSQL + Redis vs embedded, pinned
    log("2. PostgreSQL + Redis vs embedded, one worker, c=64, pinned")
    run_json("embedded, 1 worker", gateway("emb1p", postgres=False, redis=False, cpus=gw_cpu), load_cpus, "pinned")
    if not a.skip_postgres:
        run_json("PostgreSQL + Redis, 1 worker", gateway("pg1p", postgres=True, redis=True, cpus=gw_cpu), load_cpus,
                 "pinned")


EMB1, EMB2 = "embedded, 1 worker (in-process limiter)", "embedded, 2 workers (shared-memory limiter)"


def embedded_rounds(run_json, gateway, a, out: dict) -> None:
    """Rounds 2..N of the embedded pair (round 1 is part 1's rows), each a fresh 1-worker then a fresh
    2-workers server under the same loads; every round's req/s go to out["rounds"]."""
    tp = out["throughput"]

    def rps_of(label: str) -> dict:
        return {tool: (tp.get(group) or {}).get(label, {}).get("rps")
                for tool, group in (("loadgen", "workers"), ("wrk", "workers (wrk)"))}
    rounds = [{EMB1: rps_of(EMB1), EMB2: rps_of(EMB2)}]
    for n in range(2, max(1, a.rounds) + 1):
        log(f"1b. embedded pair, round {n} of {a.rounds}")
        this = {}
        for label, workers in ((EMB1, 1), (EMB2, 2)):
            r = run_json(label, gateway(f"emb{workers}_r{n}", postgres=False, redis=False, workers=workers), None,
                         f"round {n}", True)
            this[label] = {"loadgen": r.get("rps"), "wrk": (tp.get(f"round {n} (wrk)") or {}).get(label, {}).get("rps")}
        rounds.append(this)
        tp.pop(f"round {n}", None)
        tp.pop(f"round {n} (wrk)", None)
    out["rounds"] = rounds


def _children(pid: int) -> list[int]:
    from procs import children_of
    return [p for p in children_of(pid) if p != pid]


if __name__ == "__main__":
    raise SystemExit(main())

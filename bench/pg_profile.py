"""Where PostgreSQL's time goes per request: PostgreSQL + Redis, 1 vs 2 workers (issue 15, item 5).

    flock -x /tmp/bench.lock .venv/bin/python bench/pg_profile.py            # ~1 minute
    flock -x /tmp/bench.lock .venv/bin/python bench/pg_profile.py -d 8 --workers 1,2

The same servers as bench/scale.py's PostgreSQL + Redis rows (not pinned, c=64, bench/loadgen.py,
private PostgreSQL and Redis), with pg_stat_statements loaded (track = all, so the statements run
inside the PL/pgSQL batch routines are counted too). Per configuration it prints:
- requests/s and CPU ms per request of the gateway, of PostgreSQL (every process of the private
  cluster but the sampler's own backend) and of Redis;
- per statement: calls and execution time per request, mean rows per call (batch size for the
  routines);
- what the gateway's backends were doing, sampled from pg_stat_activity every `--sample-ms`:
  the share of samples per (state, wait event), e.g. Lock/transactionid = waiting on a row lock
  another transaction holds, Client/ClientRead = idle, waiting for the gateway.
pg_stat_statements itself costs some CPU, so the absolute figures run a little above scale.py's;
the sampler's own backend is left out of PostgreSQL's CPU (pg_stat_activity is cheap, the
sampler's client is not: this script's process competes for the cores).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import shutil
import time
from collections import Counter
from pathlib import Path

from procs import Proc, free_port, wait_ready
from scale import HERE, MODEL, PROMPT, PY, Gateway, Services, base_env, make_key

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICKS


async def sample_activity(url: str, stop: asyncio.Event, period_s: float, me: list[int]) -> tuple[Counter, int]:
    import asyncpg
    conn = await asyncpg.connect(url)
    me.append(await conn.fetchval("SELECT pg_backend_pid()"))
    seen: Counter = Counter()
    n = 0
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
        while not stop.is_set():
            rows = await conn.fetch(
                "SELECT state, wait_event_type, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 48) "
                "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'")
            n += 1
            for st, wt, we, q in rows:
                what = "active" if st == "active" else st
                seen[(what, f"{wt or '-'}/{we or '-'}", q if st == "active" else "")] += 1
            await asyncio.sleep(period_s)
    finally:
        await conn.close()
    return seen, n


async def statements(url: str) -> list[tuple]:
    import asyncpg
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90), calls, total_exec_time, rows, toplevel "
            "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "ORDER BY total_exec_time DESC LIMIT 14")
    finally:
        await conn.close()


def profile(svc: Services, tmp: Path, upstream: str, workers: int, a) -> dict:
    db = svc.new_database(f"pgprof_{os.getpid()}_{workers}")
    g = Gateway(f"pg{workers}", tmp, upstream, db_url=db, redis_url=svc.redis_url, workers=workers)
    try:
        g.ready()
        key = make_key(g.url)
        # warm the gateway (auth cache, pools), then measure
        cmd = [PY, str(HERE / "loadgen.py"), "--url", g.url + "/v1/chat/completions", "-c", "64", "--model", MODEL,
               "--prompt", PROMPT, "--key", key]
        subprocess.run(cmd + ["-d", "1", "--warmup", "0"], capture_output=True, timeout=60)
        def pg_pids() -> list[int]:         # the backends of the moment (pooled; a new one starts at 0)
            return [p for sp in svc.procs if sp.name == "postgres" for p in sp.pids()]
        redis_pids = [p for sp in svc.procs if sp.name == "redis" for p in sp.pids()]

        async def run() -> tuple:
            stop = asyncio.Event()
            me: list[int] = []
            sampler = asyncio.create_task(sample_activity(db, stop, a.sample_ms / 1000, me))
            await asyncio.sleep(0.3)               # the sampler has reset pg_stat_statements
            gw0, pg0, rd0 = cpu_s(g.pids()), cpu_s(pg_pids()) - cpu_s(me), cpu_s(redis_pids)
            t0 = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(*cmd, "-d", str(a.duration), "--warmup", "0", "--stagger",
                                                        "0.2", stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            wall = time.perf_counter() - t0
            gw1, pg1, rd1 = cpu_s(g.pids()), cpu_s(pg_pids()) - cpu_s(me), cpu_s(redis_pids)
            stop.set()
            seen, n = await sampler
            stmts = await statements(db)
            return json.loads(out.decode().strip().splitlines()[-1]), wall, gw1 - gw0, pg1 - pg0, rd1 - rd0, seen, n, \
                stmts

        lg, wall, gw_s, pg_s, rd_s, seen, n, stmts = asyncio.run(run())
        req = max(1, lg["requests"])
        res = {"workers": workers, "rps": lg["rps"], "requests": req, "errors": lg["errors"],
               "p99_ms": lg["lat_ms"]["p99"], "wall_s": wall,
               "cpu_ms_per_req": {"gateway": gw_s * 1000 / req, "postgres": pg_s * 1000 / req,
                                  "redis": rd_s * 1000 / req},
               "cores": {"gateway": gw_s / wall, "postgres": pg_s / wall, "redis": rd_s / wall},
               "statements": [{"query": q, "calls_per_req": c / req, "exec_ms_per_req": t / req,
                               "rows_per_call": r / c if c else 0, "toplevel": top} for q, c, t, r, top in stmts],
               "activity": {f"{w} {e} {q}".strip(): cnt / n for (w, e, q), cnt in seen.most_common(12)},
               "samples": n}
        return res
    finally:
        g.stop()


def show(r: dict) -> None:
    print(f"\n== PostgreSQL + Redis, {r['workers']} worker(s): {r['rps']:,.0f} req/s, p99 {r['p99_ms']:.1f} ms, "
          f"{r['requests']} requests, errors {r['errors']}")
    c, k = r["cpu_ms_per_req"], r["cores"]
    print("CPU ms/req: " + ", ".join(f"{n} {v:.3f}" for n, v in c.items())
          + " | cores: " + ", ".join(f"{n} {v:.2f}" for n, v in k.items()))
    print(f"{'calls/req':>9} {'exec ms/req':>11} {'rows/call':>9}  statement")
    for s in r["statements"]:
        print(f"{s['calls_per_req']:9.3f} {s['exec_ms_per_req']:11.4f} {s['rows_per_call']:9.1f}  "
              f"{'' if s['toplevel'] else '  (in routine) '}{s['query']}")
    print(f"gateway backends, mean count per sample ({r['samples']} samples):")
    for what, v in r["activity"].items():
        print(f"  {v:6.2f}  {what}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-d", "--duration", type=float, default=8.0)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--sample-ms", type=float, default=10.0)
    ap.add_argument("--json", default="", help="also write the results here")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="routerone-pgprof-"))
    (tmp / "svc").mkdir()
    svc = Services(tmp / "svc", None, False, ("shared_preload_libraries=pg_stat_statements",
                                              "pg_stat_statements.track=all"))
    port = free_port()
    up = Proc("upstream", [PY, str(HERE / "upstream.py"), "--port", str(port)], env=base_env(), log_dir=tmp)
    results = []
    try:
        why = wait_ready(up, f"http://127.0.0.1:{port}/healthz", 30)
        if why:
            raise SystemExit(why)
        svc.start()
        for w in [int(x) for x in a.workers.split(",")]:
            r = profile(svc, tmp, f"http://127.0.0.1:{port}/v1", w, a)
            show(r)
            results.append(r)
    finally:
        up.stop()
        svc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())

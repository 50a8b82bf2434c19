"""Where `--workers 2` loses against one worker: gateway CPU per request, embedded (SQLite), load from wrk.

    .venv/bin/python bench/workers_ab.py                 # 1 worker, 2 separate instances, --workers 2
    .venv/bin/python bench/workers_ab.py --rounds 2 -d 8

Three servers, one after the other, each loaded by wrk at c=64 in total (bench/wrkload.py):
- `serve` with one worker (in-process limiter);
- two separate one-worker instances (each its own SQLite file, port and in-process limiter; wrk at c=32
  against each, at the same time): two processes on the two cores sharing nothing;
- `serve --workers 2` (one port, one SQLite file, the shared-memory limiter, multiprocess metrics).
The second isolates what sharing the cores costs; the third minus the second is what the shared state
costs (the SQLite write lock, the shared limiter, prometheus' multiprocess files). Prints JSON lines.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
from pathlib import Path

from procs import Proc, free_port, wait_ready
from scale import MODEL, PROMPT, PY, Gateway, base_env, make_key
from wrkload import ensure_wrk, wrk_load

HERE = Path(__file__).resolve().parent
BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}, separators=(",", ":"))


def run(label: str, gateways: list[Gateway], up: Proc, wrk: str, tmp: Path, duration: float) -> dict:
    try:
        keys = []
        for g in gateways:
            g.ready()
            keys.append(make_key(g.url))
        results: list[dict] = [{} for _ in gateways]

        def load(i: int) -> None:
            (tmp / f"wrk{i}").mkdir(exist_ok=True)
            results[i] = wrk_load(wrk, gateways[i].url + "/v1/chat/completions", keys[i], BODY, 64 // len(gateways),
                                  duration, 2.0, tmp / f"wrk{i}", {"gateway": gateways[i].pids(),
                                                                   "upstream": up.pids() if i == 0 else []}, None)
        threads = [threading.Thread(target=load, args=(i,)) for i in range(len(gateways))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for g in gateways:
            g.stop()
    if any("failed" in r for r in results):
        return {"server": label, "failed": [r.get("failed") for r in results]}
    rps = sum(r["rps"] for r in results)
    cores = sum(r["cpu"]["cores"]["gateway"] for r in results)
    return {"server": label, "rps": round(rps), "gateway_cores": round(cores, 3),
            "gateway_cpu_ms_per_req": round(cores / rps * 1000, 4),
            "upstream_cores": results[0]["cpu"]["cores"]["upstream"],
            "machine_busy_cores": results[0]["cpu"]["machine_busy_cores"], "errors": sum(r["errors"] for r in results)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-d", type=float, default=8.0, help="measured seconds per server")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    wrk = ensure_wrk(print)
    tmp = Path(tempfile.mkdtemp(prefix="routerone-workers-ab-"))
    port = free_port()
    up = Proc("upstream", [PY, str(HERE / "upstream.py"), "--port", str(port)], env=base_env(), log_dir=tmp)
    upstream = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(up, f"http://127.0.0.1:{port}/healthz", 30)
        n = iter(range(1000))

        def gw(workers: int = 1) -> Gateway:
            name = f"gw{next(n)}"
            return Gateway(name, tmp, upstream, db_url=f"sqlite:///{tmp / (name + '.db')}", redis_url=None,
                           workers=workers)
        for _ in range(a.rounds):
            print(json.dumps(run("1 worker", [gw()], up, wrk, tmp, a.d)), flush=True)
            print(json.dumps(run("2 separate instances (1 worker each, nothing shared)", [gw(), gw()], up, wrk, tmp,
                                 a.d)), flush=True)
            print(json.dumps(run("--workers 2 (shared-memory limiter)", [gw(2)], up, wrk, tmp, a.d)), flush=True)
    finally:
        up.stop()


if __name__ == "__main__":
    main()

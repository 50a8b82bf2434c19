"""Does the two-malloc-arena limit cost throughput? One worker, embedded (SQLite), wrk at c=64 (as
bench/workers_ab.py), alternating between the default (server.py calls mallopt(M_ARENA_MAX, 2)) and
MALLOC_ARENA_MAX=16 (glibc's own default on this 2-core machine, 8 per core: what the server did
before session 8), `--rounds` times each. Prints JSON lines: req/s and gateway CPU per request.

    .venv/bin/python bench/arenas_ab.py --rounds 3 -d 8
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from procs import Proc, free_port, wait_ready
from scale import PY, Gateway, base_env
from workers_ab import HERE, run
from wrkload import ensure_wrk


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-d", type=float, default=8.0, help="measured seconds per server")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    wrk = ensure_wrk(print)
    tmp = Path(tempfile.mkdtemp(prefix="routerone-arenas-ab-"))
    port = free_port()
    up = Proc("upstream", [PY, str(HERE / "upstream.py"), "--port", str(port)], env=base_env(), log_dir=tmp)
    upstream = f"http://127.0.0.1:{port}/v1"
    os.environ.pop("MALLOC_ARENA_MAX", None)
    try:
        wait_ready(up, f"http://127.0.0.1:{port}/healthz", 30)
        for r in range(a.rounds):
            for label, arenas in (("2 arenas (mallopt, the default)", None), ("MALLOC_ARENA_MAX=16", "16")):
                if arenas:
                    os.environ["MALLOC_ARENA_MAX"] = arenas       # Gateway takes os.environ (base_env)
                name = f"gw{r}-{arenas or 'default'}"
                gw = Gateway(name, tmp, upstream, db_url=f"sqlite:///{tmp / (name + '.db')}", redis_url=None)
                os.environ.pop("MALLOC_ARENA_MAX", None)
                print(json.dumps({"round": r + 1, **run(label, [gw], up, wrk, tmp, a.d)}), flush=True)
    finally:
        up.stop()


if __name__ == "__main__":
    main()

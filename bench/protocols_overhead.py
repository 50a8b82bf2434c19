"""Router One's own time per request on each client protocol, at concurrency 1.

    .venv/bin/python bench/protocols_overhead.py            # 2,000 requests per route
    .venv/bin/python bench/protocols_overhead.py -n 500     # quicker

Three processes on loopback: the fake OpenAI upstream (routerone.testing.fake_openai, chat and
embeddings), a Router One (SQLite store, in-process limiter, the test harness's settings) and this
client, which sends the routes' requests round-robin (so load on a shared machine hits every route
alike) over one keep-alive connection each and records, per request, the client-side latency and
`x-routerone-overhead-ms` (the gateway's time minus the upstream call; for messages and responses
it includes rendering the protocol's reply, and for responses the store write).

Reported per route: p50 and p90 of both, and the overhead p50 minus chat's ("added vs chat").
Embeddings call a different upstream endpoint, so only their overhead column compares.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROUTES = {
    "chat": ("/v1/chat/completions", {"model": "gpt-4o", "max_tokens": 16,
                                      "messages": [{"role": "user", "content": "Say hello"}]}),
    "messages": ("/v1/messages", {"model": "gpt-4o", "max_tokens": 16,
                                  "messages": [{"role": "user", "content": "Say hello"}]}),
    "responses": ("/v1/responses", {"model": "gpt-4o", "max_output_tokens": 16, "input": "Say hello"}),
    "responses store:false": ("/v1/responses", {"model": "gpt-4o", "max_output_tokens": 16, "input": "Say hello",
                                                "store": False}),
    "embeddings": ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "Say hello",
                                      "encoding_format": "float", "dimensions": 8}),
}


def serve_upstream() -> None:
    from routerone.testing import fake_openai
    from routerone.testing.threaded import ThreadedServer
    with ThreadedServer(lambda: fake_openai.make_app(api_key="sk-bench-upstream")) as srv:
        srv.app["fake"].keep_requests = False
        print(json.dumps({"url": srv.url}), flush=True)
        sys.stdin.read()


def serve_gateway(upstream_url: str) -> None:
    from routerone.testing.harness import Gateway
    db = os.path.join(tempfile.mkdtemp(prefix="ro-bench-"), "bench.sqlite")
    gw = Gateway.for_upstreams(db, {"openai": (upstream_url + "/v1", "sk-bench-upstream")})
    gw.start()
    key, _ = gw.new_key(balance_micros=10**12, rpm=100_000_000, tpm=2_000_000_000)
    print(json.dumps({"url": gw.url, "key": key}), flush=True)
    sys.stdin.read()
    gw.stop()


def _spawn(*args: str) -> tuple[subprocess.Popen, dict]:
    p = subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return p, json.loads(p.stdout.readline())


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000, help="measured requests per route")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--serve-upstream", action="store_true")
    ap.add_argument("--serve-gateway")
    a = ap.parse_args()
    if a.serve_upstream:
        return serve_upstream()
    if a.serve_gateway:
        return serve_gateway(a.serve_gateway)
    import httpx2
    up, up_info = _spawn("--serve-upstream")
    gw, gw_info = _spawn("--serve-gateway", up_info["url"])
    try:
        headers = {"Authorization": f"Bearer {gw_info['key']}"}
        clients = {name: httpx2.Client(base_url=gw_info["url"], headers=headers, timeout=30) for name in ROUTES}
        lat: dict[str, list[float]] = {n: [] for n in ROUTES}
        over: dict[str, list[float]] = {n: [] for n in ROUTES}
        for i in range(a.warmup + a.n):
            for name, (path, body) in ROUTES.items():
                t0 = time.perf_counter()
                r = clients[name].post(path, json=body)
                dt = (time.perf_counter() - t0) * 1000
                if r.status_code != 200:
                    raise SystemExit(f"{name}: {r.status_code} {r.text[:300]}")
                if i >= a.warmup:
                    lat[name].append(dt)
                    over[name].append(float(r.headers["x-routerone-overhead-ms"]))
        load = os.getloadavg()
        print(f"# {a.n} requests per route at c=1 (after {a.warmup} warm-up), round-robin; "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
        print(f"{'route':24} {'client p50':>11} {'client p90':>11} {'overhead p50':>13} {'overhead p90':>13} "
              f"{'added vs chat':>14}")
        base = statistics.median(over["chat"])
        for name in ROUTES:
            o50 = statistics.median(over[name])
            print(f"{name:24} {statistics.median(lat[name]):9.3f}ms {_pct(lat[name], .9):9.3f}ms "
                  f"{o50:11.3f}ms {_pct(over[name], .9):11.3f}ms {o50 - base:+12.3f}ms")
    finally:
        for p in (gw, up):
            p.stdin.close()
            p.wait(timeout=30)


if __name__ == "__main__":
    main()

"""Per-request cost of shared cooldowns (routing/cooldown_redis.py): `Health.available` without a
board (per-process cooldowns, as before) and with a started RedisCooldownBoard whose shared set
holds `--cooled` cooled-down deployments; plus the background refresh's cost (one round trip), and
the refresh of the shared-memory table of `serve --workers N` without Redis (cooldown_shared.py:
the same dict on the hot path; its refresh reads a generation counter, and copies the table only
when another worker wrote).

    PYTHONPATH=src .venv/bin/python bench/cooldown_board.py [--deployments 40] [--cooled 5] [--calls 200000]

`available` is synchronous: it cannot make a round trip; the planner calls it once per candidate
deployment of a request (`--deployments` of them: one request's worth). Uses REDIS_URL (default
redis://127.0.0.1:6379/0); removes its members from `ro:cool:v1` afterwards.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from types import SimpleNamespace

from routerone.routing.cooldown_redis import RedisCooldownBoard
from routerone.routing.cooldown_shared import SharedCooldownBoard, SharedCooldownState
from routerone.routing.health import Health

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def per_request_ns(health: Health, deps: list[str], calls: int) -> float:
    """Median over 5 runs of the ns one request's `available` checks take (all deployments)."""
    runs = []
    for _ in range(5):
        t = time.perf_counter_ns()
        for _ in range(calls // len(deps)):
            for d in deps:
                health.available(d)
        runs.append((time.perf_counter_ns() - t) / (calls // len(deps)))
    return statistics.median(runs)


async def main(args: argparse.Namespace) -> None:
    base_url = f"http://bench-{os.getpid()}.invalid/v1"
    vendors = {"bench": SimpleNamespace(base_url=base_url)}
    deps = [f"bench/model-{i}" for i in range(args.deployments)]
    plain = Health()
    for d in deps[::2]:                     # some deployments with health, as after traffic
        plain.record_success(d, ttft_ms=100.0, duration_ms=500.0, completion_tokens=50)
    board = RedisCooldownBoard(REDIS_URL, lambda: vendors)
    shared = Health(board=board)
    for d in deps[::2]:
        shared.record_success(d, ttft_ms=100.0, duration_ms=500.0, completion_tokens=50)
    try:
        for d in deps[:args.cooled]:
            board.publish(d, 60.0)
        await asyncio.sleep(0.1)
        await board.refresh()
        assert len(board.cooling(time.monotonic())) == args.cooled
        before = per_request_ns(plain, deps, args.calls)
        after = per_request_ns(shared, deps, args.calls)
        refresh_s = []
        for _ in range(50):
            t = time.perf_counter()
            await board.refresh()
            refresh_s.append(time.perf_counter() - t)
        cpu = time.process_time()
        for _ in range(50):
            await board.refresh()
        refresh_cpu_us = (time.process_time() - cpu) / 50 * 1e6
        print(f"{args.deployments} deployment checks per request, {args.cooled} cooled down in Redis")
        print(f"  per request, no board (per process): {before / 1000:.2f} us ({before / len(deps):.0f} ns a check)")
        print(f"  per request, Redis board:            {after / 1000:.2f} us ({after / len(deps):.0f} ns a check)"
              f"; Redis round trips per request: 0 (available() is synchronous)")
        print(f"  background refresh (every {board.refresh_interval_s} s): median "
              f"{statistics.median(refresh_s) * 1e6:.0f} us wall, {refresh_cpu_us:.0f} us CPU")
        state = SharedCooldownState()
        one, two = SharedCooldownBoard(state.handle), SharedCooldownBoard(state.handle)
        try:
            for d in deps[:args.cooled]:
                one.publish(d, 60.0)
            t = time.perf_counter_ns()
            for _ in range(1000):
                two.refresh()                   # unchanged: one memory read
            same_ns = (time.perf_counter_ns() - t) / 1000
            t = time.perf_counter_ns()
            for i in range(200):
                one.publish(deps[i % args.cooled] if args.cooled else deps[0], 60.0 + i)
                two.refresh()                   # changed: the table copied under the lock
            changed_us = (time.perf_counter_ns() - t) / 200 / 1000
            print(f"  workers' shared table: refresh (every {two.refresh_interval_s} s) {same_ns:.0f} ns unchanged, "
                  f"{changed_us:.0f} us after a write (publish + copy)")
        finally:
            await one.close()
            await two.close()
            state.unlink()
    finally:
        for d in deps[:args.cooled]:
            board.clear(d)
        await board.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--deployments", type=int, default=40)
    p.add_argument("--cooled", type=int, default=5)
    p.add_argument("--calls", type=int, default=200_000)
    asyncio.run(main(p.parse_args()))

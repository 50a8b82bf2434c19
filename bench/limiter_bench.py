"""Client CPU of the Redis limiter under concurrency: CPU time per acquire+release pair.

    .venv/bin/python bench/limiter_bench.py [--pairs 5000] [--tasks 64] [--runs 5] [--no-uvloop]

`--tasks` coroutines share one RedisLimiter and loop acquire -> release (a chat request's two
limiter calls) until `--pairs` pairs are done; `time.process_time()` around that gives this
process's CPU per pair (the gateway's cost; Redis's own CPU is not counted). The rule is the bench
key's (bench/run.py: rpm 100,000,000, tpm 2,000,000,000) with a fresh scope per run, so nothing is
ever denied. Uses REDIS_URL (default redis://127.0.0.1:6379/0) and deletes its keys afterwards.
Prints the median over `--runs` runs (after one warm-up run), and `round_trips` per pair when the
limiter counts them. To compare with another version, run it with PYTHONPATH pointing at that
version's src/ (e.g. `git archive HEAD src | tar -x -C /tmp/before`).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

from redis.asyncio import Redis

from routerone.limits import KEY_PREFIX, LimitRule, RedisLimiter

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def one_run(limiter: RedisLimiter, pairs: int, tasks: int) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, round trips) for `pairs` acquire+release pairs."""
    rule = LimitRule(f"bench:{uuid.uuid4().hex[:12]}", 100_000_000, 2_000_000_000)
    left = pairs

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            decision = await limiter.acquire([rule], uuid.uuid4().hex, 100)
            assert decision.allowed, decision
            await limiter.release(decision.ticket, 40)

    trips = getattr(limiter, "round_trips", 0)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu, wall, getattr(limiter, "round_trips", 0) - trips


async def main(args: argparse.Namespace) -> None:
    limiter = RedisLimiter(REDIS_URL, failure_policy="closed")
    try:
        await one_run(limiter, min(args.pairs, 1000), args.tasks)             # warm-up
        results = [await one_run(limiter, args.pairs, args.tasks) for _ in range(args.runs)]
        assert limiter.fallback_events == 0, "Redis did not decide every call"
    finally:
        await limiter.close()
        client = Redis.from_url(REDIS_URL)
        async for key in client.scan_iter(match=f"{KEY_PREFIX}bench:*", count=1000):
            await client.delete(key)
        await client.aclose()
    cpu = statistics.median(r[0] for r in results)
    wall = statistics.median(r[1] for r in results)
    trips = statistics.median(r[2] for r in results)
    print(f"{args.pairs} pairs x {args.runs} runs, {args.tasks} tasks, loop={args.loop}: "
          f"CPU per pair {cpu / args.pairs * 1e6:.1f} us (median; runs: "
          f"{', '.join(f'{r[0] / args.pairs * 1e6:.1f}' for r in results)}), "
          f"wall {args.pairs / wall:,.0f} pairs/s, round trips per pair "
          + (f"{trips / args.pairs:.3f}" if hasattr(limiter, "round_trips") else "not counted"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-uvloop", dest="loop", action="store_const", const="asyncio",
                        default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main(args))

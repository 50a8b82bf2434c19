"""Latency of one `balanced` (model: auto) routing decision, as the planner runs it:
BalancedStrategy.rank = prompt features -> traits -> every candidate's predicted quality and cost
-> value order (routing/learned/value.py).

    .venv/bin/python bench/routing_decision.py [--iterations 1000] [--candidates 20] [--json OUT]

Prompts of about 100 .. 8k tokens (o200k, counted with bpe_openai when installed) are built from a
fixed-seed mix of prose, numbers and code. Candidates: the shipped catalog's models, then made-up
models (profiles from priors or the default) up to --candidates. Each decision is timed with
perf_counter_ns (wall) and thread_time_ns (this thread's CPU time: what the decision costs, without
the time the OS gave other processes -- on a shared, loaded machine the wall p99 is mostly
preemption) in this process, after a warm-up; p50 / p99 / max per prompt size and over all sizes
are printed in ms. Target: p99 <= 1 ms for an 8k-token prompt with 20 candidates.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from routerone.catalog import load_catalog  # noqa: E402
from routerone.routing.base import RouteContext  # noqa: E402
from routerone.routing.health import Health  # noqa: E402
from routerone.routing.strategies import BalancedStrategy  # noqa: E402
from routerone.settings import Settings  # noqa: E402
from routerone.wire.chat import validate_body  # noqa: E402

TARGET_TOKENS = (100, 500, 1000, 2000, 4000, 8000)
EXTRA_IDS = ("gpt-4.1-nano", "claude-opus-4", "gemini-2.0-flash", "llama-3.3-70b-versatile",
             "deepseek-reasoner", "claude-3-7-sonnet", "claude-1", "gpt-4-0314", "my-private-model-a",
             "my-private-model-b", "my-private-model-c", "my-private-model-d")
WORDS = ("the of and to in is that for it as with was on be by this are from or an which can we "
         "model data function return value integral matrix proof theorem compute explain summary "
         "please write code python error because however therefore example result").split()


def _token_counter():
    try:
        import bpe_openai
        enc = bpe_openai.get_encoding("o200k_base")
        return lambda s: len(enc.encode(s))
    except Exception:
        return lambda s: len(s) // 4


def make_prompt(tokens: int, rng: random.Random, count) -> str:
    parts: list[str] = []
    text = ""
    while True:
        kind = rng.random()
        if kind < 0.7:
            parts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))).capitalize() + ".")
        elif kind < 0.85:
            parts.append(f"Compute {rng.randint(2, 999)} * {rng.uniform(0, 99):.2f} = ?")
        else:
            parts.append(f"```python\ndef f{rng.randint(0, 99)}(x):\n    return x ** {rng.randint(2, 9)}\n```")
        if len(parts) % 20 == 0:
            text = "\n".join(parts)
            if count(text) >= tokens:
                break
    lo, hi = 0, len(text)
    while hi - lo > 16:
        mid = (lo + hi) // 2
        if count(text[:mid]) < tokens:
            lo = mid
        else:
            hi = mid
    return text[:hi]


def candidates(n: int) -> list:
    models = list(load_catalog(Settings()).models.values())
    base = models[0]
    i = 0
    while len(models) < n:
        mid = EXTRA_IDS[i % len(EXTRA_IDS)] + ("" if i < len(EXTRA_IDS) else f"-{i}")
        models.append(dataclasses.replace(base, id=mid))
        i += 1
    return models[:n]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=1000, help="decisions per prompt size")
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--wtp", type=float, default=0.5)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    t0 = time.perf_counter()
    strategy = BalancedStrategy()
    load_ms = (time.perf_counter() - t0) * 1000
    models = candidates(args.candidates)
    rng = random.Random(0)
    count = _token_counter()
    prompts = {n: [make_prompt(n, rng, count) for _ in range(8)] for n in TARGET_TOKENS}
    reqs = {n: [(validate_body({"model": "auto", "messages": [{"role": "user", "content": p}]}), count(p))
                for p in ps] for n, ps in prompts.items()}
    health = Health()

    def decide(req, tokens: int) -> None:
        req.memo.clear()      # a request is decided once: nothing kept from an earlier decision on it
        strategy.rank(req, models, RouteContext(health, args.wtp, tokens))

    for rs in reqs.values():          # warm-up
        for req, tok in rs:
            for _ in range(20):
                decide(req, tok)
    results, all_ms, all_cpu = {}, [], []
    for n, rs in reqs.items():
        ms, cpu = [], []
        for i in range(args.iterations):
            req, tok = rs[i % len(rs)]
            start, cstart = time.perf_counter_ns(), time.thread_time_ns()
            decide(req, tok)
            cpu.append((time.thread_time_ns() - cstart) / 1e6)
            ms.append((time.perf_counter_ns() - start) / 1e6)
        all_ms.extend(ms)
        all_cpu.extend(cpu)
        results[n] = {"tokens": rs[0][1], "chars": len(prompts[n][0]), "p50_ms": statistics.median(ms),
                      "p99_ms": percentile(ms, 99), "max_ms": max(ms),
                      "cpu_p50_ms": statistics.median(cpu), "cpu_p99_ms": percentile(cpu, 99)}
    overall = {"p50_ms": statistics.median(all_ms), "p99_ms": percentile(all_ms, 99),
               "max_ms": max(all_ms), "cpu_p50_ms": statistics.median(all_cpu),
               "cpu_p99_ms": percentile(all_cpu, 99), "decisions": len(all_ms), "candidates": len(models)}

    print(f"artefact load: {load_ms:.1f} ms (once per process)")
    print(f"{'tokens':>7} {'chars':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu p50':>8} {'cpu p99':>8}")
    for r in results.values():
        print(f"{r['tokens']:>7} {r['chars']:>7} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['max_ms']:>8.3f}"
              f" {r['cpu_p50_ms']:>8.3f} {r['cpu_p99_ms']:>8.3f}")
    print(f"{'all':>7} {'':>7} {overall['p50_ms']:>8.3f} {overall['p99_ms']:>8.3f} {overall['max_ms']:>8.3f}"
          f" {overall['cpu_p50_ms']:>8.3f} {overall['cpu_p99_ms']:>8.3f}"
          f"   ({overall['decisions']} decisions, {len(models)} candidates)")
    if args.json:
        args.json.write_text(json.dumps({"load_ms": load_ms, "by_tokens": results, "overall": overall},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Latency of one `balanced` routing decision: LearnedRouter.predict_gain + rank_by_value.

    .venv/bin/python bench/routing_decision.py [--iterations 1000] [--json OUT]

Prompts of about 100 .. 8k tokens (o200k, counted with bpe_openai when installed) are built from a
fixed-seed mix of prose, numbers and code. Each decision is timed with perf_counter_ns in this
process, after a warm-up; p50 / p99 / max per prompt size and over all sizes are printed in ms.
Target: p99 well under 2 ms up to 8k tokens.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from routerone.routing.learned import Candidate, LearnedRouter, rank_by_value  # noqa: E402

TARGET_TOKENS = (100, 500, 1000, 2000, 4000, 8000)
CANDIDATES = [Candidate("gpt-4o-mini", 0.70, 375_000), Candidate("claude-3-haiku", 0.72, 750_000),
              Candidate("gpt-4.1-mini", 0.80, 1_000_000), Candidate("claude-3.7-sonnet", 0.88, 9_000_000),
              Candidate("gpt-4.1", 0.86, 5_000_000), Candidate("gemini-2.5-pro", 0.92, 5_600_000)]
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
    # trim to the target
    lo, hi = 0, len(text)
    while hi - lo > 16:
        mid = (lo + hi) // 2
        if count(text[:mid]) < tokens:
            lo = mid
        else:
            hi = mid
    return text[:hi]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=1000, help="decisions per prompt size")
    ap.add_argument("--wtp", type=float, default=0.5)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    t0 = time.perf_counter()
    router = LearnedRouter.load()
    load_ms = (time.perf_counter() - t0) * 1000
    rng = random.Random(0)
    count = _token_counter()
    prompts = {n: [make_prompt(n, rng, count) for _ in range(8)] for n in TARGET_TOKENS}

    def decide(prompt: str) -> None:
        rank_by_value(router.predict_gain(prompt), CANDIDATES, args.wtp)

    for ps in prompts.values():          # warm-up
        for p in ps:
            for _ in range(20):
                decide(p)
    results, all_ms = {}, []
    for n, ps in prompts.items():
        ms = []
        for i in range(args.iterations):
            p = ps[i % len(ps)]
            start = time.perf_counter_ns()
            decide(p)
            ms.append((time.perf_counter_ns() - start) / 1e6)
        all_ms.extend(ms)
        results[n] = {"tokens": count(ps[0]), "chars": len(ps[0]), "p50_ms": statistics.median(ms),
                      "p99_ms": percentile(ms, 99), "max_ms": max(ms)}
    overall = {"p50_ms": statistics.median(all_ms), "p99_ms": percentile(all_ms, 99),
               "max_ms": max(all_ms), "decisions": len(all_ms)}

    print(f"artefact load: {load_ms:.1f} ms (once per process)")
    print(f"{'tokens':>7} {'chars':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in results.values():
        print(f"{r['tokens']:>7} {r['chars']:>7} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['max_ms']:>8.3f}")
    print(f"{'all':>7} {'':>7} {overall['p50_ms']:>8.3f} {overall['p99_ms']:>8.3f} {overall['max_ms']:>8.3f}"
          f"   ({overall['decisions']} decisions, {len(CANDIDATES)} candidates)")
    if args.json:
        args.json.write_text(json.dumps({"load_ms": load_ms, "by_tokens": results, "overall": overall},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

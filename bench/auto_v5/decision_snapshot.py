"""Snapshot of `balanced` decisions over a fixed prompt set, to prove a speed-up changes nothing.

    python bench/auto_v5/decision_snapshot.py OUT.npz [CSV ...]     # record (code on PYTHONPATH)
    python bench/auto_v5/decision_snapshot.py --compare A.npz B.npz  # exit 1 on any difference

Prompts: every `prompt` of the given CSVs (e.g. /tmp/rt/*/all.csv), the latency bench's synthetic
100..8k-token prompts, and edge cases (empty, whitespace, non-ASCII, lone backticks, long runs).
Recorded per prompt: the sparse features (bucket ids and counts), the dense features, the scorer's
traits and length factor, and for 20 candidates at wtp 0, 0.1 .. 0.9, 1 and three max_tokens the
chosen order and the reason string (which prints every chosen/runner-up quality and cost). The
comparison is exact (bitwise on floats).
"""
from __future__ import annotations

import csv
import hashlib
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import routing_decision as R  # noqa: E402
from routerone.routing.base import RouteContext  # noqa: E402
from routerone.routing.health import Health  # noqa: E402
from routerone.routing.learned import features as F  # noqa: E402
from routerone.routing.strategies import BalancedStrategy  # noqa: E402
from routerone.wire.chat import validate_body  # noqa: E402

WTPS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
EDGE = ["", " ", "\n\n", "a", "ab", "abc", "```", "````", "`````````x```", "``` ``` ```" * 50,
        "é", "日本語のプロンプト", "\ud800 lone surrogate", "x" * 20000, "1.5 + 2.25 = ?" * 900,
        "Ünïcödé " * 1500 + "```py\nprint(1)\n```" * 40, "\t\r\x0b\x0c" * 10, "%$/=(?" * 3000]


def prompts(csvs: list[str]) -> list[str]:
    out = list(EDGE)
    rng = random.Random(0)
    out += [R.make_prompt(n, rng, lambda s: len(s) // 4) for n in R.TARGET_TOKENS for _ in range(4)]
    csv.field_size_limit(1 << 30)
    for path in csvs:
        with open(path, newline="") as fh:
            out += [row["prompt"] for row in csv.DictReader(fh)]
    return out


def record(out: Path, csvs: list[str]) -> None:
    strategy, models, health = BalancedStrategy(), R.candidates(20), Health()
    ps = prompts(csvs)
    digest = hashlib.sha256()
    traits, dense = [], []
    for k, p in enumerate(ps):
        ids, counts = F.sparse_counts(p)
        digest.update(ids.astype(np.int64).tobytes() + b"|" + counts.astype(np.float64).tobytes() + b"#")
        dense.append(F.dense_raw(p))
        t, factor = strategy.router.prompt_view(p)
        traits.append(np.append(t, factor))
        req = validate_body({"model": "auto", "messages": [{"role": "user", "content": p or "-"}],
                             **({"max_tokens": (None, 50, 5000)[k % 3]} if k % 3 else {})})
        for w in WTPS:
            order, why = strategy.rank(req, models, RouteContext(health, w, len(p) // 4))
            digest.update((",".join(m.id for m in order) + "|" + why + "\n").encode())
    np.savez(out, dense=np.array(dense), traits=np.array(traits), digest=np.str_(digest.hexdigest()),
             n=np.int64(len(ps)))
    print(f"{len(ps)} prompts x {len(WTPS)} wtp, digest {digest.hexdigest()}")


def compare(a: Path, b: Path) -> int:
    za, zb = np.load(a), np.load(b)
    same = {k: np.array_equal(za[k], zb[k]) for k in ("n", "dense", "traits", "digest")}
    print(f"prompts {int(za['n'])} / {int(zb['n'])}; identical: {same}")
    if not same["traits"] and za["traits"].shape == zb["traits"].shape:
        print(f"max |traits diff| {np.max(np.abs(za['traits'] - zb['traits'])):.3g}")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    record(Path(sys.argv[1]), sys.argv[2:])

"""POST HOC (written after bench/auto_v12/prior_look2.py had run; not declared, decides nothing).

Where does arena order ZeroEval's models wrongly, and do the benchmark scores do better there? For each
ZeroEval task and each new score k, over the model pairs that both have arena and k (and realised
means on the prompts all those models answered, as in the declared look): the share of pairs each
score orders as the realised means do (pairs tied in realised mean or in the score left out), split by
the arena gap of the pair: < 25 points (about the width of arena's own 95% intervals for 2024 models)
or >= 25.

Run: PYTHONPATH=src .venv/bin/python bench/auto_v12/prior_look2_posthoc.py DIR SE_README AH_CSV LLMSTATS_DIR
"""
from __future__ import annotations

import importlib.util
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("prior_look2", Path(__file__).with_name("prior_look2.py"))
v12 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(v12)
v11 = v12.v11
GAP = 25.0


def main(root: Path, se: Path, ah: Path, ls: Path) -> None:
    v11.load(root)
    scores, _ = v12.all_scores(se, ah, ls)
    models, rows = v11._TABLES["zeroeval"]
    print("| task | score | pairs gap<25: arena right / score right / n | pairs gap>=25: arena / score / n |")
    print("|---|---|---|---|")
    for t in sorted({r["task"] for r in rows}):
        sub = [r for r in rows if r["task"] == t]
        for k in v12.NEW:
            have = [m for m in models if {"arena", k} <= set(scores.get(m, {}))
                    and any(v11._num(r.get(m)) is not None for r in sub)]      # as v11.look
            q = [[v11._num(r.get(m)) for m in have] for r in sub]
            q = np.array([v for v in q if all(x is not None for x in v)], dtype=float).reshape(-1, len(have))
            if len(have) < v11.MIN_MODELS or q.shape[0] == 0:
                continue
            means = dict(zip(have, q.mean(axis=0)))
            cells = {True: [0, 0, 0], False: [0, 0, 0]}
            for a, b in combinations(have, 2):
                real = np.sign(means[a] - means[b])
                ar = np.sign(scores[a]["arena"] - scores[b]["arena"])
                sc = np.sign(scores[a][k] - scores[b][k])
                if real == 0 or ar == 0 or sc == 0:
                    continue
                c = cells[abs(scores[a]["arena"] - scores[b]["arena"]) < GAP]
                c[0] += int(ar == real)
                c[1] += int(sc == real)
                c[2] += 1
            print(f"| {t} | {k} | " + " | ".join(f"{c[0]} / {c[1]} / {c[2]}" for c in (cells[True], cells[False])) + " |")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:5]))

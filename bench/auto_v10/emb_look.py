"""auto v10 look: does a dense static sentence embedding carry per-prompt signal that crosses
datasets better than the router's hashed n-grams? (issue 16; exploratory, not a candidate)

Written and committed before it was first run; nothing below changes after. It fits no shipped
artefact and changes nothing that `auto` serves. Its answer decides only whether a next session
should build a candidate on such embeddings (a candidate would then be planned and judged by the
unchanged rule of auto-v8-plan.md on all nine figures).

Declared settings
- Tables: mmlu, gsm8k, arena, mtbench as written by `python -m routerone.routing.learned.train
  prepare --dataset D --out DIR/D`; models gpt-4-1106-preview (strong) and
  mistralai/Mixtral-8x7B-Instruct-v0.1 (weak), the two every table has; rows missing either dropped.
- Target per prompt: (strong - weak) / span of that table (strategy.quality_span: 1 for correctness,
  the judge's range for 1-10 scores), so tables on different scales can be stacked.
- Learner: the router's own ridge (fit.train_scorer, squared loss, l2 = strategy.GAIN_L2), unchanged.
- Feature sets:
    A = the router's features (fit.featurise: n-grams + 14 counts), unchanged;
    E = A plus 256 dense columns: WordLlama `l2_supercat_256` (MIT; PyPI `wordllama` 0.4.0.post1,
        token vectors shipped in its wheel), the mean of the token vectors of features.window(prompt),
        L2-normalised; standardised and scaled like the other dense columns (fit.DENSE_WEIGHT);
    O = E without the n-grams (embedding + counts only).
- Leave-one-dataset-out: train on the other three tables, score the held-out one; APGR by
  metrics.routellm_summary on the held-out prompts.
- Intervals: 1,000 paired bootstrap resamples of the held-out prompts (seed 0), 2.5-97.5 percentiles,
  for each APGR and for E - A and O - A.
Reading fixed in advance: embeddings "cross datasets better" if E - A has its interval above 0 on
at least two of the four held-out sets and below 0 on none. Anything else: not worth a candidate.

Run: PYTHONPATH=src:<dir with wordllama> .venv/bin/python bench/auto_v10/emb_look.py /tmp/rt > OUT
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace

import numpy as np

from routerone.routing import metrics as M
from routerone.routing.evaluation import load_table
from routerone.routing.learned import features as F
from routerone.routing.learned import fit
from routerone.routing.learned.strategy import GAIN_L2, quality_span

SETS = ("mmlu", "gsm8k", "arena", "mtbench")
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
N_BOOT = 1000


class Embedder:
    def __init__(self) -> None:
        import wordllama
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
        base = os.path.dirname(wordllama.__file__)
        self.tok = Tokenizer.from_file(os.path.join(base, "tokenizers", "l2_supercat_tokenizer_config.json"))
        self.tok.no_truncation()
        self.vectors = load_file(os.path.join(base, "weights", "l2_supercat_256.safetensors"))[
            "embedding.weight"].astype(np.float32)

    def __call__(self, text: str) -> np.ndarray:
        ids = self.tok.encode(F.window(text), add_special_tokens=False).ids
        if not ids:
            return np.zeros(self.vectors.shape[1], dtype=np.float32)
        v = self.vectors[ids].mean(axis=0)
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v


def load(root: str):
    out = {}
    for name in SETS:
        t = load_table(os.path.join(root, name, "all.csv"))
        s, w = t.quality[:, t.models.index(STRONG)], t.quality[:, t.models.index(WEAK)]
        keep = np.flatnonzero(~np.isnan(s) & ~np.isnan(w))
        span = quality_span(np.concatenate([s[keep], w[keep]]))
        out[name] = ([t.prompts[i] for i in keep], s[keep], w[keep], span)
    return out


def stack(parts):
    ids, counts, dense = [], [], []
    for f in parts:
        ids += f.ids
        counts += f.counts
        dense.append(f.dense_raw)
    return fit.Featurised(ids, counts, np.concatenate(dense))


def variants(prompts: list[str], embed: Embedder) -> dict[str, fit.Featurised]:
    a = fit.featurise(prompts)
    emb = np.array([embed(p) for p in prompts], dtype=np.float64)
    e = replace(a, dense_raw=np.hstack([a.dense_raw, emb]))
    empty = [np.zeros(0, dtype=a.ids[0].dtype) for _ in prompts]
    o = replace(e, ids=empty, counts=[np.zeros(0, dtype=a.counts[0].dtype) for _ in prompts])
    return {"A": a, "E": e, "O": o}


def apgr(scores, w, s) -> float:
    return M.routellm_summary(scores, w, s)["apgr"]


def main(root: str) -> None:
    t0 = time.time()
    embed = Embedder()
    data = load(root)
    feats = {name: variants(d[0], embed) for name, d in data.items()}
    print(f"# featurised in {time.time() - t0:.0f} s: " + ", ".join(f"{n} {len(d[0])}" for n, d in data.items()),
          file=sys.stderr)
    report = {}
    for held in SETS:
        train_sets = [n for n in SETS if n != held]
        y = np.concatenate([(data[n][1] - data[n][2]) / data[n][3] for n in train_sets])
        _, s_te, w_te, _ = data[held]
        scores = {}
        for v in ("A", "E", "O"):
            tr = stack([feats[n][v] for n in train_sets])
            scorer = fit.train_scorer(tr, np.arange(len(y)), y, l2=GAIN_L2, loss="squared")
            te = feats[held][v]
            scores[v] = fit.score_rows(scorer, te, np.arange(len(s_te)))
        rng = np.random.default_rng(0)
        boot = {k: [] for k in ("A", "E", "O", "E-A", "O-A")}
        for _ in range(N_BOOT):
            i = rng.integers(0, len(s_te), len(s_te))
            a = {v: apgr(scores[v][i], w_te[i], s_te[i]) for v in ("A", "E", "O")}
            for v in ("A", "E", "O"):
                boot[v].append(a[v])
            boot["E-A"].append(a["E"] - a["A"])
            boot["O-A"].append(a["O"] - a["A"])
        point = {v: apgr(scores[v], w_te, s_te) for v in ("A", "E", "O")}
        point["E-A"], point["O-A"] = point["E"] - point["A"], point["O"] - point["A"]
        report[held] = {k: {"point": point[k], "lo": float(np.percentile(b, 2.5)),
                            "hi": float(np.percentile(b, 97.5))} for k, b in boot.items()}
        report[held]["n"] = len(s_te)
        print(f"# {held} done at {time.time() - t0:.0f} s", file=sys.stderr)
    print(json.dumps(report, indent=1))
    print("\n| held out | n | APGR A | APGR E | APGR O | E - A | O - A |\n|---|---|---|---|---|---|---|")
    for held, r in report.items():
        cell = lambda k: f"{r[k]['point']:+.3f} [{r[k]['lo']:+.3f}, {r[k]['hi']:+.3f}]"
        print(f"| {held} | {r['n']} | {cell('A')} | {cell('E')} | {cell('O')} | {cell('E-A')} | {cell('O-A')} |")


if __name__ == "__main__":
    main(sys.argv[1])

"""Declared look BEFORE the C-DOMK plan (auto-v9-plan.md): does a per-table nearest-neighbour
similarity, with each table's threshold taken from its own leave-one-out similarities, say "none of
the training tables" for a held-out set's prompts? Inputs only: no router is fitted, no routing
figure is computed. For each set H held out: the other sets are the training tables; the TF-IDF
vectors (idf of those training prompts) are signed-hashed to DIM dims and L2-normalised; per table
at most CAP prompts (fixed seed) are kept; sim_t(p) = mean cosine of p to its K nearest kept
prompts of table t (leave-one-out for a kept prompt of t); tau_t = the Q-quantile of table t's own
leave-one-out sims. Printed: for held-out H's prompts (at most 400), the share claimed by each
table (sim_t >= tau_t) and by none; for each training table's prompts not kept, the same.

    PYTHONPATH=src .venv/bin/python bench/auto_v9/knn_look.py [--dim 128] [--cap 1000] [--k 10] [--q 0.05]
"""
import argparse
import json

import numpy as np

from routerone.routing.learned import fit
from routerone.routing.learned.train import default_data_dir, shared_tables


def hashed(X: fit.Design, dim: int) -> np.ndarray:
    ids = X.col_ids[X.cols]
    sign = np.where((ids // dim) % 2 == 0, 1.0, -1.0)
    out = np.zeros((X.n_rows, dim))
    np.add.at(out, (X.rows, ids % dim), X.vals * sign)
    n = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(n > 0, n, 1.0)


def knn_sim(q: np.ndarray, ref: np.ndarray, k: int, self_rows: bool = False) -> np.ndarray:
    s = q @ ref.T
    if self_rows:
        np.fill_diagonal(s, -np.inf)
    k = min(k, ref.shape[0] - int(self_rows))
    return np.mean(-np.sort(-s, axis=1)[:, :k], axis=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--cap", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--q", type=float, default=0.05)
    a = ap.parse_args()
    tables = shared_tables(default_data_dir())
    out = {"dim": a.dim, "cap": a.cap, "k": a.k, "q": a.q}
    for held in tables:
        names = [t for t in tables if t != held]
        prompts = [p for t in names for p in tables[t].prompts]
        table_of = np.concatenate([np.full(len(tables[t].prompts), i) for i, t in enumerate(names)])
        rows = np.arange(len(prompts))
        feats = fit.featurise(prompts)
        idf, mean, std = fit.fit_scaling(feats, rows)
        V = hashed(fit.design(feats, rows, idf, mean, std), a.dim)
        rng = np.random.default_rng(0)
        kept, rest, tau = {}, {}, {}
        for i, t in enumerate(names):
            r = np.flatnonzero(table_of == i)
            r = rng.permutation(r)
            kept[t], rest[t] = np.sort(r[:a.cap]), r[a.cap:]
            loo = knn_sim(V[kept[t]], V[kept[t]], a.k, self_rows=True)
            tau[t] = float(np.quantile(loo, a.q))
        hp = tables[held].prompts[:400]
        hf = fit.featurise(hp)
        HV = hashed(fit.design(hf, np.arange(len(hp)), idf, mean, std), a.dim)

        def claims(M):
            c = np.stack([knn_sim(M, V[kept[t]], a.k) >= tau[t] for t in names], axis=1)
            return {"by_" + t: round(float(c[:, i].mean()), 3) for i, t in enumerate(names)} | \
                {"none": round(float((~c.any(axis=1)).mean()), 3), "n": int(len(M))}
        res = {"tau": {t: round(v, 3) for t, v in tau.items()}, "held_out": claims(HV)}
        for t in names:
            if len(rest[t]):
                res["train_" + t + "_not_kept"] = claims(V[rest[t][:400]])
        out["held_" + held] = res
        print(held, json.dumps(res), flush=True)
    return out


if __name__ == "__main__":
    main()

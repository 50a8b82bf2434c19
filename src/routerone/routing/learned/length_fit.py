"""Training with a length set (lengths.py): the answer-length column and models' verbosity.

`refit_length` refits the trait scorer's `length` column on the quality tables' length rows plus
the length set's rows. It keeps the feature scaling (IDF, dense standardisation) of the easy/gap
fit, so those columns, the profiles and the prior map stay exactly as they were; only the cost
side changes. The penalty is chosen as for every trait (inner cross-validation over
profile_fit.TRAIT_L2_GRID on the rows it is fitted on); rows weigh sqrt(largest table / own table)
as in profile_fit; `length_norm` comes from the chosen fit's out-of-fold predictions on the
quality tables' length rows (where the models' mean lengths were measured), or on the set's rows
when no quality table has lengths.

`verbosity_tokens` gives the expected answer length of the set's models relative to the trained
models also in it (ratio of geometric means x the trained models' mean length); models without a
trained length use it instead of the default (profiles.py).
"""
from __future__ import annotations

import numpy as np

from . import fit
from .lengths import LengthSet, geometric_means


def _concat(a: fit.Featurised, b: fit.Featurised) -> fit.Featurised:
    return fit.Featurised(a.ids + b.ids, a.counts + b.counts, np.vstack([a.dense_raw, b.dense_raw]))


def refit_length(scorer, feats: fit.Featurised, length_target: np.ndarray, table_rows: list[int],
                 table_of: np.ndarray, lengths: LengthSet, column: int, grid, folds: int,
                 clip: float) -> dict:
    """Replace `scorer`'s column `column` in place; returns what was done (for the artefact's meta).
    `length_target` (n,) for the quality rows (NaN = none), `table_rows` rows per quality table,
    `table_of` (n,) table index of each quality row."""
    from .profile_fit import _length_target
    set_y = _length_target(lengths.out_tokens)
    set_rows = np.flatnonzero(~np.isnan(set_y))
    q_rows = np.flatnonzero(~np.isnan(length_target))
    if len(set_rows) == 0:
        return {"rows": 0}
    set_feats = fit.featurise([lengths.prompts[i] for i in set_rows])
    sub = fit.Featurised([feats.ids[i] for i in q_rows], [feats.counts[i] for i in q_rows],
                         feats.dense_raw[q_rows])
    all_feats = _concat(sub, set_feats)
    y = np.concatenate([length_target[q_rows], set_y[set_rows]])
    n_max = max(max(table_rows), len(set_rows))
    w = np.concatenate([np.sqrt(n_max / np.array(table_rows, float))[table_of[q_rows]],
                        np.full(len(set_rows), np.sqrt(n_max / len(set_rows)))])
    scaling = (scorer.idf, scorer.dense_mean, scorer.dense_std)
    n = len(y)
    rows = np.arange(n)
    fold = np.random.default_rng(0).permutation(n) % folds
    preds = np.zeros((len(grid), n))
    shares = []
    for k in range(folds):
        te, tr = rows[fold == k], rows[fold != k]
        shares.append(w[tr].sum() / w.sum())
        path = fit.train_scorer_path(all_feats, tr, y[tr], l2_path=list(grid), loss="squared",
                                     sample_weight=w[tr], scaling=scaling)
        for g, s in enumerate(path):
            preds[g, te] = fit.score_rows(s, all_feats, te)
    err = ((preds - y[None, :]) ** 2) @ w
    best = int(np.argmin(err))
    l2 = grid[best] * float(np.mean(shares))
    final = fit.train_scorer_path(all_feats, rows, y, l2_path=[l2], loss="squared", sample_weight=w,
                                  scaling=scaling)[0]
    scorer.coef_sparse[:, column] = final.coef_sparse
    scorer.coef_dense[:, column] = final.coef_dense
    scorer.bias[column] = final.bias
    oof = preds[best]
    norm_rows = rows[:len(q_rows)] if len(q_rows) else rows
    norm = float(np.mean(np.exp(np.clip(oof[norm_rows], -clip, clip))))
    return {"set": lengths.name, "rows": int(len(set_rows)), "models": len(lengths.models),
            "quality_rows": int(len(q_rows)), "l2": float(l2), "length_norm": norm}


def verbosity_tokens(lengths: LengthSet, trained: dict[str, float], normalise) -> dict[str, float]:
    """{normalised name: expected answer tokens} for every model of the length set: its
    geometric-mean length in the set / that of the set's models with a trained length, x the mean
    trained length of those models (all trained models when none is in the set)."""
    gm = geometric_means(lengths.out_tokens)
    names = [normalise(m) for m in lengths.models]
    ok = ~np.isnan(gm)
    ref = [j for j, m in enumerate(names) if ok[j] and m in trained]
    if not trained or not ok.any():
        return {}
    if ref:
        scale = float(np.mean([trained[names[j]] for j in ref]))
        base = float(np.exp(np.mean(np.log(gm[ref]))))
    else:
        scale = float(np.mean(list(trained.values())))
        base = float(np.exp(np.mean(np.log(gm[ok]))))
    return {m: float(gm[j] / base * scale) for j, m in enumerate(names) if ok[j]}

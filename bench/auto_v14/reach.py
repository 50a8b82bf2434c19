"""Declared look: are issue 16's open LODO targets reachable with this data? (auto-v14-reach-plan.md)

    PYTHONPATH=src .venv/bin/python bench/auto_v14/reach.py > bench/results/auto-v14/reach.out

1. LODO arena, 14 models: the LODO router's predictions with their model-level part replaced by
   arena's own per-model means, cross-fitted by arena's folds (an in-domain bound no LODO router has).
2. Two models (GPT-4-1106 vs Mixtral) on arena and MT-Bench: LODO (as shipped) beside the same
   router cross-fitted in domain; interval half-widths and the APGR needed to clear 0.5.
Nothing here is used to choose a parameter.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from routerone.routing import eval_auto as E
from routerone.routing.evaluation import cost_micros, load_prices, load_table, subset
from routerone.routing.learned.profile_fit import table_scale
from routerone.routing.learned.train import STRONG, WEAK, default_data_dir, shared_tables, write_prices


RT = "/tmp/rt"    # `prepare --dataset NAME --out /tmp/rt/NAME` for arena and mtbench


def fmt(v, ci):
    return f"{v:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def lodo_router(tables, name):
    test = tables[name]
    lengths, _ = E.length_set_for(test.prompts, held_out=(name,))
    return E._fit_router([t for k, t in tables.items() if k != name], lengths)


def fold_means(test, cols):
    """(n, M) per-prompt: each model's mean quality over the OTHER folds of the set, in the
    router's units (the set's quality normalised by table_scale, as profile_fit trains on it)."""
    lo, span = table_scale(test.quality)
    q = (test.quality[:, cols] - lo) / span
    out = np.zeros_like(q)
    for k in np.unique(test.folds):
        te, tr = test.folds == k, test.folds != k
        out[te] = np.nanmean(q[tr], axis=0)
    return out


def part1(tables, data, folded):
    test = folded["arena"]
    complete = np.flatnonzero(~np.isnan(test.quality).any(axis=1))
    test = subset(test, complete)
    with tempfile.TemporaryDirectory() as tmp:
        pf = Path(tmp) / "prices.json"
        write_prices(data, test.models, pf)
        prices = load_prices(pf, test.models)
    models = [m for m in test.models if m in prices]
    cols = [test.models.index(m) for m in models]
    router = lodo_router(tables, "arena")
    pred_q, pred_c = E.predict(router, test.prompts, test.prompt_tokens, models, prices)
    true_q = test.quality[:, cols]
    true_cost = cost_micros(test, prices, models)
    means = fold_means(test, cols)
    deviation = pred_q - pred_q.mean(axis=0, keepdims=True)
    print(f"## 1. LODO arena, {len(models)} priced models, n = {len(test.prompts)}")
    print("variant | AIQ - zero [95%] | auto - random same mix [95%]")
    for label, q in (("lodo (as shipped)", pred_q), ("oracle-means", means),
                     ("oracle-means + lodo-deviation", means + deviation)):
        r = E.multi_model(q, pred_c, true_q, true_cost, models)
        a = r["routers"]["auto"]
        print(f"{label} | {fmt(r['auto_minus_zero_aiq'], a['aiq_minus_zero_ci'])} | "
              f"{fmt(a['aiq'] - r['routers']['random_same_mix']['aiq'], a.get('aiq_minus_random_ci', [np.nan, np.nan]))}")
    print()


def apgr_line(label, res):
    a = res["routers"]["auto"]
    lo, hi = a["apgr_ci"]
    half = (hi - lo) / 2
    return f"{label} | {a['apgr']:.3f} [{lo:.3f}, {hi:.3f}] | {half:.3f} | {0.5 + (a['apgr'] - lo):.3f}"


def part2(tables, folded):
    print("## 2. Two models, GPT-4-1106 vs Mixtral")
    print("set, router | APGR [95%] | half-width | APGR needed for the lower end to clear 0.5 (at this width)")
    for name in ("arena", "mtbench"):
        test = folded[name]
        cols = [test.models.index(m) for m in (STRONG, WEAK)]
        keep = np.flatnonzero(~np.isnan(test.quality[:, cols]).any(axis=1))
        full = subset(test, keep)
        pair = subset(full, np.arange(len(full.prompts)))
        pair.models, pair.quality, pair.output_tokens = [STRONG, WEAK], full.quality[:, cols], full.output_tokens[:, cols]
        router = lodo_router(tables, name)
        lodo = E.evaluate_table(pair, {}, router=router)["two_model"]
        print(apgr_line(f"{name} (n={len(pair.prompts)}), LODO (as shipped)", lodo))
        # in domain: each fold scored by profiles fitted on the set's other folds (all its models)
        pred = np.zeros((len(full.prompts), 2))
        lengths, _ = E.length_set_for(full.prompts)
        for k in np.unique(full.folds):
            te, tr = np.flatnonzero(full.folds == k), np.flatnonzero(full.folds != k)
            r = E._fit_router([subset(full, tr)], lengths)
            part = subset(pair, te)
            pred[te], _ = E.predict(r, part.prompts, part.prompt_tokens, [STRONG, WEAK], {STRONG: (1, 1), WEAK: (1, 1)})
        ind = E.two_model(pred, pair.quality, [STRONG, WEAK], 0)
        print(apgr_line(f"{name} (n={len(pair.prompts)}), in-domain cross-fit", ind))
        rnd = ind["routers"]["random"]
        print(f"{name}: random router APGR {rnd['apgr']:.3f} [{rnd['apgr_ci'][0]:.3f}, {rnd['apgr_ci'][1]:.3f}]")
    print()


if __name__ == "__main__":
    data = default_data_dir()
    tables = shared_tables(data)      # what --lodo fits on (no fold column)
    # the prepared CSVs (README "Reproducing the figures"): the same rows with eval-routing's folds
    folded = {k: load_table(f"{RT}/{k}/all.csv") for k in ("arena", "mtbench")}
    for k, t in folded.items():
        assert t.folds is not None and len(np.unique(t.folds)) > 1, k
    part1(tables, data, folded)
    part2(tables, folded)

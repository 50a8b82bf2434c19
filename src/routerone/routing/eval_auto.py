"""Offline evaluation of exactly what `model: "auto"` (strategy balanced) runs.

The runtime decision (learned/value.py, `choose_matrix` = `utility_order(...)[0]`) is applied to
the profile router's predicted qualities and predicted costs (test prices x the router's expected
answer lengths on this prompt: each model's mean x the prompt's predicted length factor; prompt
tokens from the data), at every willingness to pay in WTP_GRID. Each setting
is one operating point (mean realised cost, mean realised quality); the curve is scored by AIQ
against the zero router (the hull of the single models) and a random router with the same model
mix (each setting's choices shuffled across prompts: same cost, no per-prompt knowledge). Both
curves take the upper hull over 101 noisy settings, which favours them over the zero router's 14
exact points; the random router carries the same selection effect, so "auto - random router" is
the fairer test of per-prompt knowledge, and both differences are reported. For two
models, the predicted quality difference strong - weak is also scored as a RouteLLM router (APGR,
CPT) beside a random router. Every figure comes with a paired bootstrap 95% interval
(bootstrap.py).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from . import bootstrap as B
from . import metrics as M
from .learned.profiles import ProfileRouter
from .learned.value import choose_matrix

WTP_GRID = np.linspace(0.0, 1.0, 101)
DECISION_WTPS = (0.0, 0.25, 0.5, 0.75, 1.0)
RANDOM_SEED = 0


def predict(router: ProfileRouter, prompts: list[str], prompt_tokens: np.ndarray, models: list[str],
            prices: dict[str, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(predicted quality (n, M), predicted cost USD (n, M)) as the runtime computes them."""
    emb = router.embeddings(models)
    views = [router.prompt_view(p) for p in prompts]
    traits = np.array([v[0] for v in views]).reshape(len(prompts), -1)
    factor = np.array([v[1] for v in views], float)
    q = traits @ emb.T
    out = np.array([router.profile(m).output_tokens for m in models])
    pin = np.array([prices[m][0] for m in models])
    pout = np.array([prices[m][1] for m in models])
    cost = (prompt_tokens[:, None] * pin[None, :] + factor[:, None] * (out * pout)[None, :]) / 1e6
    return q, cost


def _points(cost: np.ndarray, quality: np.ndarray, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(cost.shape[0])[:, None]
    return cost[rows, choice], quality[rows, choice]


def multi_model(pred_q: np.ndarray, pred_c: np.ndarray, true_q: np.ndarray, true_cost: np.ndarray,
                models: list[str], n_boot: int = B.N_BOOT) -> dict:
    choice = choose_matrix(pred_q, pred_c, WTP_GRID)                    # (n, K)
    rng = np.random.default_rng(RANDOM_SEED)
    shuffled = np.stack([rng.permutation(choice[:, k]) for k in range(choice.shape[1])], axis=1)
    rc, rq = _points(true_cost, true_q, choice)
    xc, xq = _points(true_cost, true_q, shuffled)
    singles = {m: (float(true_cost[:, j].mean()), float(true_q[:, j].mean())) for j, m in enumerate(models)}
    curves = {"auto": list(zip(rc.mean(axis=0), rq.mean(axis=0))),
              "random_same_mix": list(zip(xc.mean(axis=0), xq.mean(axis=0)))}
    lo = min(c for c, _ in singles.values())
    hi = max([c for c, _ in singles.values()] + [c for p in curves.values() for c, _ in p])
    hulls = {k: M.upper_hull(p) for k, p in curves.items()}
    hulls["zero_router"] = M.upper_hull(list(singles.values()))
    ci = B.multi_model_intervals({"auto": rc, "random_same_mix": xc}, {"auto": rq, "random_same_mix": xq},
                                 true_cost, true_q, n_boot=n_boot)
    best = max(models, key=lambda m: (singles[m][1], -singles[m][0]))
    routers = {}
    for k, hull in hulls.items():
        routers[k] = {"aiq": M.aiq(hull, lo, hi), **ci[k], "hull": [[c, v] for c, v in hull]}
        if k in curves:
            routers[k]["points"] = [[float(c), float(v)] for c, v in curves[k]]
        kept = M.hull_quality(hull, 0.5 * singles[best][0])
        routers[k]["quality_kept_at_50pct_best_cost"] = kept / singles[best][1] if singles[best][1] else None
    picks = {f"{w:.2f}": {m: int(c) for m, c in zip(models, np.bincount(choice[:, int(round(w * 100))], minlength=len(models))) if c}
             for w in DECISION_WTPS}
    return {"single_models": {m: {"cost_micros_per_prompt": c, "quality": v} for m, (c, v) in singles.items()},
            "best_single_model": best, "aiq_cost_range_micros": [lo, hi], "routers": routers,
            "picks_by_wtp": picks,
            "auto_minus_zero_aiq": routers["auto"]["aiq"] - routers["zero_router"]["aiq"]}


def two_model(pred_q: np.ndarray, true_q: np.ndarray, models: list[str], strong_i: int,
              n_boot: int = B.N_BOOT) -> dict:
    weak_i = 1 - strong_i
    s, w = true_q[:, strong_i], true_q[:, weak_i]
    scores = {"auto": pred_q[:, strong_i] - pred_q[:, weak_i],
              "random": np.random.default_rng(RANDOM_SEED).random(len(s))}
    ci = B.two_model_intervals(scores, w, s, n_boot=n_boot)
    out = {"strong_model": models[strong_i], "weak_model": models[weak_i],
           "weak_quality": float(w.mean()), "strong_quality": float(s.mean()), "routers": {}}
    for name, sc in scores.items():
        out["routers"][name] = {**M.routellm_summary(sc, w, s), **ci[name]}
    return out


def write_decisions(path: Path | str, prompts: list[str], models: list[str], pred_q: np.ndarray,
                    pred_c: np.ndarray, true_q: np.ndarray) -> None:
    """Per-prompt decisions: predicted quality and cost per model, the choice at a few
    willingness-to-pay settings, and the true quality of the chosen model."""
    choice = choose_matrix(pred_q, pred_c, DECISION_WTPS)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "prompt_start"] + [f"predicted_quality|{m}" for m in models]
                   + [f"predicted_cost_usd|{m}" for m in models]
                   + [f"choice@wtp={x:.2f}" for x in DECISION_WTPS]
                   + [f"true_quality@wtp={x:.2f}" for x in DECISION_WTPS])
        for i, p in enumerate(prompts):
            w.writerow([i, p[:80].replace("\n", " ")] + [f"{v:.4f}" for v in pred_q[i]]
                       + [f"{v:.8f}" for v in pred_c[i]] + [models[c] for c in choice[i]]
                       + [f"{true_q[i, c]:g}" for c in choice[i]])


def length_set_for(test_prompts, held_out=()):
    """The shipped length set (learned/lengths.py) without its rows that overlap the test prompts
    or the held-out evaluation sets, and how many rows were dropped."""
    from .learned.lengths import load_length_set
    return load_length_set().excluding(held_out, test_prompts)


def _fit_router(tables, lengths=None) -> ProfileRouter:
    from .learned.profile_fit import fit_profiles
    return ProfileRouter(fit_profiles(list(tables), lengths=lengths))


def evaluate_table(test, prices: dict, *, router: ProfileRouter | None = None, train=None,
                   extra_train=(), cross_fit: bool = False, n_boot: int = B.N_BOOT,
                   decisions_out: Path | str | None = None) -> dict:
    """Score the runtime strategy on `test` (an evaluation.Table). Exactly one of: `router`
    (no training), `cross_fit` (each fold predicted by profiles fitted on the other folds plus
    `extra_train`), `train` (fitted on train + extra_train)."""
    from .evaluation import subset
    models = list(test.models)
    complete = np.flatnonzero(~np.isnan(test.quality).any(axis=1))
    dropped = len(test.prompts) - len(complete)
    test = subset(test, complete)
    priced = [m for m in models if m in prices]
    cost_models = priced if len(priced) >= 2 else models
    cost_prices = prices if len(priced) >= 2 else {m: (1.0, 1.0) for m in models}
    n = len(test.prompts)
    pred_q = np.zeros((n, len(cost_models)))
    pred_c = np.zeros((n, len(cost_models)))
    lengths, length_dropped = (None, 0) if router is not None else length_set_for(test.prompts)
    if router is not None:
        pred_q, pred_c = predict(router, test.prompts, test.prompt_tokens, cost_models, cost_prices)
        split = "shipped artefact (no training)"
    elif cross_fit:
        for k in np.unique(test.folds):
            te, tr = np.flatnonzero(test.folds == k), np.flatnonzero(test.folds != k)
            r = _fit_router([subset(test, tr), *extra_train], lengths)
            part = subset(test, te)
            pred_q[te], pred_c[te] = predict(r, part.prompts, part.prompt_tokens, cost_models, cost_prices)
        split = "cross-fitted by fold"
    else:
        r = _fit_router([train, *extra_train], lengths)
        pred_q, pred_c = predict(r, test.prompts, test.prompt_tokens, cost_models, cost_prices)
        split = "train/test"
    true_q = test.quality[:, [test.models.index(m) for m in cost_models]]
    result = {"strategy": "auto", "split": split, "n_test": n, "n_test_dropped_missing_quality": dropped,
              "models": models, "unpriced_models": [m for m in models if m not in prices],
              "bootstrap": {"resamples": n_boot, "seed": B.BOOT_SEED, "interval": "2.5-97.5 percentile"}}
    if lengths is not None:
        result["length_set"] = {"name": lengths.name, "rows": len(lengths.prompts),
                                "dropped_overlapping_test": length_dropped}
    if len(cost_models) == 2:
        ref = train.quality if train is not None and router is None else test.quality
        means = [np.nanmean(ref[:, (train if train is not None and router is None else test).models.index(m)])
                 for m in cost_models]
        result["two_model"] = two_model(pred_q, true_q, cost_models, int(np.argmax(means)), n_boot)
    if len(priced) >= 2:
        from .evaluation import cost_micros
        true_cost = cost_micros(test, prices, priced)
        result["multi_model"] = multi_model(pred_q, pred_c, true_q, true_cost, priced, n_boot)
    if decisions_out:
        write_decisions(decisions_out, test.prompts, cost_models, pred_q, pred_c, true_q)
        result["decisions_csv"] = str(decisions_out)
    return result


def run_lodo(data_dir: Path | None, out_dir: Path | str, *, n_boot: int = B.N_BOOT,
             datasets=None, extra_data=()) -> dict:
    """Leave one dataset out over the shared routing data: for each dataset, fit the profiles on
    all the others and score the runtime strategy on it (two models: GPT-4-1106 vs Mixtral APGR;
    arena: all 14 models, AIQ). `extra_data`: prepared external sets (train.external_csvs) added
    to every training set, minus their rows whose `overlaps` names the held-out dataset."""
    import json
    from .evaluation import load_prices, subset
    from .learned.train import (DATASETS, WEAK, STRONG, default_data_dir, external_tables,
                                shared_tables, write_prices)
    data = Path(data_dir or default_data_dir())
    names = list(datasets or DATASETS)
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise ValueError(f"held-out set {unknown[0]!r}: not one of {', '.join(DATASETS)}")
    tables = shared_tables(data)
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in names:
        test = tables[name]
        extra = external_tables(extra_data, exclude=(name,))
        train = [t for k, t in tables.items() if k != name] + list(extra.values())
        lengths, length_dropped = length_set_for(test.prompts, held_out=(name,))
        router = _fit_router(train, lengths)
        prices_file = out_path / f"prices_{name}.json"
        write_prices(data, test.models, prices_file)
        prices = load_prices(prices_file, test.models)
        res = {"held_out": name, "trained_on": [k for k in tables if k != name] + list(extra),
               "external_rows": {k: len(t.prompts) for k, t in extra.items()},
               "length_set": {"name": lengths.name, "rows": len(lengths.prompts),
                              "dropped_overlapping_held_out": length_dropped},
               "models_trained": router.artefact.models,
               "profile_sources": {m: router.profile(m).source for m in test.models}}
        pair = subset(test, np.arange(len(test.prompts)))
        pair_models = [m for m in (STRONG, WEAK) if m in test.models]
        if len(pair_models) == 2:
            cols = [test.models.index(m) for m in pair_models]
            pair.models = pair_models
            pair.quality = test.quality[:, cols]
            pair.output_tokens = test.output_tokens[:, cols]
            res["two_model"] = evaluate_table(pair, {}, router=router, n_boot=n_boot)["two_model"]
        if len(test.models) > 2:
            res["multi_model"] = evaluate_table(test, prices, router=router, n_boot=n_boot)["multi_model"]
        results[name] = res
    result = {"mode": "leave-one-dataset-out", "data": str(data), "results": results}
    from .evaluation import _json_default
    (out_path / "eval_lodo.json").write_text(json.dumps(result, indent=2, default=_json_default))
    return result

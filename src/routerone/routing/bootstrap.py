"""Bootstrap 95% intervals for the routing metrics (paired: every router is scored on the same
resampled prompts, so differences between routers have their own interval).

    two_model_intervals(scores_by_router, weak, strong)     -> APGR / CPT(50%) per router
    multi_model_intervals(curves, singles_cost, singles_q)  -> AIQ per router, and AIQ - zero router

Resamples: prompts drawn with replacement, N_BOOT times, numpy default_rng(BOOT_SEED).
Intervals are the 2.5 and 97.5 percentiles of the resampled figure.
"""
from __future__ import annotations

import numpy as np

from . import metrics as M

N_BOOT = 1000
BOOT_SEED = 0


def _interval(values: list[float] | np.ndarray) -> list[float]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [float("nan"), float("nan")]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]


def resample_counts(n: int, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray:
    """(n_boot, n) how many times each prompt is drawn in each resample."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n_boot, n), dtype=np.float64)
    for b in range(n_boot):
        out[b] = np.bincount(rng.integers(0, n, n), minlength=n)
    return out


def two_model_intervals(scores: dict[str, np.ndarray], weak: np.ndarray, strong: np.ndarray,
                        n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict:
    """{router: {"apgr_ci": [lo, hi], "cpt_50_pct_ci": [lo, hi]}} plus each router's APGR minus
    the random router's, if a "random" router is given."""
    rng = np.random.default_rng(seed)
    n = len(weak)
    res: dict[str, dict[str, list[float]]] = {k: {"apgr": [], "cpt": []} for k in scores}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        w, s = weak[idx], strong[idx]
        wm, sm = float(w.mean()), float(s.mean())
        for name, sc in scores.items():
            curve = M.routellm_curve(sc[idx], w, s)
            res[name]["apgr"].append(M.apgr(curve, wm, sm))
            res[name]["cpt"].append(M.cpt(curve, wm, sm, 0.5))
    out = {name: {"apgr_ci": _interval(r["apgr"]), "cpt_50_pct_ci": _interval(r["cpt"])}
           for name, r in res.items()}
    if "random" in res:
        for name, r in res.items():
            if name != "random":
                out[name]["apgr_minus_random_ci"] = _interval(np.array(r["apgr"]) - np.array(res["random"]["apgr"]))
    return out


def multi_model_intervals(router_cost: dict[str, np.ndarray], router_quality: dict[str, np.ndarray],
                          single_cost: np.ndarray, single_quality: np.ndarray,
                          n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict:
    """router_cost/quality[name]: (n, K) realised cost and quality of each prompt at each of the
    router's K settings; single_*: (n, M) of each single model. Returns {name: {"aiq_ci",
    "aiq_minus_zero_ci", "aiq_minus_zero_boot_mean"}} and {"zero_router": {"aiq_ci"}}."""
    counts = resample_counts(single_cost.shape[0], n_boot, seed) / single_cost.shape[0]
    s_cost, s_q = counts @ single_cost, counts @ single_quality        # (B, M)
    r_cost = {k: counts @ v for k, v in router_cost.items()}            # (B, K)
    r_q = {k: counts @ v for k, v in router_quality.items()}
    aiq: dict[str, list[float]] = {k: [] for k in router_cost}
    aiq["zero_router"] = []
    for b in range(counts.shape[0]):
        singles = list(zip(s_cost[b], s_q[b]))
        pts = {k: list(zip(r_cost[k][b], r_q[k][b])) for k in router_cost}
        lo = float(min(s_cost[b]))
        hi = float(max([*s_cost[b], *(c for p in pts.values() for c, _ in p)]))
        aiq["zero_router"].append(M.aiq(M.upper_hull(singles), lo, hi))
        for k, p in pts.items():
            aiq[k].append(M.aiq(M.upper_hull(p), lo, hi))
    zero = np.array(aiq["zero_router"])
    out = {"zero_router": {"aiq_ci": _interval(zero)}}
    for k in router_cost:
        a = np.array(aiq[k])
        out[k] = {"aiq_ci": _interval(a), "aiq_minus_zero_ci": _interval(a - zero),
                  "aiq_minus_zero_boot_mean": float(np.mean(a - zero))}
    if "random_same_mix" in aiq:
        rnd = np.array(aiq["random_same_mix"])
        for k in router_cost:
            if k != "random_same_mix":
                out[k]["aiq_minus_random_ci"] = _interval(np.array(aiq[k]) - rnd)
    return out

"""The learned strategy as the offline evaluation trains and applies it (see evaluation.py).

Two models: `fit_gain` regresses the quality difference strong - weak (scaled to the quality
range, so -1..1) on the prompt features; prompts are routed to the strong model when the predicted
gain clears a threshold (the evaluation sweeps it).
More models: `fit_quality_models` regresses each model's quality on the prompt features (ridge,
one model per column, missing scores skipped); a prompt goes to the model maximising
predicted quality - penalty * predicted cost, and the evaluation sweeps the penalty. Predicted
cost uses the prompt's tokens and the model's mean output tokens in the training data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import fit

GAIN_L2 = 1e-3      # ridge penalty of the gain model (chosen by 5-fold CV on MMLU and GSM8K)
QUALITY_L2_GRID = (0.01, 0.1, 1.0, 10.0)   # per-model quality ridge: picked by inner 5-fold CV
INNER_FOLDS = 5
PENALTY_STEPS = 61


def quality_span(values: np.ndarray) -> float:
    """Range of the quality scale: 1 for correctness, max - min for judge scores."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return 1.0
    lo, hi = float(v.min()), float(v.max())
    return max(1.0, hi - lo) if hi > 1.0 else 1.0


@dataclass
class GainModel:
    scorer: object
    span: float

    def predict(self, prompts: list[str]) -> np.ndarray:
        feats = fit.featurise(prompts)
        return fit.score_rows(self.scorer, feats, np.arange(len(prompts)))


def gain_targets(strong: np.ndarray, weak: np.ndarray, span: float) -> np.ndarray:
    """(strong - weak) / span; NaN where either is missing."""
    return (strong - weak) / span


def fit_gain(train, strong: str, weak: str, *, l2: float = GAIN_L2) -> GainModel:
    s = train.quality[:, train.models.index(strong)]
    w = train.quality[:, train.models.index(weak)]
    span = quality_span(np.concatenate([s, w]))
    y = gain_targets(s, w, span)
    keep = np.flatnonzero(~np.isnan(y))
    feats = fit.featurise([train.prompts[i] for i in keep])
    scorer = fit.train_scorer(feats, np.arange(len(keep)), y[keep], l2=l2, loss="squared")
    return GainModel(scorer, span)


@dataclass
class QualityModels:
    scorer: object
    models: list[str]
    prices: dict[str, tuple[float, float]]
    mean_output_tokens: np.ndarray
    l2: float

    def predict(self, prompts: list[str]) -> np.ndarray:
        feats = fit.featurise(prompts)
        return fit.score_rows(self.scorer, feats, np.arange(len(prompts))).reshape(len(prompts), -1)

    def predicted_cost_micros(self, prompt_tokens: np.ndarray) -> np.ndarray:
        pin = np.array([self.prices[m][0] for m in self.models])
        pout = np.array([self.prices[m][1] for m in self.models])
        return prompt_tokens[:, None] * pin[None, :] + (self.mean_output_tokens * pout)[None, :]


def choose_l2(feats, y: np.ndarray, grid=QUALITY_L2_GRID, n_folds: int = INNER_FOLDS) -> float:
    """The ridge penalty with the least inner-cross-validated squared error over all columns of
    `y` (training rows only; folds dealt round-robin in row order, so deterministic). Uses the
    dual solution on one kernel; above fit.DUAL_MAX_ROWS rows it returns GAIN_L2 untuned."""
    n = y.shape[0]
    if n > fit.DUAL_MAX_ROWS or n < 2 * n_folds:
        return GAIN_L2
    idx = np.arange(n)
    idf, mean, std = fit.fit_scaling(feats, idx)
    X = fit.design(feats, idx, idf, mean, std)
    K = fit.kernel(X)
    fold = idx % n_folds
    best, best_err = grid[0], np.inf
    for l2 in grid:
        err, count = 0.0, 0
        for col in y.reshape(n, -1).T:
            ok = ~np.isnan(col)
            for k in range(n_folds):
                tr = np.flatnonzero(ok & (fold != k))
                te = np.flatnonzero(ok & (fold == k))
                if len(tr) < 2 or len(te) == 0:
                    continue
                w = fit.fit_ridge_dual(X, K, np.where(ok, col, 0.0), l2, tr)
                diff = fit.predict(X, w, loss="squared")[te] - col[te]
                err += float(diff @ diff)
                count += len(te)
        if count and err / count < best_err:
            best, best_err = l2, err / count
    return best


def sweep_gain_threshold(gain: np.ndarray, strong_i: int, true_quality: np.ndarray,
                         true_cost: np.ndarray) -> list[tuple[float, float]]:
    """[(mean cost, mean quality)] of "strong model when gain >= t" for t at every percentile."""
    points = []
    rows = np.arange(len(gain))
    for t in np.quantile(gain, np.linspace(0.0, 1.0, 101)):
        choice = np.where(gain >= t, strong_i, 1 - strong_i)
        points.append((float(true_cost[rows, choice].mean()), float(true_quality[rows, choice].mean())))
    choice = np.full(len(gain), 1 - strong_i)
    points.append((float(true_cost[rows, choice].mean()), float(true_quality[rows, choice].mean())))
    return points


def fit_quality_models(train, models: list[str], prices: dict[str, tuple[float, float]],
                       *, l2: float | None = None) -> QualityModels:
    from ..evaluation import DEFAULT_OUTPUT_TOKENS
    cols = [train.models.index(m) for m in models]
    y = train.quality[:, cols]
    feats = fit.featurise(train.prompts)
    if l2 is None:
        l2 = choose_l2(feats, y)
    scorer = fit.train_scorer(feats, np.arange(len(train.prompts)), y, l2=l2, loss="squared")
    otok = train.output_tokens[:, cols]
    mean_out = np.array([float(np.nanmean(otok[:, j])) if np.any(~np.isnan(otok[:, j]))
                         else DEFAULT_OUTPUT_TOKENS for j in range(len(cols))])
    return QualityModels(scorer, list(models), prices, mean_out, l2)


def sweep_cost_penalty(pred_quality: np.ndarray, pred_cost: np.ndarray, true_quality: np.ndarray,
                       true_cost: np.ndarray) -> list[tuple[float, float]]:
    """[(mean cost, mean quality)] of argmax(pred_quality - penalty * pred_cost) per prompt, for
    penalties from 0 to infinity (a geometric grid scaled to the data)."""
    q_range = float(np.ptp(pred_quality.mean(axis=0))) or 1.0
    c_scale = float(pred_cost.mean(axis=0).max()) or 1.0
    penalties = [0.0] + list(q_range / c_scale * np.logspace(-3, 3, PENALTY_STEPS)) + [np.inf]
    rows = np.arange(pred_quality.shape[0])
    points = []
    for lam in penalties:
        if np.isinf(lam):
            choice = np.argmin(pred_cost - 1e-9 * pred_quality, axis=1)
        else:
            choice = np.argmax(pred_quality - lam * pred_cost, axis=1)
        points.append((float(true_cost[rows, choice].mean()), float(true_quality[rows, choice].mean())))
    return points

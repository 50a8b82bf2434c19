"""Training-time linear models in plain numpy (no scikit-learn needed, so CI can run them).

`Design` is a feature matrix: a sparse TF-IDF block in COO-like form over compacted columns plus a
small dense block. `fit_linear` minimises a mean loss plus an L2 penalty with L-BFGS:
  - loss="logistic": targets in {0, 1} (optionally weighted), prediction = sigmoid(score);
  - loss="squared": real targets, prediction = score (ridge regression).
The bias is not penalised. Results are deterministic (no randomness anywhere).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import features as F


@dataclass
class Design:
    rows: np.ndarray        # row index of each non-zero
    cols: np.ndarray        # compacted column index of each non-zero
    vals: np.ndarray        # TF-IDF value of each non-zero
    n_rows: int
    col_ids: np.ndarray     # compacted column -> hash bucket
    dense: np.ndarray       # (n_rows, N_DENSE), standardised

    def take(self, idx: np.ndarray) -> "Design":
        """The sub-matrix of rows `idx` (same columns)."""
        remap = np.full(self.n_rows, -1, dtype=np.int64)
        remap[idx] = np.arange(len(idx))
        keep = remap[self.rows] >= 0
        return Design(remap[self.rows[keep]], self.cols[keep], self.vals[keep], len(idx),
                      self.col_ids, self.dense[idx])


@dataclass
class Featurised:
    """Raw per-prompt features, before IDF weighting and standardisation."""
    ids: list[np.ndarray]
    counts: list[np.ndarray]
    dense_raw: np.ndarray


def featurise(prompts: list[str]) -> Featurised:
    pairs = [F.sparse_counts(p) for p in prompts]
    dense = np.array([F.dense_raw(p) for p in prompts]).reshape(len(prompts), F.N_DENSE)
    return Featurised([p[0] for p in pairs], [p[1] for p in pairs], dense)


# Scale of the standardised dense features against the L2-normalised TF-IDF block: a dense feature
# of unit variance under the same L2 penalty as a bucket (whose values are ~0.01-0.1) is hardly
# penalised at all, which overfits small sets (MT-Bench's 80 prompts: out-of-fold R^2 of `easy`
# -1.6). Dense features enter as z * DENSE_WEIGHT. Chosen by 5-fold inner CV of the trait
# regressions (easy, gap, length) within each training set (arena, MT-Bench, GSM8K, 1000 MMLU
# rows), the grid 1, 0.3, 0.1, 0.03, 0.01, the highest mean out-of-fold R^2 over sets and targets.
DENSE_WEIGHT = 0.1


def fit_scaling(feats: Featurised, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(idf over all buckets, dense mean, dense std) from the rows `idx` (smoothed IDF)."""
    n = len(idx)
    df = np.zeros(F.N_BUCKETS, dtype=np.float64)
    for i in idx:
        df[feats.ids[i]] += 1.0
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    dense = feats.dense_raw[idx]
    mean = dense.mean(axis=0) if n else np.zeros(F.N_DENSE)
    std = dense.std(axis=0) if n else np.ones(F.N_DENSE)
    std = np.where(std > 1e-9, std, 1.0) / DENSE_WEIGHT
    return idf.astype(np.float32), mean, std


def design(feats: Featurised, idx: np.ndarray, idf: np.ndarray, mean: np.ndarray,
           std: np.ndarray) -> Design:
    """TF-IDF design matrix of rows `idx`; columns are the buckets these rows use."""
    idf64 = idf.astype(np.float64)
    vals = [F.tfidf_row(feats.ids[i], feats.counts[i], idf64) for i in idx]
    ids = [feats.ids[i] for i in idx]
    lengths = np.array([len(v) for v in ids], dtype=np.int64)
    all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    col_ids, cols = np.unique(all_ids, return_inverse=True)
    rows = np.repeat(np.arange(len(idx)), lengths)
    all_vals = np.concatenate(vals) if vals else np.zeros(0)
    dense = (feats.dense_raw[idx] - mean) / std
    return Design(rows, cols.astype(np.int64), all_vals, len(idx), col_ids, dense)


def _scores(X: Design, w: np.ndarray) -> np.ndarray:
    n_sparse = len(X.col_ids)
    s = np.bincount(X.rows, weights=X.vals * w[X.cols], minlength=X.n_rows)
    return s + X.dense @ w[n_sparse:n_sparse + X.dense.shape[1]] + w[-1]


def _grad_of_scores(X: Design, g: np.ndarray) -> np.ndarray:
    sparse = np.bincount(X.cols, weights=X.vals * g[X.rows], minlength=len(X.col_ids))
    return np.concatenate([sparse, X.dense.T @ g, [g.sum()]])


def _objective(X: Design, y: np.ndarray, sw: np.ndarray, w: np.ndarray, l2: float,
               loss: str) -> tuple[float, np.ndarray]:
    s = _scores(X, w)
    total = sw.sum()
    if loss == "logistic":
        value = float(np.sum(sw * (np.logaddexp(0.0, s) - y * s)) / total)
        g = sw * (1.0 / (1.0 + np.exp(-s)) - y) / total
    else:
        r = s - y
        value = float(0.5 * np.sum(sw * r * r) / total)
        g = sw * r / total
    grad = _grad_of_scores(X, g)
    value += 0.5 * l2 * float(w[:-1] @ w[:-1])
    grad[:-1] += l2 * w[:-1]
    return value, grad


def fit_linear(X: Design, y: np.ndarray, *, l2: float, loss: str = "logistic",
               sample_weight: np.ndarray | None = None, max_iter: int = 200,
               tol: float = 1e-6, memory: int = 10, w0: np.ndarray | None = None) -> np.ndarray:
    """Weights [sparse (per compacted column) | dense | bias] minimising loss + l2/2 |w|^2,
    starting from `w0` (a fit of the same design, e.g. at another penalty) when given."""
    y = np.asarray(y, dtype=np.float64)
    sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    w = np.zeros(len(X.col_ids) + X.dense.shape[1] + 1)
    if w0 is not None:
        w = np.array(w0, dtype=np.float64)
    elif loss == "squared":
        w[-1] = float(np.sum(sw * y) / sw.sum())
    f, g = _objective(X, y, sw, w, l2, loss)
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    for _ in range(max_iter):
        q = g.copy()
        alphas = []
        for s_k, y_k in reversed(list(zip(s_hist, y_hist))):
            a = (s_k @ q) / (y_k @ s_k)
            alphas.append(a)
            q -= a * y_k
        if s_hist:
            q *= (s_hist[-1] @ y_hist[-1]) / (y_hist[-1] @ y_hist[-1])
        for (s_k, y_k), a in zip(zip(s_hist, y_hist), reversed(alphas)):
            q += (a - (y_k @ q) / (y_k @ s_k)) * s_k
        direction = -q
        slope = float(g @ direction)
        if slope >= 0:                       # not a descent direction: restart
            direction, slope = -g, -float(g @ g)
            s_hist.clear()
            y_hist.clear()
        step = 1.0
        while True:
            w_new = w + step * direction
            f_new, g_new = _objective(X, y, sw, w_new, l2, loss)
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_vec, y_vec = w_new - w, g_new - g
        if y_vec @ s_vec > 1e-12:
            s_hist.append(s_vec)
            y_hist.append(y_vec)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        converged = abs(f - f_new) <= tol * max(1.0, abs(f))
        w, f, g = w_new, f_new, g_new
        if converged:
            break
    return w


DUAL_MAX_ROWS = 3000   # squared loss on at most this many rows: closed form in the dual


def kernel(X: Design, chunk: int = 8192) -> np.ndarray:
    """X X^T over the sparse and dense blocks (n x n), built in dense column chunks."""
    K = X.dense @ X.dense.T
    order = np.argsort(X.cols, kind="stable")
    cols, rows, vals = X.cols[order], X.rows[order], X.vals[order]
    bounds = np.searchsorted(cols, np.arange(0, len(X.col_ids) + chunk, chunk))
    for a, b, c0 in zip(bounds[:-1], bounds[1:], range(0, len(X.col_ids) + chunk, chunk)):
        if a == b:
            continue
        block = np.zeros((X.n_rows, chunk))
        block[rows[a:b], cols[a:b] - c0] = vals[a:b]
        K += block @ block.T
    return K


def fit_ridge_dual(X: Design, K: np.ndarray, y: np.ndarray, l2: float,
                   rows: np.ndarray | None = None) -> np.ndarray:
    """Ridge (same objective as fit_linear(loss="squared")) on `rows`, solved in the dual:
    alpha = (Kc + m l2 I)^-1 (y - mean y), w = X^T alpha, bias = mean(y - X w)."""
    rows = np.arange(X.n_rows) if rows is None else rows
    m = len(rows)
    Ks = K[np.ix_(rows, rows)]
    H = np.eye(m) - 1.0 / m
    yc = y[rows] - y[rows].mean()
    alpha = np.linalg.solve(H @ Ks @ H + m * l2 * np.eye(m), yc)
    full = np.zeros(X.n_rows)
    full[rows] = alpha
    w = np.concatenate([np.bincount(X.cols, weights=X.vals * full[X.rows], minlength=len(X.col_ids)),
                        X.dense.T @ full, [0.0]])
    w[-1] = float(np.mean(y[rows] - Ks @ alpha))
    return w


def predict(X: Design, w: np.ndarray, loss: str = "logistic") -> np.ndarray:
    s = _scores(X, w)
    return 1.0 / (1.0 + np.exp(-s)) if loss == "logistic" else s


def full_sparse_weights(X: Design, w: np.ndarray) -> np.ndarray:
    """Scatter the compacted sparse weights into all `N_BUCKETS` buckets (float32)."""
    full = np.zeros(F.N_BUCKETS, dtype=np.float32)
    full[X.col_ids] = w[:len(X.col_ids)]
    return full


def train_scorer(feats: Featurised, idx: np.ndarray, targets: np.ndarray, *, l2,
                 loss: str = "logistic", sample_weight: np.ndarray | None = None,
                 meta: dict | None = None):
    """Fit scaling and a linear model on rows `idx`; `targets` (len(idx),) or (len(idx), K)
    (one independent model per column, NaN = missing for that column); `l2` one penalty or one
    per column. Returns a LinearScorer."""
    t = np.asarray(targets, dtype=np.float64)
    l2s = np.broadcast_to(np.asarray(l2, dtype=np.float64), (1 if t.ndim == 1 else t.shape[1],))
    return train_scorer_path(feats, idx, targets, l2_path=[l2s], loss=loss,
                             sample_weight=sample_weight, meta=meta)[0]


def train_scorer_path(feats: Featurised, idx: np.ndarray, targets: np.ndarray, *, l2_path,
                      loss: str = "logistic", sample_weight: np.ndarray | None = None,
                      meta: dict | None = None, scaling: tuple | None = None) -> list:
    """One LinearScorer per entry of `l2_path` (each a penalty, or one per target column), all on
    the same design (built once); an iterative fit starts from the previous entry's weights, so a
    path from strong to weak penalties costs little more than its last fit. `scaling` = (idf,
    dense mean, dense std) to use instead of fitting them on the rows (a column that must share
    another fit's feature scaling)."""
    from .model import LinearScorer
    idf, mean, std = scaling if scaling is not None else fit_scaling(feats, idx)
    X = design(feats, idx, idf, mean, std)
    t = np.asarray(targets, dtype=np.float64)
    multi = t.ndim == 2
    cols = t if multi else t[:, None]
    dual = loss == "squared" and sample_weight is None and len(idx) <= DUAL_MAX_ROWS
    K = kernel(X) if dual else None
    sw = np.ones(len(idx)) if sample_weight is None else np.asarray(sample_weight, float)
    prev: list[np.ndarray | None] = [None] * cols.shape[1]
    out = []
    for entry in l2_path:
        l2s = np.broadcast_to(np.asarray(entry, dtype=np.float64), (cols.shape[1],))
        sparse_w, dense_w, bias = [], [], []
        for k in range(cols.shape[1]):
            ok = ~np.isnan(cols[:, k])
            if not ok.any():     # no target in these rows: a zero model
                w = np.zeros(len(X.col_ids) + X.dense.shape[1] + 1)
            elif dual:
                w = fit_ridge_dual(X, K, np.where(ok, cols[:, k], 0.0), float(l2s[k]), np.flatnonzero(ok))
            else:   # only the rows this column has a target for (the others would weigh 0)
                have = np.flatnonzero(ok)
                Xk = X if len(have) == len(idx) else X.take(have)
                w = fit_linear(Xk, cols[have, k], l2=float(l2s[k]), loss=loss, sample_weight=sw[have],
                               w0=prev[k])
            prev[k] = w
            sparse_w.append(full_sparse_weights(X, w))
            dense_w.append(w[len(X.col_ids):-1])
            bias.append(w[-1])
        link = "logistic" if loss == "logistic" else "identity"
        if multi:
            out.append(LinearScorer(idf, np.stack(sparse_w, axis=1), mean, std,
                                    np.stack(dense_w, axis=1), np.array(bias), link, meta or {}))
        else:
            out.append(LinearScorer(idf, sparse_w[0], mean, std, dense_w[0], np.float64(bias[0]),
                                    link, meta or {}))
    return out


def score_rows(scorer, feats: Featurised, idx: np.ndarray) -> np.ndarray:
    """The scorer's output for each row in `idx` (shape (len(idx),) or (len(idx), K))."""
    return np.array([scorer.score_features(feats.ids[i], feats.counts[i], feats.dense_raw[i])
                     for i in idx])

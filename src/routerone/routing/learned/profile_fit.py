"""Training of the per-model quality profiles (see profiles.py for the model). numpy only.

    artefact = fit_profiles([table_a, table_b, ...])      # evaluation.Table objects

1. Each table's quality is put on 0..1: correctness as is, judge scores (lo..hi) as (s - lo) / span.
2. Two prompt targets per row: `easy` = mean quality of the models scored on it; `gap` = the slope
   of quality on the models' ability (their mean quality in that table) times two standard
   deviations of ability -- for two models exactly strong - weak.
   A third target, `length`: the mean over the models of log(answer tokens / the model's mean
   answer length) on this prompt (tables whose answers are a letter say nothing: NaN).
3. Ridge regressions of the three targets on the prompt features (fit.train_scorer). When there are
   several tables, each row weighs sqrt(largest table rows / its table rows), so a small chat set
   is not drowned by MMLU's 14k rows; and the `easy` and `gap` targets are regressed *within
   table*: each table's mean level is subtracted first (`table_levels`), so the n-gram model learns
   which prompts are harder / favour stronger models inside a dataset, not which dataset a prompt
   looks like (a cue that misfires on a dataset it never saw). The level is known in training and
   added back to the traits the profiles are fitted on; on a new prompt it is unknown and is the
   row-weighted mean level (folded into the scorer's bias). One table: nothing changes.
   Each target's ridge penalty is chosen by inner cross-validation on the training rows
   (`_oof_traits`, TRAIT_L2_GRID), the same procedure for the shipped data and an operator's.
4. Each model's profile e_m: ridge least squares of its quality on [1, easy, gap] over the rows it
   has scores for, the traits predicted out of fold (PROFILE_FOLDS folds), so the profiles see
   traits as noisy as they are on new prompts.
5. The prior map: each profile component regressed on the models' published scores
   (model_priors.toml), over the trained models that have one.
Deterministic: same tables, same artefact.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import fit
from .profiles import DEFAULT_OUTPUT_TOKENS, LENGTH_CLIP, TRAITS, Prior, ProfileArtefact, load_priors, normalise_name

TRAIT_L2 = 1e-3          # ridge penalty of the trait regressions when there are too few rows for inner CV
TRAIT_L2_GRID = (1e-2, 1e-3, 1e-4)   # per-row penalties tried by the inner CV (_oof_traits), strong first
PROFILE_L2 = 1.0         # ridge penalty (sum-of-squares units) on a profile's trait loadings
PROFILE_FOLDS = 2        # out-of-fold traits for fitting the profiles (0 = in-sample)
MIN_OUTPUT_TOKENS = 8    # a table whose mean answer is shorter (MMLU's letters) says nothing on length


def table_scale(values: np.ndarray) -> tuple[float, float]:
    """(lo, span) mapping a table's quality to 0..1: correctness stays, judge scores are rescaled."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    if hi <= 1.0 and lo >= 0.0:
        return 0.0, 1.0
    return lo, max(hi - lo, 1e-9)


def _targets(q: np.ndarray) -> np.ndarray:
    """(n, 2) easy and gap targets of one table's normalised quality (NaN where undefined)."""
    ability = np.nanmean(q, axis=0)
    easy = np.nanmean(np.where(np.isnan(q), np.nan, q), axis=1)
    gap = np.full(q.shape[0], np.nan)
    for i, row in enumerate(q):
        ok = ~np.isnan(row) & ~np.isnan(ability)
        if ok.sum() < 2:
            continue
        a = ability[ok] - ability[ok].mean()
        denom = float(a @ a)
        if denom <= 1e-12:
            continue
        slope = float(a @ (row[ok] - row[ok].mean())) / denom
        gap[i] = slope * 2.0 * float(np.sqrt(denom / ok.sum()))
    return np.column_stack([easy, gap])


def _length_target(out_tokens: np.ndarray) -> np.ndarray:
    """(n,) mean over the models of log(answer tokens / the model's geometric-mean length); NaN
    where no model has a length, and for models whose mean answer is under MIN_OUTPUT_TOKENS."""
    lo = np.log(np.maximum(out_tokens, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN columns: no lengths
        keep = np.nanmean(out_tokens, axis=0) >= MIN_OUTPUT_TOKENS
        centred = np.where(keep[None, :], lo - np.nanmean(lo, axis=0)[None, :], np.nan)
        ok = ~np.isnan(centred)
        mean = np.where(ok, centred, 0.0).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)
        return np.where(ok.any(axis=1), mean, np.nan)


def _merge(tables) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray]:
    """prompts, normalised quality (N, M), targets (N, 3), row weights, model names, out tokens (M,)."""
    names: dict[str, str] = {}
    for t in tables:
        for m in t.models:
            names.setdefault(normalise_name(m), m)
    keys = list(names)
    col = {k: j for j, k in enumerate(keys)}
    n_max = max(len(t.prompts) for t in tables)
    prompts, blocks, targets, weights = [], [], [], []
    out_means: list[list[float]] = [[] for _ in keys]
    for t in tables:
        lo, span = table_scale(t.quality)
        q = (t.quality - lo) / span
        block = np.full((len(t.prompts), len(keys)), np.nan)
        for j, m in enumerate(t.models):
            block[:, col[normalise_name(m)]] = q[:, j]
            o = t.output_tokens[:, j]
            if np.any(~np.isnan(o)) and float(np.nanmean(o)) >= MIN_OUTPUT_TOKENS:
                out_means[col[normalise_name(m)]].append(float(np.nanmean(o)))
        prompts.extend(t.prompts)
        blocks.append(block)
        targets.append(np.column_stack([_targets(q), _length_target(t.output_tokens)]))
        w = 1.0 if len(tables) == 1 else float(np.sqrt(n_max / max(len(t.prompts), 1)))
        weights.append(np.full(len(t.prompts), w))
    out_tokens = np.array([float(np.mean(v)) if v else np.nan for v in out_means])
    return (prompts, np.vstack(blocks), np.vstack(targets), np.concatenate(weights),
            [names[k] for k in keys], out_tokens)


def table_levels(targets: np.ndarray, weights: np.ndarray, table_of: np.ndarray,
                 n_tables: int) -> tuple[np.ndarray, np.ndarray]:
    """((n_tables, K) mean of each trait target per table, (K,) the row-weighted mean level over
    the rows that have the target), K = len(TRAITS); NaN for a table without that target."""
    k = len(TRAITS)
    per_table = np.full((n_tables, k), np.nan)
    overall = np.zeros(k)
    for j in range(k):
        y = targets[:, j]
        ok = ~np.isnan(y)
        for t in range(n_tables):
            have = ok & (table_of == t)
            if have.any():
                per_table[t, j] = float(y[have].mean())
        if ok.any():
            overall[j] = float(np.sum(weights[ok] * per_table[table_of[ok], j]) / weights[ok].sum())
    return per_table, overall


def _fit_traits(feats, idx: np.ndarray, targets: np.ndarray, weights: np.ndarray, l2=TRAIT_L2):
    return _fit_traits_path(feats, idx, targets, weights, [l2])[0]


def _fit_traits_path(feats, idx: np.ndarray, targets: np.ndarray, weights: np.ndarray, l2_path):
    uniform = bool(np.all(weights[idx] == weights[idx][0]))
    return fit.train_scorer_path(feats, idx, targets[idx], l2_path=l2_path, loss="squared",
                                 sample_weight=None if uniform else weights[idx])


def _oof_traits(feats, targets: np.ndarray, weights: np.ndarray,
                folds: int) -> tuple[np.ndarray, np.ndarray]:
    """(out-of-fold trait predictions, the penalty per target for the fit on all rows).

    The penalty of each target is chosen by this inner cross-validation (training rows only): the
    folds are fitted at every penalty of TRAIT_L2_GRID (strong to weak, warm-started), and the one
    with the least row-weighted out-of-fold squared error is kept, with its out-of-fold predictions.
    A penalty is a prior on the weights, constant in sum-of-squares units; the per-row penalty of
    the fit on all rows is the chosen one x (weight of the rows a fold was fitted on / all rows)."""
    n, k_out = targets.shape
    rows = np.arange(n)
    if folds < 2 or n < 4 * folds:
        scorer = _fit_traits(feats, rows, targets, weights)
        return fit.score_rows(scorer, feats, rows).reshape(n, -1), np.full(k_out, TRAIT_L2)
    grid = TRAIT_L2_GRID
    preds = np.zeros((len(grid), n, k_out))
    fold = np.random.default_rng(0).permutation(n) % folds     # deterministic, not row order
    fitted_share = []
    for k in range(folds):
        te, tr = rows[fold == k], rows[fold != k]
        fitted_share.append(weights[tr].sum() / weights.sum())
        for g, scorer in enumerate(_fit_traits_path(feats, tr, targets, weights, list(grid))):
            preds[g, te] = fit.score_rows(scorer, feats, te).reshape(len(te), -1)
    err = np.full((len(grid), k_out), np.inf)
    for j in range(k_out):
        ok = ~np.isnan(targets[:, j])
        if ok.any():
            r = preds[:, ok, j] - targets[ok, j][None, :]
            err[:, j] = (r * r) @ weights[ok]
    best = np.where(np.isfinite(err).any(axis=0), np.argmin(err, axis=0), grid.index(TRAIT_L2))
    oof = preds[best, rows[:, None], np.arange(k_out)[None, :]]
    l2_full = np.array([grid[b] for b in best]) * float(np.mean(fitted_share))
    return oof, l2_full


def _profile(y: np.ndarray, traits: np.ndarray, w: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(y)
    X = np.column_stack([np.ones(ok.sum()), traits[ok]])
    W = w[ok]
    A = X.T @ (X * W[:, None])
    A[1:, 1:] += PROFILE_L2 * np.eye(X.shape[1] - 1)
    return np.linalg.solve(A, X.T @ (W * y[ok]))


def _prior_map(names: list[str], emb: np.ndarray, priors: dict[str, Prior]) -> tuple[np.ndarray, float, float, list[str]]:
    scored = {k: p.score for k, p in priors.items() if p.score is not None}     # not a fixed-quality prior
    have = [(j, scored[normalise_name(n)]) for j, n in enumerate(names) if normalise_name(n) in scored]
    if not have:
        return np.zeros((2, emb.shape[1])), 0.0, 0.0, []
    js = [j for j, _ in have]
    s = np.array([v for _, v in have], float)
    center = float(s.mean())
    scale = float(s.std()) if len(s) > 1 and s.std() > 0 else 100.0
    z = (s - center) / scale
    X = np.column_stack([np.ones(len(z)), z])
    A = X.T @ X + np.diag([0.0, 1e-6])
    B = np.linalg.solve(A, X.T @ emb[js])
    return B, center, scale, [names[j] for j in js]


def fit_profiles(tables, *, priors: dict[str, Prior] | None = None, folds: int = PROFILE_FOLDS,
                 meta: dict | None = None, lengths=None) -> ProfileArtefact:
    """`lengths`: a lengths.LengthSet (answer lengths without quality) for the length column and
    the verbosity of models without trained lengths (length_fit.py); None = the tables only."""
    if not tables:
        raise ValueError("no training tables")
    priors = load_priors() if priors is None else priors
    prompts, q, targets, weights, names, out_tokens = _merge(tables)
    k = len(TRAITS)
    table_of = np.repeat(np.arange(len(tables)), [len(t.prompts) for t in tables])
    level_rows, level = np.zeros((len(prompts), k)), np.zeros(k)
    if len(tables) > 1:        # within-table trait targets (step 3)
        per_table, level = table_levels(targets, weights, table_of, len(tables))
        level_rows = np.where(np.isnan(per_table[table_of]), level[None, :], per_table[table_of])
        targets = targets.copy()
        targets[:, :k] -= level_rows
    feats = fit.featurise(prompts)
    rows = np.arange(len(prompts))
    oof, trait_l2 = _oof_traits(feats, targets, weights, folds)
    scorer = _fit_traits(feats, rows, targets, weights, trait_l2)
    traits = oof[:, :k] + level_rows
    has_len = ~np.isnan(targets[:, len(TRAITS)])
    length_norm = (float(np.mean(np.exp(np.clip(oof[has_len, len(TRAITS)], -LENGTH_CLIP, LENGTH_CLIP))))
                   if has_len.any() else 1.0)
    length_info, verbosity = {}, {}
    if lengths is not None and len(lengths.prompts):
        from .length_fit import refit_length, verbosity_tokens
        length_info = refit_length(scorer, feats, targets[:, k], [len(t.prompts) for t in tables],
                                   table_of, lengths, k, TRAIT_L2_GRID, max(folds, 2), LENGTH_CLIP)
        if length_info["rows"]:
            length_norm = length_info["length_norm"]
        verbosity = verbosity_tokens(lengths, {normalise_name(n): float(o) for n, o in zip(names, out_tokens)
                                               if not np.isnan(o)}, normalise_name)
    emb = np.array([_profile(q[:, j], traits, weights) for j in range(len(names))])
    known = out_tokens[~np.isnan(out_tokens)]
    default_out = float(known.mean()) if known.size else DEFAULT_OUTPUT_TOKENS
    out_tokens = np.array([o if not np.isnan(o) else verbosity.get(normalise_name(n), default_out)
                           for n, o in zip(names, out_tokens)])
    B, center, scale, fitted_on = _prior_map(names, emb, priors)
    in_sample = fit.score_rows(scorer, feats, rows).reshape(len(prompts), -1)
    bias = np.array(scorer.bias, float)
    bias[:k] += level                       # a new prompt's traits: its deviation + the mean level
    in_sample[:, :k] += level
    info = {"traits": list(TRAITS), "trait_level": [round(float(v), 6) for v in level], "trait_l2": [float(v) for v in trait_l2], "dense_weight": fit.DENSE_WEIGHT,
            "profile_l2": PROFILE_L2,
            "profile_folds": folds, "length_norm": length_norm,
            "length_rows": int(has_len.sum()), "rows": len(prompts), "models": names,
            "prior_map_fitted_on": fitted_on, **({"length_set": length_info} if length_info else {}),
            **(meta or {})}
    from .model import LinearScorer
    scorer = LinearScorer(scorer.idf, scorer.coef_sparse, scorer.dense_mean, scorer.dense_std,
                          scorer.coef_dense, bias, "identity", {})
    return ProfileArtefact(scorer, names, emb, out_tokens, B, center, scale,
                           in_sample.mean(axis=0), info, length_norm, verbosity)

"""How much the profile router's trait regressions are regularised is decided from the training
data (issue 16, session 6): one penalty per trait target, by inner cross-validation."""
from __future__ import annotations

import numpy as np

from routerone.routing.learned import fit
from routerone.routing.learned import profile_fit as PF


def _keyword_rows(n: int, rng: np.random.Generator):
    """Prompts with a keyword that decides a clean target, and a target of pure noise."""
    prompts, clean = [], []
    for i in range(n):
        hard = i % 3 == 0
        prompts.append(f"item {rng.integers(10**6)}: {'integrate the series' if hard else 'say hi'} "
                       f"{' '.join(str(rng.integers(100)) for _ in range(3))}")
        clean.append(0.2 if hard else 0.9)
    targets = np.column_stack([clean, rng.normal(0.0, 0.3, n)])
    return fit.featurise(prompts), targets


def test_inner_cv_picks_a_penalty_per_target():
    feats, targets = _keyword_rows(200, np.random.default_rng(0))
    weights = np.ones(200)
    oof, l2 = PF._oof_traits(feats, targets, weights, 2)
    assert oof.shape == (200, 2)
    grid = PF.TRAIT_L2_GRID
    # rescaled to the full rows: the chosen per-row penalty x the share a fold was fitted on (1/2)
    chosen = [min(grid, key=lambda g: abs(g * 0.5 - v)) for v in l2]
    np.testing.assert_allclose(l2, np.array(chosen) * 0.5)
    assert chosen[1] == max(grid), "a target of pure noise should get the strongest penalty"
    assert chosen[0] < chosen[1], "a clean target should get a weaker penalty than noise"
    # the out-of-fold predictions are those of the chosen penalty: they track the clean target
    assert np.corrcoef(oof[:, 0], targets[:, 0])[0, 1] > 0.9


def test_too_few_rows_for_inner_cv_keep_the_default_penalty():
    feats, targets = _keyword_rows(6, np.random.default_rng(1))
    _, l2 = PF._oof_traits(feats, targets, np.ones(6), 2)
    np.testing.assert_allclose(l2, [PF.TRAIT_L2, PF.TRAIT_L2])


def test_warm_started_penalty_path_matches_cold_fits():
    feats, targets = _keyword_rows(150, np.random.default_rng(2))
    idx = np.arange(150)
    sw = np.where(idx % 2 == 0, 1.0, 2.0)          # weighted: the iterative (primal) solver
    # a warm start reaches the same optimum when the solver is run to convergence
    idf, mean, std = fit.fit_scaling(feats, idx)
    X = fit.design(feats, idx, idf, mean, std)
    y = targets[:, 0]
    w_strong = fit.fit_linear(X, y, l2=1e-2, loss="squared", sample_weight=sw)
    tight = {"l2": 1e-3, "loss": "squared", "sample_weight": sw, "tol": 1e-14, "max_iter": 3000}
    np.testing.assert_allclose(fit.predict(X, fit.fit_linear(X, y, w0=w_strong, **tight), "squared"),
                               fit.predict(X, fit.fit_linear(X, y, **tight), "squared"), atol=1e-4)
    # the path and per-column penalties, at the solver's default tolerance
    path = fit.train_scorer_path(feats, idx, targets, l2_path=[1e-2, 1e-3], loss="squared",
                                 sample_weight=sw)
    cold = fit.train_scorer(feats, idx, targets, l2=1e-3, loss="squared", sample_weight=sw)
    per_col = fit.train_scorer(feats, idx, targets, l2=[1e-3, 1e-2], loss="squared", sample_weight=sw)
    strong = fit.score_rows(path[0], feats, idx)
    a, b = fit.score_rows(path[1], feats, idx), fit.score_rows(cold, feats, idx)
    assert np.abs(a - strong).max() > 0.05            # the two penalties give different fits
    np.testing.assert_allclose(a, b, atol=0.05)        # warm or cold: the same fit up to tolerance
    c = fit.score_rows(per_col, feats, idx)
    np.testing.assert_allclose(c[:, 0], b[:, 0], atol=1e-9)
    np.testing.assert_allclose(c[:, 1], strong[:, 1], atol=1e-9)


def test_fit_profiles_records_its_choices():
    from routerone.routing.evaluation import Table
    from routerone.routing.learned.profiles import ProfileRouter
    rng = np.random.default_rng(5)
    kinds = {"small talk": [1.0, 1.0, 1.0], "long proof": [1.0, 0.0, 0.0], "tricky riddle": [0.0, 0.0, 0.0]}
    prompts, q = [], []
    for i in range(150):
        kind = list(kinds)[i % 3]
        prompts.append(f"case {i}: {kind} {rng.integers(999)}")
        q.append(kinds[kind])
    t = Table(prompts, ["a", "b", "c"], np.array(q), np.full(150, 10.0), np.full((150, 3), 40.0))
    art = PF.fit_profiles([t], priors={})
    assert len(art.meta["trait_l2"]) == 3
    assert all(v in [g * 0.5 for g in PF.TRAIT_L2_GRID] or v == PF.TRAIT_L2 for v in art.meta["trait_l2"])
    r = ProfileRouter(art, priors={})
    talk, proof = (r.predict(f"case 999: {k} 5", ["a", "b"]) for k in ("small talk", "long proof"))
    assert talk[1] - proof[1] > 0.3                    # b fails the proofs
    assert (proof[0] - proof[1]) - (talk[0] - talk[1]) > 0.3   # a's advantage is on the proofs

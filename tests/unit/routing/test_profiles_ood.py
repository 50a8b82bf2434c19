"""Out-of-domain behaviour of the profile router (issue 16): trait regressions fitted within each
training table (not on which dataset a prompt looks like), and the dataset-jackknife shrinkage of
the trait deviations toward the mean level; with the decision's invariants (wtp ends, priors)."""
from __future__ import annotations

import numpy as np
import pytest

from routerone.routing.evaluation import Table
from routerone.routing.learned.profile_fit import fit_profiles, table_levels
from routerone.routing.learned.profiles import (Prior, ProfileArtefact, ProfileRouter,
                                                 jackknife_shrink)
from routerone.routing.learned.value import decide

PRIORS = {"big-model": Prior(1300, "test"), "small-model": Prior(1100, "test"),
          "new-model": Prior(1200, "test")}
NAMES = ["big-model", "small-model"]


def _table(tag: str, n: int, level: float, rng: np.random.Generator) -> Table:
    """Prompts '<tag> quiz ...': the big model solves everything; on the 'tricky' half the small
    one fails, on the 'simple' half it succeeds. `level` shifts the whole table's quality (a judge
    scale, a harder dataset): the dataset's identity says nothing inside the table."""
    prompts, q = [], []
    for i in range(n):
        tricky = i % 2 == 1
        word = "tricky riddle with a twist" if tricky else "simple sum of small numbers"
        prompts.append(f"{tag} quiz {i}: {word} {rng.integers(1000)}")
        q.append([level + 0.2, level + (0.0 if tricky else 0.2)])
    return Table(prompts, NAMES, np.array(q), np.full(n, 20.0), np.full((n, 2), 50.0))


@pytest.fixture(scope="module")
def two_tables():
    rng = np.random.default_rng(0)
    return [_table("alpha", 120, 0.7, rng), _table("beta", 120, 0.1, rng)]


def test_traits_learn_within_table_difficulty_not_dataset_identity(two_tables):
    r = ProfileRouter(fit_profiles(two_tables, priors=PRIORS), priors=PRIORS)
    alpha = r.traits("alpha quiz 5: simple sum of small numbers 7")
    beta = r.traits("beta quiz 5: simple sum of small numbers 7")
    # the two tables' levels differ by 0.6 in `easy`; the prefix must not carry it
    assert abs(alpha[1] - beta[1]) < 0.1
    tricky = r.traits("gamma quiz 5: tricky riddle with a twist 7")
    simple = r.traits("gamma quiz 5: simple sum of small numbers 7")
    assert tricky[2] - simple[2] > 0.05          # the stronger model's advantage is still learned
    # a new prompt's level is the row-weighted mean level of the tables
    targets = np.array([[0.8, 0.0], [0.7, 0.2]] * 60 + [[0.2, 0.0], [0.1, 0.2]] * 60)
    per_table, overall = table_levels(targets, np.ones(240), np.repeat([0, 1], 120), 2)
    np.testing.assert_allclose(per_table, [[0.75, 0.1], [0.15, 0.1]])
    np.testing.assert_allclose(overall, [0.45, 0.1])
    # alpha: easy 0.9 / 0.8 (mean 0.85), beta: 0.3 / 0.2 (0.25); equal sizes and weights
    np.testing.assert_allclose(r.artefact.meta["trait_level"][0], 0.55, atol=1e-6)


def test_one_table_has_no_shrinkage_heads():
    t = _table("alpha", 80, 0.5, np.random.default_rng(1))
    art = fit_profiles([t], priors=PRIORS)
    assert art.n_loto == 0 and art.scorer.coef_sparse.shape[1] == 3
    assert art.meta["trait_level"] == [0.0, 0.0]


def test_jackknife_shrink_invariants():
    rng = np.random.default_rng(2)
    dev = rng.normal(size=(50, 2))
    tau2 = np.array([0.5, 0.2])
    one = rng.normal(size=(50, 1, 2))
    np.testing.assert_array_equal(jackknife_shrink(one, dev, tau2), dev)      # T < 2: unchanged
    same = np.repeat(one, 4, axis=1)
    np.testing.assert_allclose(jackknife_shrink(same, dev, tau2), dev)        # heads agree
    small = one + rng.normal(scale=0.1, size=(50, 4, 2))
    large = one + rng.normal(scale=1.0, size=(50, 4, 2))
    s_small, s_large = jackknife_shrink(small, dev, tau2), jackknife_shrink(large, dev, tau2)
    assert np.all(np.abs(s_small) <= np.abs(dev)) and np.all(np.sign(s_small) == np.sign(dev))
    assert np.mean(np.abs(s_large)) < np.mean(np.abs(s_small))
    # the factor is tau^2 / (tau^2 + v), v the jackknife variance over the heads
    h = np.array([[[0.0, 0.0], [1.0, 2.0]]])
    v = np.array([0.25, 1.0])                  # (T-1)/T * sum (h - mean)^2, T = 2
    np.testing.assert_allclose(jackknife_shrink(h, np.ones((1, 2)), tau2), [tau2 / (tau2 + v)])


@pytest.fixture(scope="module")
def three_table_router():
    rng = np.random.default_rng(3)
    tables = [_table("alpha", 100, 0.7, rng), _table("beta", 100, 0.1, rng),
              _table("delta", 60, 0.4, rng)]
    return ProfileRouter(fit_profiles(tables, priors=PRIORS), priors=PRIORS)


def test_shrinkage_pulls_disputed_prompts_toward_the_mean_level(three_table_router):
    r = three_table_router
    a = r.artefact
    assert a.n_loto == 3 and a.scorer.coef_sparse.shape[1] == 3 + 3 * 2
    level = np.asarray(a.trait_level)
    for prompt in ["alpha quiz 1: tricky riddle with a twist 5", "hello", "é" * 3000, ""]:
        t = np.asarray(a.scorer.score(prompt), float)
        heads = t[3:].reshape(3, 2)
        raw = t[:2] - level
        shrunk = r.traits(prompt)[1:] - level
        assert np.all(np.abs(shrunk) <= np.abs(raw) + 1e-12)
        np.testing.assert_allclose(shrunk, jackknife_shrink(heads, raw, a.shrink_tau2))


def test_shrinkage_router_keeps_wtp_ends_and_priors(three_table_router, tmp_path):
    r = three_table_router
    assert r.profile("big-model").source == "trained"
    assert r.profile("new-model").source == "prior:test"          # unknown model: its prior
    assert r.profile("mystery").source == "default"
    names = ["big-model", "small-model", "new-model", "mystery"]
    cost = np.array([3e-3, 1e-4, 1e-3, 5e-4])
    for prompt in ["alpha quiz 2: tricky riddle with a twist 1", "beta quiz 3: simple sum 4", "what?"]:
        q = r.predict(prompt, names)
        assert np.all(np.isfinite(q))
        assert min(q[0], q[1]) <= q[2] <= max(q[0], q[1])           # prior between the two
        assert decide(q, cost, 1.0).order[0] == int(np.argmax(q))
        assert decide(q, cost, 0.0).order[0] == int(np.argmin(cost))
        prev = None
        for w in np.linspace(0, 1, 21):
            i = decide(q, cost, w).order[0]
            if prev is not None:
                assert cost[i] >= cost[prev] and q[i] >= q[prev]
            prev = i
    # the heads survive the artefact's int8 storage: same predictions after a round trip
    path = tmp_path / "m.npz"
    r.artefact.save(path)
    again = ProfileRouter(ProfileArtefact.from_file(path), priors=PRIORS)
    assert again.artefact.n_loto == 3
    for prompt in ["alpha quiz 2: tricky riddle with a twist 1", "what?"]:
        np.testing.assert_allclose(again.predict(prompt, names), r.predict(prompt, names), atol=2e-2)

"""Out-of-domain behaviour of the profile router (issue 16): trait regressions fitted within each
training table (not on which dataset a prompt looks like); with the decision's invariants (wtp
ends, monotone, priors) on a router trained on several tables."""
from __future__ import annotations

import numpy as np
import pytest

from routerone.routing.evaluation import Table
from routerone.routing.learned.profile_fit import fit_profiles, table_levels
from routerone.routing.learned.profiles import Prior, ProfileArtefact, ProfileRouter
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


def test_one_table_has_no_level_shift():
    t = _table("alpha", 80, 0.5, np.random.default_rng(1))
    art = fit_profiles([t], priors=PRIORS)
    assert art.meta["trait_level"] == [0.0, 0.0] and art.scorer.coef_sparse.shape[1] == 3


@pytest.fixture(scope="module")
def three_table_router():
    rng = np.random.default_rng(3)
    tables = [_table("alpha", 100, 0.7, rng), _table("beta", 100, 0.1, rng),
              _table("delta", 60, 0.4, rng)]
    return ProfileRouter(fit_profiles(tables, priors=PRIORS), priors=PRIORS)


def test_multi_table_router_keeps_wtp_ends_and_priors(three_table_router, tmp_path):
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
    # the mean level is in the saved scorer's bias: same predictions after a round trip
    path = tmp_path / "m.npz"
    r.artefact.save(path)
    again = ProfileRouter(ProfileArtefact.from_file(path), priors=PRIORS)
    for prompt in ["alpha quiz 2: tricky riddle with a twist 1", "what?"]:
        np.testing.assert_allclose(again.predict(prompt, names), r.predict(prompt, names), atol=2e-2)

"""The `balanced` strategy's invariants: per-model profiles (trained / prior / default), the value
decision's monotonicity and ends, and the offline evaluation applying the same rule."""
from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from routerone.routing.evaluation import Table
from routerone.routing.learned.profile_fit import fit_profiles
from routerone.routing.learned.profiles import (ARTEFACT_PATH, Prior, ProfileArtefact, ProfileRouter,
                                                 load_priors, normalise_name)
from routerone.routing.learned.value import (choose_matrix, decide, utility_order, value_of_quality)

WTPS = np.linspace(0.0, 1.0, 201)


def _random_case(rng: np.random.Generator, m: int):
    q = rng.uniform(0.2, 1.0, m)
    c = rng.lognormal(-7, 2, m)
    if m > 2 and rng.random() < 0.3:        # exact ties, which the tie-breaks must handle
        q[1] = q[0]
        c[2] = c[0]
    return q, c


def test_value_ends_of_the_sweep():
    rng = np.random.default_rng(1)
    for _ in range(500):
        q, c = _random_case(rng, int(rng.integers(1, 21)))
        first0 = utility_order(q, c, 0.0)[0]
        first1 = utility_order(q, c, 1.0)[0]
        assert c[first0] == c.min() and q[first0] == q[c == c.min()].max()
        assert q[first1] == q.max() and c[first1] == c[q == q.max()].min()


def test_value_is_monotone_in_willingness_to_pay():
    rng = np.random.default_rng(2)
    for _ in range(300):
        q, c = _random_case(rng, int(rng.integers(2, 21)))
        picks = [utility_order(q, c, w)[0] for w in WTPS]
        costs, quals = c[picks], q[picks]
        assert np.all(np.diff(costs) >= 0), "a higher willingness to pay picked a cheaper model"
        assert np.all(np.diff(quals) >= 0), "a higher willingness to pay picked a weaker model"


def test_offline_evaluation_applies_the_runtime_rule():
    rng = np.random.default_rng(3)
    q = rng.uniform(0, 1, (200, 7))
    c = rng.lognormal(-7, 2, (200, 7))
    q[::5, 3] = q[::5, 1]
    grid = np.linspace(0, 1, 41)
    ch = choose_matrix(q, c, grid)
    for i in range(200):
        for k, w in enumerate(grid):
            assert ch[i, k] == utility_order(q[i], c[i], w)[0]


def test_value_of_quality_mapping():
    assert value_of_quality(0.0) == 0.0 and value_of_quality(float("nan")) == 0.0
    assert value_of_quality(1.0) == float("inf")
    vs = [value_of_quality(w) for w in np.linspace(0.01, 0.99, 50)]
    assert all(a < b for a, b in zip(vs, vs[1:]))


def test_reason_names_chosen_and_runner_up_with_quality_and_cost():
    d = decide(np.array([0.5, 0.9, 0.7]), np.array([0.0001, 0.03, 0.001]), 0.5)
    text = d.reason(["cheap", "strong", "mid"], ["trained", "prior:x", "default"])
    chosen, runner = text.split("; runner-up ")
    assert "chose mid" in chosen and "0.700" in chosen and "$0.001000" in chosen
    assert runner.startswith("cheap") and "0.500" in runner and "$0.000100" in runner


# --- profiles -----------------------------------------------------------------------------------

def _toy_table(n: int = 120) -> Table:
    """Two trained models: 'big-model' solves the maths prompts, 'small-model' only the chat ones."""
    prompts, qual = [], []
    for i in range(n):
        if i % 2:
            prompts.append(f"Prove the lemma: integral of x^{i % 7} dx over [0, {i}] equals what?")
            qual.append([1.0, 0.0])
        else:
            prompts.append(f"hello there, how are you doing today friend number {i}")
            qual.append([1.0, 1.0])
    q = np.array(qual)
    return Table(prompts, ["big-model", "small-model"], q, np.full(n, 30.0), np.full((n, 2), 200.0))


PRIORS = {"big-model": Prior(1300, "test"), "small-model": Prior(1100, "test"),
          "new-model": Prior(1200, "test")}


@pytest.fixture(scope="module")
def toy_router() -> ProfileRouter:
    return ProfileRouter(fit_profiles([_toy_table()], priors=PRIORS), priors=PRIORS)


def test_profile_sources(toy_router):
    assert toy_router.profile("big-model").source == "trained"
    assert toy_router.profile("vendor/Big-Model-20250101").source == "trained"   # normalised lookup
    assert toy_router.profile("new-model").source == "prior:test"
    assert toy_router.profile("mystery").source == "default"


def test_prompt_dependence_and_prior_interpolation(toy_router):
    names = ["big-model", "small-model", "new-model"]
    maths = toy_router.predict("Prove the lemma: integral of x^3 dx over [0, 9] equals what?", names)
    chat = toy_router.predict("hello there, how are you doing today friend number 8", names)
    assert maths[0] - maths[1] > 0.5            # the big model is needed on maths ...
    assert abs(chat[0] - chat[1]) < 0.3         # ... and not on small talk
    # an untrained model scored between the two gets a profile between theirs
    assert min(maths[0], maths[1]) < maths[2] < max(maths[0], maths[1])


def test_profile_artefact_roundtrip(tmp_path, toy_router):
    path = tmp_path / "m.npz"
    toy_router.artefact.save(path)
    again = ProfileRouter(ProfileArtefact.from_file(path), priors=PRIORS)
    names = ["big-model", "small-model", "new-model", "mystery"]
    prompt = "Prove the lemma: integral of x^2 dx"
    assert np.allclose(again.predict(prompt, names), toy_router.predict(prompt, names), atol=2e-2)
    with pytest.raises(ValueError):
        ProfileArtefact.from_file(_old_format(tmp_path))


def test_answer_length_factor_prices_long_answers():
    """The length trait: prompts whose answers run long (for every model) get a larger factor,
    and `balanced` prices a model's answer as its mean length x that factor."""
    n = 160
    prompts, out = [], []
    for i in range(n):
        if i % 2:
            prompts.append(f"Write a detailed essay about the history of city number {i}")
            out.append([800.0, 1200.0])
        else:
            prompts.append(f"Answer in one word: capital of country number {i}?")
            out.append([5.0, 9.0])
    t = Table(prompts, ["big-model", "small-model"], np.ones((n, 2)), np.full(n, 20.0), np.array(out))
    r = ProfileRouter(fit_profiles([t], priors=PRIORS), priors=PRIORS)
    _, long_f = r.prompt_view("Write a detailed essay about the history of city number 7")
    _, short_f = r.prompt_view("Answer in one word: capital of country number 8?")
    assert long_f > 5 * short_f
    assert r.artefact.length_norm > 0 and r.meta["length_rows"] == n
    # no lengths in the data (MMLU's letters): the factor is 1 everywhere
    t.output_tokens = np.ones((n, 2))
    flat = ProfileRouter(fit_profiles([t], priors=PRIORS), priors=PRIORS)
    assert flat.prompt_view("Write a detailed essay")[1] == pytest.approx(1.0, abs=1e-6)


def _old_format(tmp_path):
    p = tmp_path / "old.npz"
    np.savez(p, format_version=np.int64(1))
    return p


def test_priors_file_documents_every_number():
    import tomllib
    from routerone.routing.learned.profiles import PRIORS_PATH
    data = tomllib.loads(PRIORS_PATH.read_text())
    for name, entry in data["model"].items():
        assert entry["source"] in data["source"], name
        assert entry.get("row"), f"{name}: which leaderboard row?"
    assert normalise_name("openai/gpt-4o-2024-08-06") == "gpt-4o"
    assert "gpt-4o" in load_priors()


def test_operator_priors_override(tmp_path, monkeypatch):
    extra = tmp_path / "p.toml"
    extra.write_text('[model."my-model"]\nscore = 1250\nsource = "my-eval"\n')
    monkeypatch.setenv("ROUTERONE_MODEL_PRIORS", str(extra))
    assert load_priors()["my-model"].source == "my-eval"
    extra.write_text('[model."bad"]\nscore = "x"\n')
    with pytest.raises(ValueError, match="bad"):
        load_priors()


@pytest.mark.parametrize("score", ["1e308", "5000.5", "0", "-1200"])
def test_operator_prior_score_outside_the_arena_range_is_refused(tmp_path, monkeypatch, score):
    """1e308 was accepted and `auto`'s reason showed a 300-digit predicted quality."""
    extra = tmp_path / "p.toml"
    extra.write_text(f'[model."my-model"]\nscore = {score}\nsource = "my-eval"\n')
    monkeypatch.setenv("ROUTERONE_MODEL_PRIORS", str(extra))
    with pytest.raises(ValueError) as got:
        load_priors()
    said = str(got.value)
    assert str(extra) in said and "model.my-model" in said and repr(float(score)) in said, said
    assert "0 < score <= 5000" in said, said


@pytest.mark.parametrize("score", ["5000", "0.5", "1250", "71.3"])
def test_operator_prior_score_inside_the_range_is_kept(tmp_path, monkeypatch, score):
    extra = tmp_path / "p.toml"
    extra.write_text(f'[model."my-model"]\nscore = {score}\nsource = "my-eval"\n')
    monkeypatch.setenv("ROUTERONE_MODEL_PRIORS", str(extra))
    assert load_priors()["my-model"].score == float(score)


# --- the shipped artefact with the shipped catalog ---------------------------------------------

def test_shipped_artefact_profiles_and_size():
    assert ARTEFACT_PATH.is_file() and ARTEFACT_PATH.stat().st_size < 5_000_000
    r = ProfileRouter.load()
    assert ProfileRouter.load() is r
    assert r.profile("gpt-4-1106-preview").source == "trained"
    assert r.profile("gpt-4o").source.startswith("prior:lmarena")
    assert r.profile("demo-small").source == "prior:demo"
    assert r.profile("some-operator-model").source == "default"
    for prompt in ["hi", "", "é" * 50_000, "def f(x):\n    return x ** 2\n" * 200]:
        assert np.all(np.isfinite(r.predict(prompt, ["gpt-4o", "demo-small", "claude-1"])))


def test_shipped_strategy_ends_on_every_catalog_subset():
    """No configuration where wtp = 1 does not pick the strongest predicted candidate, or 0 the
    cheapest (predicted cost for this request), over random subsets of the shipped catalog."""
    from routerone.catalog import load_catalog
    from routerone.routing.base import RouteContext
    from routerone.routing.health import Health
    from routerone.routing.strategies import BalancedStrategy
    from routerone.settings import Settings
    from routerone.wire.chat import validate_body
    models = list(load_catalog(Settings()).models.values())
    strat = BalancedStrategy()
    rnd = random.Random(0)
    prompts = ["hi", "Prove that sqrt(2) is irrational.", "Write a Python function that merges two sorted lists.",
               "Summarise this:\n" + "lorem ipsum dolor " * 400]
    subsets = [list(s) for s in itertools.combinations(models, 2)] + \
              [rnd.sample(models, rnd.randint(3, len(models))) for _ in range(60)]
    for cand in subsets:
        for prompt in prompts:
            req = validate_body({"model": "auto", "messages": [{"role": "user", "content": prompt}]})
            pt = len(prompt) // 4
            q = strat.router.predict(prompt, [m.id for m in cand])
            c = [strat.predicted_cost_usd(m, pt, None, prompt) for m in cand]
            top1 = strat.rank(req, cand, RouteContext(Health(), 1.0, pt))[0][0]
            top0 = strat.rank(req, cand, RouteContext(Health(), 0.0, pt))[0][0]
            assert q[cand.index(top1)] == max(q)
            assert c[cand.index(top0)] == min(c)
            prev = None
            for w in (0.1, 0.3, 0.5, 0.7, 0.9):
                top = strat.rank(req, cand, RouteContext(Health(), w, pt))[0][0]
                i = cand.index(top)
                if prev is not None:
                    assert c[i] >= c[prev] and q[i] >= q[prev]
                prev = i


def test_routerone_models_shows_where_each_profile_came_from(tmp_path):
    import os
    import subprocess
    import sys
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "ROUTERONE_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
    out = subprocess.run([sys.executable, "-m", "routerone", "models"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "auto profile" in out.stdout
    line = next(x for x in out.stdout.splitlines() if x.startswith("gpt-4o-mini "))
    assert line.rstrip().endswith("prior:lmarena-text-2025-08-04")


def test_an_artefact_from_before_the_length_factor_still_loads(tmp_path):
    """An operator's `train-router` artefact in format 2 (two scorer outputs, no length_norm) keeps
    working: same quality predictions from its two traits, and the length factor is 1."""
    with np.load(ARTEFACT_PATH, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    old = dict(arrays, format_version=np.int64(2), coef_sparse=arrays["coef_sparse"][:, :2],
               coef_dense=arrays["coef_dense"][:, :2], bias=arrays["bias"][:2],
               trait_mean=arrays["trait_mean"][:2])
    del old["length_norm"]
    path = tmp_path / "v2.npz"
    np.savez_compressed(path, **old)
    v2 = ProfileRouter(ProfileArtefact.from_file(path), priors={})
    v3 = ProfileRouter(ProfileArtefact.from_file(ARTEFACT_PATH), priors={})
    prompt = "Prove that the square root of 2 is irrational, then write a haiku about it."
    traits2, factor2 = v2.prompt_view(prompt)
    traits3, factor3 = v3.prompt_view(prompt)
    assert factor2 == 1.0 and factor3 != 1.0
    np.testing.assert_allclose(traits2, traits3)
    names = v3.artefact.models[:3]
    np.testing.assert_allclose(v2.predict(prompt, names), v3.predict(prompt, names))
    bad = dict(arrays, format_version=np.int64(1))
    np.savez_compressed(tmp_path / "v1.npz", **bad)
    with pytest.raises(ValueError, match="not a router profile artefact"):
        ProfileArtefact.from_file(tmp_path / "v1.npz")


def test_value_order_with_non_finite_quality():
    """A NaN predicted quality ranks as -1e9 (below every real one, above -inf), +inf as the
    strongest:
    the order is np.nan_to_num's, also on the fast path for finite qualities."""
    q = np.array([0.4, np.nan, 0.9, np.inf, -np.inf])
    c = np.array([1e-4, 1e-6, 2e-4, 5e-4, 1e-7])
    for w in (0.0, 0.3, 0.5, 1.0):
        want = utility_order(np.nan_to_num(q, nan=-1e9), c, w)
        np.testing.assert_array_equal(utility_order(q, c, w), want)
    assert utility_order(q, c, 1.0)[0] == 3 and list(utility_order(q, c, 1.0)[-2:]) == [1, 4]
    assert utility_order(q, c, 0.0)[0] == 4


def test_an_artefact_whose_meta_is_nested_too_deep_is_refused_not_a_traceback(tmp_path):
    """An operator's artefact (ROUTERONE_ROUTER_MODEL) whose `meta` JSON nests 100,000 arrays:
    json.loads raised RecursionError, a traceback from `routerone models` and `serve`."""
    with np.load(ARTEFACT_PATH) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["meta"] = np.str_("[" * 100_000 + "]" * 100_000)
    np.savez_compressed(tmp_path / "deep.npz", **arrays)
    with pytest.raises(ValueError, match="not a router profile artefact.*nested too deep"):
        ProfileArtefact.from_file(tmp_path / "deep.npz")

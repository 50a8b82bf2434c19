"""What `auto` shows as a model's predicted quality is on the 0..1 scale the reason header promises.

The demo's two canned models had made-up arena scores mapped like real ones' (demo-large: 1.02 on
"Hello"); they now have a fixed quality, their catalog rating, on every prompt. A real model's
linear prediction can pass 1 (gpt-4o: 1.09 on "Hello"): it is shown capped at 1.000; the ranking
still uses the uncapped score (the evaluated router, unchanged)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from routerone.catalog import load_catalog
from routerone.routing.base import RouteContext
from routerone.routing.health import Health
from routerone.routing.learned import ProfileRouter
from routerone.routing.strategies import BalancedStrategy, CostStrategy, QualityStrategy
from routerone.settings import Settings
from routerone.wire.chat import validate_body

PROMPTS = ["Hello", "hi", "what is 2+2", "Prove that there are infinitely many primes.",
           "Write a Python function that merges two sorted lists."]
SHOWN = re.compile(r"predicted quality (?:>= )?(-?\d+\.\d+)")


def _req(prompt: str):
    return validate_body({"model": "auto", "messages": [{"role": "user", "content": prompt}]})


def test_the_demo_models_have_their_catalog_quality_on_every_prompt():
    router = ProfileRouter.load()
    demo = {m.id: m.quality for m in load_catalog(Settings(demo="on")).models.values() if m.provider == "demo"}
    assert sorted(demo) == ["demo-large", "demo-small"]
    for prompt in PROMPTS:
        got = router.predict(prompt, list(demo))
        assert got.tolist() == pytest.approx(list(demo.values())), prompt
    assert router.profile("demo-large").source == "prior:demo"


@pytest.mark.parametrize("wtp", [0.0, 0.5, 1.0])
def test_no_shown_predicted_quality_is_above_1(wtp):
    models = list(load_catalog(Settings(demo="on")).models.values())
    router = ProfileRouter.load()
    assert router.predict("Hello", ["gpt-4o"])[0] > 1          # the case this is about
    strategies = [BalancedStrategy(router), QualityStrategy(router), CostStrategy(router=router)]
    for prompt in PROMPTS:
        for pool in (models, [m for m in models if m.provider == "demo"],
                     [m for m in models if m.id in ("gpt-4o", "gpt-4o-mini", "o1")]):
            for s in strategies:
                _, why = s.rank(_req(prompt), pool, RouteContext(Health(), wtp, 10))
                shown = [float(x) for x in SHOWN.findall(why)]
                assert all(0.0 <= q <= 1.0 for q in shown), (s.name, prompt, why)


def test_the_ranking_still_uses_the_uncapped_score():
    router = ProfileRouter.load()
    models = [m for m in load_catalog(Settings(demo="on")).models.values() if m.id in ("gpt-4o", "o1", "gpt-4o-mini")]
    q = router.predict("Hello", [m.id for m in models])
    assert (q > 1).sum() >= 2                                   # two candidates both shown as 1.000
    ranked, why = BalancedStrategy(router).rank(_req("Hello"), models, RouteContext(Health(), 1.0, 10))
    assert ranked[0].id == models[int(np.argmax(q))].id
    assert "predicted quality 1.000" in why


def test_an_operators_fixed_quality_prior(tmp_path, monkeypatch):
    from routerone.routing.learned.profiles import RouterFileError, load_priors
    extra = tmp_path / "p.toml"
    extra.write_text('[model."house-model"]\nquality = 0.7\nsource = "my-eval"\n')
    monkeypatch.setenv("ROUTERONE_MODEL_PRIORS", str(extra))
    router = ProfileRouter(ProfileRouter.load().artefact, load_priors())
    assert router.predict("Hello", ["house-model"]).tolist() == pytest.approx([0.7])
    assert router.profile("house-model").source == "prior:my-eval"
    for bad in ("1.5", "true", '"high"'):
        extra.write_text(f'[model."house-model"]\nquality = {bad}\nsource = "my-eval"\n')
        with pytest.raises(RouterFileError, match="house-model"):
            load_priors()

"""Each strategy's choice on a constructed catalog, and the planner's filtering."""
from __future__ import annotations

import numpy as np
import pytest

from routerone.billing.prices import Price
from routerone.catalog import Catalog, ModelInfo
from routerone.errors import CapabilityMismatch, ModelNotFound, PermissionDenied
from routerone.providers.base import Deployment, Vendor
from routerone.routing.base import RouteContext
from routerone.routing.health import Health
from routerone.routing.planner import Planner
from routerone.routing.strategies import CostStrategy, LatencyStrategy, QualityStrategy
from routerone.wire.chat import validate_body

V = Vendor("v", "openai", "http://127.0.0.1:1/v1", api_key="k")


def model(mid: str, quality: float, out_usd: int, *, vision=False, tools=True, ctx=100_000) -> ModelInfo:
    return ModelInfo(id=mid, provider="v", context_window=ctx, max_output=4096,
                     price=Price(out_usd * 250_000, out_usd * 1_000_000),
                     deployments=(Deployment(mid, V, mid),), vision=vision, tools=tools, quality=quality)


STRONG, MID, CHEAP = model("strong", 0.95, 30), model("mid", 0.7, 4, vision=True), model("cheap", 0.4, 1, tools=False)
MODELS = [CHEAP, STRONG, MID]


def req(**body):
    return validate_body({"model": "auto", "messages": [{"role": "user", "content": "hello"}], **body})


def test_quality_picks_strongest():
    ranked, why = QualityStrategy().rank(req(), MODELS, RouteContext(Health()))
    assert [m.id for m in ranked] == ["strong", "mid", "cheap"] and "quality" in why


def test_cost_picks_cheapest_above_floor():
    ranked, why = CostStrategy(quality_floor=0.6).rank(req(), MODELS, RouteContext(Health()))
    assert [m.id for m in ranked][:2] == ["mid", "strong"] and "0.60" in why
    ranked, _ = CostStrategy(quality_floor=0.3).rank(req(), MODELS, RouteContext(Health()))
    assert ranked[0].id == "cheap"


def test_latency_uses_live_health():
    h = Health()
    h.record_success("v/strong", ttft_ms=80, duration_ms=500, completion_tokens=50)
    h.record_success("v/mid", ttft_ms=300, duration_ms=900, completion_tokens=50)
    ranked, why = LatencyStrategy().rank(req(), MODELS, RouteContext(h))
    assert ranked[0].id == "strong" and "80" in why


def planner(strategy="quality") -> Planner:
    cat = Catalog({m.id: m for m in MODELS}, {"v": V})
    return Planner(cat, Health(), {"quality": QualityStrategy(), "cost": CostStrategy()}, default_strategy=strategy)


def test_capability_filter_for_auto():
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]
    plan = planner().plan(validate_body({"model": "auto", "messages": image}), 10)
    assert [a.model.id for a in plan.attempts] == ["mid"]
    assert any("does not accept images" in s for s in plan.skipped)
    tools = [{"type": "function", "function": {"name": "f"}}]
    plan = planner("cost").plan(req(tools=tools), 10)
    assert "cheap" not in [a.model.id for a in plan.attempts]


def test_allowlist_and_errors():
    plan = planner().plan(req(), 10, allowlist=["cheap", "mid"])
    assert [a.model.id for a in plan.attempts] == ["mid", "cheap"]
    with pytest.raises(PermissionDenied):
        planner().plan(validate_body({"model": "strong", "messages": [{"role": "user", "content": "x"}]}), 10,
                       allowlist=["mid"])
    with pytest.raises(ModelNotFound):
        planner().plan(validate_body({"model": "nope", "messages": [{"role": "user", "content": "x"}]}), 10)
    with pytest.raises(CapabilityMismatch):
        planner().plan(req(tools=[{"type": "function", "function": {"name": "f"}}]), 10, allowlist=["cheap"])


def test_cooldown_deployment_goes_last():
    v2 = Vendor("w", "openai", "http://127.0.0.1:2/v1", api_key="k")
    m = ModelInfo(id="x", provider="v", context_window=1000, max_output=100, price=Price(1, 1),
                  deployments=(Deployment("x", V, "x"), Deployment("x", v2, "x")))
    health = Health(cooldown_failures=1, cooldown_s=60)
    p = Planner(Catalog({"x": m}, {"v": V, "w": v2}), health, {})
    health.record_failure("v/x")
    for _ in range(20):
        plan = p.plan(validate_body({"model": "x", "messages": [{"role": "user", "content": "x"}]}), 5)
        assert [a.deployment.id for a in plan.attempts] == ["w/x", "v/x"]


def test_quality_and_cost_use_the_predicted_quality_not_the_hand_set_one():
    """`quality` and `cost` rank by the learned router's predicted quality on this prompt for models
    it has a profile for (trained or prior); a hand-set catalog `quality` counts only for a model the
    router knows nothing about."""
    from routerone.routing.learned import ProfileRouter
    router = ProfileRouter.load()
    # hand-set qualities upside down with respect to the published priors
    known = [model("gpt-4.1-nano", 0.99, 1), model("gpt-4o", 0.01, 10), model("claude-opus-4", 0.02, 75)]
    r = req(messages=[{"role": "user", "content": "Prove that there are infinitely many primes."}])
    predicted = router.predict("Prove that there are infinitely many primes.", [m.id for m in known])
    assert all(router.profile(m.id).source != "default" for m in known)
    ranked, why = QualityStrategy(router).rank(r, known, RouteContext(Health()))
    assert [m.id for m in ranked] == [known[i].id for i in np.argsort(-predicted, kind="stable")]
    assert f"{max(predicted):.2f}" in why
    for hand_set in (0.0, 0.8, 5.0):     # the operator's rating of a model without a profile counts
        unknown = model("house-model-x", hand_set, 2)
        ranked, _ = QualityStrategy(router).rank(r, known + [unknown], RouteContext(Health()))
        scores = list(predicted) + [hand_set]
        assert [m.id for m in ranked] == [(known + [unknown])[i].id for i in np.argsort(-np.array(scores), kind="stable")]
    floor = float(np.sort(predicted)[-2])             # only the two strongest predicted reach it
    ranked, why = CostStrategy(quality_floor=floor, router=router).rank(r, known, RouteContext(Health()))
    above = [m for m, q in zip(known, predicted) if q >= floor]
    assert ranked[0].id == min(above, key=lambda m: m.price.blended_micros_per_mtok).id
    assert "predicted quality" in why

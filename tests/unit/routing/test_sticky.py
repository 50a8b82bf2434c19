"""Sticky conversations: later turns stay on the first turn's model; TTL, bounds, failover."""
from __future__ import annotations

import pytest

from routerone.billing.prices import Price
from routerone.catalog import Catalog, ModelInfo
from routerone.errors import InvalidRequest
from routerone.providers.base import Deployment, Vendor
from routerone.routing.health import Health
from routerone.routing.planner import Planner
from routerone.routing.sticky import StickyMap, conversation_key
from routerone.routing.wtp import parse_willingness_to_pay
from routerone.wire.chat import validate_body

V = Vendor("v", "openai", "http://127.0.0.1:1/v1", api_key="k")


def model(mid: str, quality: float, out_usd: int) -> ModelInfo:
    return ModelInfo(id=mid, provider="v", context_window=100_000, max_output=4096,
                     price=Price(out_usd * 250_000, out_usd * 1_000_000),
                     deployments=(Deployment(mid, V, mid),), quality=quality)


class ByQuality:
    """A strategy whose choice follows the willingness to pay: strongest at >= 0.5, else cheapest."""
    name = "test"

    def rank(self, req, models, ctx):
        if ctx.willingness_to_pay >= 0.5:
            return sorted(models, key=lambda m: -m.quality), "strongest"
        return sorted(models, key=lambda m: m.price.output_micros_per_mtok), "cheapest"


MODELS = [model("strong", 0.9, 30), model("cheap", 0.4, 1)]


def make_planner(clock=None, health=None) -> Planner:
    cat = Catalog({m.id: m for m in MODELS}, {"v": V})
    sticky = StickyMap(ttl_s=60, max_entries=3, clock=clock) if clock else StickyMap(ttl_s=60, max_entries=3)
    return Planner(cat, health or Health(), {"test": ByQuality()}, default_strategy="test", sticky=sticky)


TURN1 = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
TURN2 = TURN1 + [{"role": "assistant", "content": "hi!"}, {"role": "user", "content": "more"}]


def plan(p: Planner, messages, wtp: float, scope: str = "k1"):
    return p.plan(validate_body({"model": "auto", "messages": messages}), 10, willingness_to_pay=wtp, scope=scope)


def test_conversation_key_shared_by_turns_and_scoped():
    k1, later1 = conversation_key(TURN1, "a")
    k2, later2 = conversation_key(TURN2, "a")
    assert k1 == k2 and not later1 and later2
    assert conversation_key(TURN2, "b")[0] != k1
    assert conversation_key([{"role": "user", "content": "other"}], "a")[0] != k1


def test_later_turn_stays_on_first_turn_model():
    p = make_planner()
    first = plan(p, TURN1, 0.9)
    assert first.attempts[0].model.id == "strong"
    # the caller's knob now says "cheapest", but the conversation stays where it started ...
    second = plan(p, TURN2, 0.1)
    assert second.attempts[0].model.id == "strong" and "sticky" in second.reason
    assert [a.model.id for a in second.attempts] == ["strong", "cheap"]     # failover order kept
    # ... while another key's identical conversation, and a new conversation, are decided afresh
    assert plan(p, TURN2, 0.1, scope="k2").attempts[0].model.id == "cheap"
    assert plan(p, [{"role": "user", "content": "new"}], 0.1).attempts[0].model.id == "cheap"


def test_failover_moves_the_conversation():
    health = Health()
    p = make_planner(health=health)
    plan(p, TURN1, 0.9)
    for _ in range(10):   # the pinned model's only deployment goes into cooldown
        health.record_failure("v/strong")
    assert not health.available("v/strong")
    moved = plan(p, TURN2, 0.1)
    assert moved.attempts[0].model.id == "cheap" and "sticky" not in moved.reason
    later = TURN2 + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "again"}]
    health.record_success("v/strong", ttft_ms=None, duration_ms=1, completion_tokens=1)
    assert plan(p, later, 0.9).attempts[0].model.id == "cheap"      # re-pinned where it moved


def test_ttl_and_bound():
    now = [0.0]
    p = make_planner(clock=lambda: now[0])
    plan(p, TURN1, 0.9)
    now[0] = 59.0
    assert plan(p, TURN2, 0.1).attempts[0].model.id == "strong"     # use refreshes the TTL
    now[0] = 59.0 + 61.0
    assert plan(p, TURN2, 0.1).attempts[0].model.id == "cheap"      # expired: decided afresh
    m = StickyMap(ttl_s=60, max_entries=3)
    for i in range(10):
        m.put(f"k{i}", "x")
    assert len(m) == 3 and m.get("k9") == "x" and m.get("k0") is None


@pytest.mark.parametrize("value,expected", [(None, None), (0, 0.0), (1, 1.0), (0.3, 0.3), ("0.25", 0.25)])
def test_wtp_parse_ok(value, expected):
    assert parse_willingness_to_pay(value, "x") == expected


@pytest.mark.parametrize("value", [-0.1, 1.5, "abc", "nan", True, [0.5], float("inf")])
def test_wtp_parse_rejects(value):
    with pytest.raises(InvalidRequest) as exc:
        parse_willingness_to_pay(value, "route.willingness_to_pay")
    assert exc.value.param == "route.willingness_to_pay"


def test_route_object_in_the_body():
    req = validate_body({"model": "auto", "messages": TURN1,
                         "route": {"strategy": "cost", "willingness_to_pay": 0.3}})
    assert req.strategy == "cost" and req.willingness_to_pay == 0.3
    assert validate_body({"model": "auto", "messages": TURN1, "route": "quality"}).strategy == "quality"
    for bad, param in [({"willingness_to_pay": 2}, "route.willingness_to_pay"),
                       ({"strategy": 5}, "route.strategy"), ({"speed": 1}, "route.speed"), (7, "route")]:
        with pytest.raises(InvalidRequest) as exc:
            validate_body({"model": "auto", "messages": TURN1, "route": bad})
        assert exc.value.param == param


def test_prepare_computes_what_plan_then_uses(monkeypatch):
    """Planner.prepare (run off the event loop for a large body) makes the conversation key and the
    strategy's view of the prompt; plan then hashes and featurises nothing again."""
    import routerone.routing.planner as planner_mod
    from routerone.routing.learned.profiles import ProfileRouter
    from routerone.routing.strategies import BalancedStrategy

    p = make_planner()
    balanced = BalancedStrategy()
    p.strategies = {"test": ByQuality(), "balanced": balanced}
    req = validate_body({"model": "auto", "messages": TURN2})
    p.prepare(req, "k1", "balanced")
    assert req.memo[("conversation_key", "k1")] == conversation_key(TURN2, "k1")
    view = req.memo[("prompt_view", id(balanced.router))]
    assert view[1] == ProfileRouter.load().prompt_view("more")[1]

    def no(*a, **k):
        raise AssertionError("computed again")
    monkeypatch.setattr(planner_mod, "conversation_key", no)
    monkeypatch.setattr(balanced.router, "prompt_view", no)
    got = p.plan(req, 10, willingness_to_pay=0.5, scope="k1", strategy="balanced")
    assert got.attempts and got.strategy == "balanced"
    # a named model: nothing prepared
    named = validate_body({"model": "strong", "messages": TURN2})
    p.prepare(named, "k1", "balanced")
    assert named.memo == {}

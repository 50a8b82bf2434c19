"""Strategies for `model: "auto"`: quality, cost, latency and balanced (the learned router)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..catalog import ModelInfo
from ..wire.chat import ChatRequest
from .base import RouteContext, RoutingStrategy
from .learned import ProfileRouter, decide

__all__ = ["QualityStrategy", "CostStrategy", "LatencyStrategy", "BalancedStrategy", "make_strategies",
           "COST_QUALITY_FLOOR"]

COST_QUALITY_FLOOR = 0.6   # `cost` picks the cheapest model at or above this quality score


class QualityStrategy:
    name = "quality"

    def rank(self, req: ChatRequest, models: Sequence[ModelInfo], ctx: RouteContext) -> tuple[list[ModelInfo], str]:
        ranked = sorted(models, key=lambda m: (-m.quality, m.price.blended_micros_per_mtok))
        return ranked, f"highest quality score that fits ({ranked[0].quality:.2f})"


class CostStrategy:
    name = "cost"

    def __init__(self, quality_floor: float = COST_QUALITY_FLOOR) -> None:
        self.quality_floor = quality_floor

    def rank(self, req: ChatRequest, models: Sequence[ModelInfo], ctx: RouteContext) -> tuple[list[ModelInfo], str]:
        ok = sorted((m for m in models if m.quality >= self.quality_floor),
                    key=lambda m: (m.price.blended_micros_per_mtok, -m.quality))
        rest = sorted((m for m in models if m.quality < self.quality_floor), key=lambda m: -m.quality)
        if not ok:
            return rest, f"no model reaches quality floor {self.quality_floor:.2f}; strongest first"
        return ok + rest, f"cheapest model with quality >= {self.quality_floor:.2f}"


class LatencyStrategy:
    name = "latency"

    def rank(self, req: ChatRequest, models: Sequence[ModelInfo], ctx: RouteContext) -> tuple[list[ModelInfo], str]:
        def ttft(m: ModelInfo) -> float:
            seen = [h.ttft_ms for d in m.deployments if (h := ctx.health.by_deployment.get(d.id)) and h.ttft_ms]
            return min(seen) if seen else float("inf")
        ranked = sorted(models, key=lambda m: (ttft(m), m.price.blended_micros_per_mtok))
        best = ttft(ranked[0])
        why = f"fastest time to first token ({best:.0f} ms)" if best != float("inf") else "no latency data yet; cheapest first"
        return ranked, why


class BalancedStrategy:
    """The learned router: every candidate's predicted quality on this prompt (profiles.py) and
    predicted cost for this request, ranked by value at the caller's willingness to pay (value.py)."""
    name = "balanced"

    def __init__(self, router: ProfileRouter | None = None) -> None:
        self.router = router or ProfileRouter.load()   # the artefact, loaded once per process
        self._pools: dict[tuple, tuple] = {}           # candidate set -> its profile arrays

    def _pool(self, models: Sequence[ModelInfo]) -> tuple:
        key = tuple((m.id, m.price.input_micros_per_mtok, m.price.output_micros_per_mtok) for m in models)
        got = self._pools.get(key)
        if got is None:
            ids = [m.id for m in models]
            profiles = [self.router.profile(i) for i in ids]
            got = (ids, np.array([p.embedding for p in profiles]),
                   np.array([p.output_tokens for p in profiles]),
                   np.array([m.price.input_micros_per_mtok for m in models], float) / 1e12,
                   np.array([m.price.output_micros_per_mtok for m in models], float) / 1e12,
                   [p.source for p in profiles])
            if len(self._pools) > 1024:
                self._pools.clear()
            self._pools[key] = got
        return got

    def predicted_cost_usd(self, m: ModelInfo, prompt_tokens: int, max_tokens: int | None) -> float:
        out = self.router.profile(m.id).output_tokens
        if max_tokens:
            out = min(out, float(max_tokens))
        return (prompt_tokens * m.price.input_micros_per_mtok + out * m.price.output_micros_per_mtok) / 1e12

    def rank(self, req: ChatRequest, models: Sequence[ModelInfo], ctx: RouteContext) -> tuple[list[ModelInfo], str]:
        ids, emb, out, pin, pout, sources = self._pool(models)
        quality = emb @ self.router.traits(req.last_user_text())
        if req.max_tokens:
            out = np.minimum(out, float(req.max_tokens))
        cost = ctx.prompt_tokens * pin + out * pout
        decision = decide(quality, cost, ctx.willingness_to_pay)
        return [models[i] for i in decision.order], decision.reason(ids, sources)


def make_strategies() -> dict[str, RoutingStrategy]:
    out: dict[str, RoutingStrategy] = {"quality": QualityStrategy(), "cost": CostStrategy(),
                                       "latency": LatencyStrategy()}
    out["balanced"] = BalancedStrategy()
    return out

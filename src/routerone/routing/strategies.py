"""Strategies for `model: "auto"`: quality, cost, latency and balanced (the learned router)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..catalog import ModelInfo
from ..wire.chat import ChatRequest
from .base import RouteContext, RoutingStrategy
from .learned import ProfileRouter, decide
from .learned.value import shown_quality

__all__ = ["QualityStrategy", "CostStrategy", "LatencyStrategy", "BalancedStrategy", "make_strategies",
           "COST_QUALITY_FLOOR"]

COST_QUALITY_FLOOR = 0.6   # `cost` picks the cheapest model at or above this quality score


class _PredictedQuality:
    """Per-prompt quality of each candidate for `quality` and `cost`: the learned router's
    prediction (profiles.py) for every model it has a profile for (trained or from a published
    prior); the catalog row's `quality` only for a model the router knows nothing about ("default"
    profile), so an operator can still rate an unknown model; when the router artefact cannot be
    read, the catalog's quality for all (logged once by `routerone models`)."""

    def __init__(self, router: ProfileRouter | None = None) -> None:
        self._router = router
        self._broken = False

    def _get_router(self) -> ProfileRouter | None:
        if self._router is None and not self._broken:
            try:
                self._router = ProfileRouter.load()
            except (OSError, ValueError):
                self._broken = True
        return self._router

    def scores(self, req: ChatRequest, models: Sequence[ModelInfo]) -> list[float]:
        router = self._get_router()
        if router is None:
            return [m.quality for m in models]
        predicted = router.predict(req.last_user_text(), [m.id for m in models])
        return [m.quality if router.profile(m.id).source == "default" and m.profile == "catalog"
                else float(q) for m, q in zip(models, predicted)]


class QualityStrategy:
    name = "quality"

    def __init__(self, router: ProfileRouter | None = None) -> None:
        self.predicted = _PredictedQuality(router)

    def rank(self, req: ChatRequest, models: Sequence[ModelInfo], ctx: RouteContext) -> tuple[list[ModelInfo], str]:
        q = dict(zip((m.id for m in models), self.predicted.scores(req, models)))
        ranked = sorted(models, key=lambda m: (-q[m.id], m.price.blended_micros_per_mtok))
        return ranked, f"highest predicted quality on this prompt ({shown_quality(q[ranked[0].id], 2)})"


class CostStrategy:
    name = "cost"

    def __init__(self, quality_floor: float = COST_QUALITY_FLOOR, router: ProfileRouter | None = None) -> None:
        self.quality_floor = quality_floor
        self.predicted = _PredictedQuality(router)

    def rank(self, req: ChatRequest, models: Sequence[ModelInfo], ctx: RouteContext) -> tuple[list[ModelInfo], str]:
        q = dict(zip((m.id for m in models), self.predicted.scores(req, models)))
        ok = sorted((m for m in models if q[m.id] >= self.quality_floor),
                    key=lambda m: (m.price.blended_micros_per_mtok, -q[m.id]))
        rest = sorted((m for m in models if q[m.id] < self.quality_floor), key=lambda m: -q[m.id])
        if not ok:
            return rest, f"no model reaches predicted quality floor {self.quality_floor:.2f}; strongest first"
        return ok + rest, f"cheapest model with predicted quality >= {self.quality_floor:.2f}"


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
        self.router.artefact.scorer.bucket_rows        # its gather table (~5 ms), not on the first request
        self._pools: dict[tuple, tuple] = {}           # candidate set -> its profile arrays

    def _pool(self, models: Sequence[ModelInfo]) -> tuple:
        # keyed by the candidates' identities: a ModelInfo is frozen, and the entry keeps the
        # objects themselves (last item), so no other object can take one of their ids meanwhile
        key = tuple(map(id, models))
        got = self._pools.get(key)
        if got is None:
            ids = [m.id for m in models]
            profiles = [self.router.profile(i) for i in ids]
            got = (ids, np.array([p.embedding for p in profiles]),
                   np.array([p.output_tokens for p in profiles]),
                   np.array([m.price.input_micros_per_mtok for m in models], float) / 1e12,
                   np.array([m.price.output_micros_per_mtok for m in models], float) / 1e12,
                   [p.source for p in profiles], tuple(models))
            if len(self._pools) > 1024:
                self._pools.clear()
            self._pools[key] = got
        return got

    def predicted_cost_usd(self, m: ModelInfo, prompt_tokens: int, max_tokens: int | None,
                           prompt: str | None = None) -> float:
        """What `rank` charges `m` for this request: prompt tokens x input price + the model's
        expected answer length on `prompt` (its mean x the prompt's length factor; the mean alone
        without a prompt), capped at max_tokens, x output price."""
        factor = 1.0 if prompt is None else self.router.prompt_view(prompt)[1]
        out = self.router.profile(m.id).output_tokens * factor
        if max_tokens:
            out = min(out, float(max_tokens))
        return (prompt_tokens * m.price.input_micros_per_mtok + out * m.price.output_micros_per_mtok) / 1e12

    def prepare(self, req: ChatRequest) -> tuple:
        """The prompt's features -> (traits, answer-length factor), once per request (kept in
        req.memo; Planner.prepare may run this off the event loop for a large prompt)."""
        memo_key = ("prompt_view", id(self.router))
        got = req.memo.get(memo_key)
        if got is None:
            got = req.memo[memo_key] = self.router.prompt_view(req.last_user_text())
        return got

    def rank(self, req: ChatRequest, models: Sequence[ModelInfo], ctx: RouteContext) -> tuple[list[ModelInfo], str]:
        ids, emb, out, pin, pout, sources, _ = self._pool(models)
        traits, length_factor = self.prepare(req)
        quality = emb @ traits
        out = out * length_factor
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

"""Turn a request into a plan: which models, on which deployments, in which order, and why.

Named model: that model, then the request's `models: [...]` list, then the catalog's fallback chain.
`auto`: every available model that can serve the request and the key may use, ranked by the active
strategy (per request > per key > gateway default), at the willingness to pay chosen the same way.
A later turn of a conversation stays on the model its first turn got (sticky.py) while that model
can still serve it and has a healthy deployment; the rest of the ranking stays behind it for
failover. An in-process sticky store (sticky.py's seam) is asked synchronously inside `plan`; a
remote one (Redis) is asked by awaiting `recall` first (when `needs_recall`), and its answer is
passed to `plan`. Deployments of a model are ordered by weight (weighted shuffle); deployments in
cooldown go last.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..catalog import AUTO_MODEL, Catalog, ModelInfo
from ..errors import CapabilityMismatch, ContextLengthExceeded, InvalidRequest, ModelNotFound, PermissionDenied, echo
from ..providers.base import Deployment
from ..wire.chat import ChatRequest
from .base import Attempt, Plan, RouteContext, RoutingStrategy
from .health import Health
from .sticky import StickyMap, StickyStore, conversation_key

__all__ = ["Planner", "Recall", "capability_problem", "STRATEGY_HEADER"]

STRATEGY_HEADER = "x-routerone-strategy"      # a request's strategy, when its body has no `route`


@dataclass(frozen=True, slots=True)
class Recall:
    """A sticky lookup done before planning: the conversation's key, whether the request is a later
    turn, and the model the store had pinned (None: none, expired, or the store did not answer)."""
    key: str
    later: bool
    pinned: str | None


def _conversation_key(req: ChatRequest, scope: str) -> tuple[str, bool]:
    """sticky.conversation_key of the request, once per request (Planner.prepare may have made it)."""
    memo_key = ("conversation_key", scope)
    got = req.memo.get(memo_key)
    if got is None:
        got = req.memo[memo_key] = conversation_key(req.messages, scope)
    return got


def capability_problem(m: ModelInfo, req: ChatRequest, prompt_tokens: int) -> str | None:
    """Why `m` cannot serve `req`, or None."""
    if req.has_images and not m.vision:
        return f"'{m.id}' does not accept images"
    if req.has_tools and not m.tools:
        return f"'{m.id}' does not support tools"
    if req.wants_json_schema and not m.json_schema:
        return f"'{m.id}' does not support response_format json_schema"
    if prompt_tokens > m.context_window:
        return f"the prompt (~{prompt_tokens} tokens) exceeds '{m.id}' context window of {m.context_window} tokens"
    if req.max_tokens and req.max_tokens > m.max_output:
        return f"max_tokens {req.max_tokens} exceeds '{m.id}' maximum output of {m.max_output} tokens"
    return None


class Planner:
    def __init__(self, catalog: Catalog, health: Health, strategies: Mapping[str, RoutingStrategy], *,
                 default_strategy: str = "balanced", willingness_to_pay: float = 0.5,
                 fallbacks: Mapping[str, Sequence[str]] | None = None, rng: random.Random | None = None,
                 sticky: StickyStore | None = None) -> None:
        self.catalog = catalog
        self.health = health
        self.strategies = strategies
        self.default_strategy = default_strategy
        self.willingness_to_pay = willingness_to_pay
        self.sticky = sticky if sticky is not None else StickyMap()
        self.fallbacks = fallbacks or {}
        self._rng = rng or random.Random()

    def prepare(self, req: ChatRequest, scope: str = "", strategy: str | None = None) -> None:
        """For `auto`: the CPU-heavy per-request parts of planning (the conversation key's hash of
        the opening messages, the strategy's view of the prompt), kept in `req.memo` for `plan`.
        Pure: the caller runs it off the event loop for a large body (a 20 MB prompt: ~0.2 s)."""
        if req.model != AUTO_MODEL:
            return
        _conversation_key(req, scope)
        impl = self.strategies.get(strategy or self.default_strategy)
        prepare = getattr(impl, "prepare", None)
        if prepare is not None:
            prepare(req)

    def needs_recall(self, req: ChatRequest) -> bool:
        """Whether `recall` must be awaited before `plan`: `auto` with a remote sticky store."""
        return self.sticky.remote and req.model == AUTO_MODEL

    async def recall(self, req: ChatRequest, scope: str = "") -> Recall:
        """The remote sticky store's answer for this conversation: one round trip for a later turn,
        none for a first turn."""
        key, later = _conversation_key(req, scope)
        return Recall(key, later, await self.sticky.lookup(key) if later else None)

    def plan(self, req: ChatRequest, prompt_tokens: int, *, allowlist: Sequence[str] = (),
             strategy: str | None = None, willingness_to_pay: float | None = None, scope: str = "",
             recall: Recall | None = None) -> Plan:
        """`willingness_to_pay`: 0..1 for this request (None: the gateway default); `scope`: who
        the conversation belongs to (the API key id), for sticky conversations; `recall`: what
        `recall` found (a remote sticky store); without it the store is asked synchronously."""
        if req.model == AUTO_MODEL:
            wtp = self.willingness_to_pay if willingness_to_pay is None else willingness_to_pay
            return self._auto(req, prompt_tokens, allowlist, strategy or self.default_strategy, wtp, scope,
                              recall)
        resolved = self.catalog.resolve(req.model)
        primary = self.catalog.permitted(allowlist, resolved)     # only the deployments the key may use
        if primary is None:
            raise PermissionDenied(f"This API key may not use the model '{resolved.id}'", param="model",
                                   code="model_not_allowed")
        problem = capability_problem(primary, req, prompt_tokens)
        if problem:
            cls = ContextLengthExceeded if "context window" in problem else CapabilityMismatch
            param = "messages" if cls is ContextLengthExceeded else "max_tokens" if "max_tokens" in problem else "model"
            raise cls(f"The request cannot be served: {problem}", param=param)
        models, skipped = [primary], []
        requested = len(req.fallback_models)
        for i, name in enumerate([*req.fallback_models, *self.fallbacks.get(primary.id, ())]):
            if name == AUTO_MODEL:
                continue
            try:
                m = self.catalog.resolve(name)
            except ModelNotFound:
                if i < requested:       # the client's own `models` list: its mistake, a 404
                    raise
                # the catalog's [fallbacks] naming a model not served (now): skipped, not a 404 for the primary
                skipped.append(f"{name}: not served by this gateway")
                continue
            if m.id in {x.id for x in models}:
                continue
            allowed = self.catalog.permitted(allowlist, m)
            why = None if allowed is not None else "not allowed for this key"
            why = why or capability_problem(m, req, prompt_tokens)
            m = allowed or m
            if why:
                skipped.append(f"{m.id}: {why}")
            else:
                models.append(m)
        reason = "requested model" + (f", then fallbacks {', '.join(m.id for m in models[1:])}" if len(models) > 1 else "")
        return Plan(self._attempts(models), "explicit", reason, req.model, skipped)

    def check_strategy(self, strategy: str | None, param: str) -> None:
        """A strategy the client sent (`route` or STRATEGY_HEADER, `param`) is one of ours, whatever
        the model: a typo was a silent no-op on a named model, as a bad willingness to pay is not."""
        if strategy is not None and strategy not in self.strategies:
            raise InvalidRequest(f"Unknown routing strategy '{echo(strategy)}' (known: {', '.join(sorted(self.strategies))})",
                                 param=param)

    def _auto(self, req: ChatRequest, prompt_tokens: int, allowlist: Sequence[str], strategy: str,
              wtp: float, scope: str, recall: Recall | None = None) -> Plan:
        self.check_strategy(strategy, "route")
        impl = self.strategies[strategy]
        pool, skipped = [], []
        for m in self.catalog.available():
            allowed = self.catalog.permitted(allowlist, m)     # a `provider/model` entry: that provider's only
            why = None if allowed is not None else "not allowed for this key"
            why = why or capability_problem(m, req, prompt_tokens)
            (skipped.append(f"{m.id}: {why}") if why else pool.append(allowed))
        if not pool and not skipped:      # nothing served at all, not a request that asks too much
            raise CapabilityMismatch("No model is served by this gateway: `routerone models` lists what its "
                                     "configuration serves (a provider's discovery may have failed, or its "
                                     "`models` filter matched none)", param="model")
        if not pool:
            raise CapabilityMismatch("No configured model can serve this request"
                                     + (f" ({'; '.join(skipped[:3])})" if skipped else ""), param="model")
        ranked, reason = impl.rank(req, pool, RouteContext(self.health, wtp, prompt_tokens))
        ranked, reason = self._stick(req, ranked, reason, scope, recall)
        return Plan(self._attempts(ranked), strategy, reason, req.model, skipped)

    def _stick(self, req: ChatRequest, ranked: list[ModelInfo], reason: str,
               scope: str, recall: Recall | None) -> tuple[list[ModelInfo], str]:
        if recall is None:
            key, later = _conversation_key(req, scope)
            pinned = self.sticky.get(key) if later else None
        else:
            key, later, pinned = recall.key, recall.later, recall.pinned
        if pinned is not None and pinned != ranked[0].id:
            m = next((x for x in ranked if x.id == pinned), None)
            if m is not None and any(self.health.available(d.id) for d in m.deployments if d.vendor.configured):
                return [m] + [x for x in ranked if x is not m], f"sticky conversation: stays on {m.id} ({reason})"
        elif pinned is not None:
            return ranked, f"sticky conversation: stays on {pinned} ({reason})"
        self.sticky.pin(key, ranked[0].id)
        return ranked, reason

    def _attempts(self, models: Sequence[ModelInfo]) -> list[Attempt]:
        out: list[Attempt] = []
        for m in models:
            out.extend(Attempt(m, d) for d in self._order(m.deployments))
        return out

    def _order(self, deps: Sequence[Deployment]) -> list[Deployment]:
        usable = [d for d in deps if d.vendor.configured]
        if len(usable) > 1:
            # weighted shuffle (Efraimidis-Spirakis): key = u^(1/w), larger first
            usable.sort(key=lambda d: self._rng.random() ** (1.0 / max(d.weight, 1)), reverse=True)
        hot = [d for d in usable if self.health.available(d.id)]
        return hot + [d for d in usable if d not in hot]

"""The routing seam: a strategy orders candidate models for a request and says why."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

from ..catalog import ModelInfo
from ..providers.base import Deployment
from ..wire.chat import ChatRequest
from .health import Health

__all__ = ["RoutingStrategy", "Plan", "Attempt", "RouteContext"]


@dataclass(frozen=True, slots=True)
class Attempt:
    model: ModelInfo
    deployment: Deployment


@dataclass(slots=True)
class Plan:
    attempts: list[Attempt]
    strategy: str            # "explicit" for a named model, else the auto strategy's name
    reason: str
    requested_model: str
    skipped: list[str] = field(default_factory=list)   # "<deployment>: why" for the response header


@dataclass(frozen=True, slots=True)
class RouteContext:
    health: Health
    willingness_to_pay: float = 0.5
    prompt_tokens: int = 0          # this request's prompt, for the predicted cost


class RoutingStrategy(Protocol):
    name: str

    def rank(self, req: ChatRequest, models: Sequence[ModelInfo], ctx: RouteContext) -> tuple[list[ModelInfo], str]:
        """Order `models` (already filtered to those able to serve `req`) best-first; say why."""

"""Values carried through one chat request, shared by the JSON and streaming paths."""
from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..limits.base import Limiter, LimitTicket
from ..observability.logs import RequestLog
from ..observability.metrics import Metrics
from ..providers.transport import Transport
from ..routing.base import Attempt, Plan
from ..routing.health import Health
from ..routing.planner import Planner
from ..settings import Settings
from ..tokens import (EXACT_COUNT_MIN_BYTES, count_message_tokens, count_prompt_tokens, load_tokenizer,
                      tokenizer_loaded)
from ..wire.chat import ChatRequest
from .auth import AuthContext, Authenticator
from .billing import Billing, Hold
from .usage import UsageWriter

if TYPE_CHECKING:
    from .streaming import ChatStream

__all__ = ["ChatDeps", "Reply", "Call"]


@dataclass(slots=True)
class ChatDeps:
    settings: Settings
    auth: Authenticator
    planner: Planner
    transport: Transport
    billing: Billing
    limiter: Limiter
    usage: UsageWriter
    health: Health
    metrics: Metrics | None = None
    request_log: RequestLog | None = None


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes | None = None
    stream: "ChatStream | None" = None


@dataclass(slots=True)
class Call:
    """Everything one request carries through the pipeline."""
    request_id: str
    started: float
    auth: AuthContext
    req: ChatRequest
    plan: Plan
    prompt_tokens: int
    hold: Hold
    ticket: LimitTicket | None
    limit_headers: dict[str, str]
    echo_id: str = ""                             # the x-request-id the caller sees
    dep_ticket: LimitTicket | None = None        # the deployment cap this attempt holds
    tried: list[str] = field(default_factory=list)
    upstream_ms: float = 0.0

    async def counted_prompt_tokens(self) -> int:
        """Router One's own count of the prompt, billed when the upstream reports none: its o200k
        count plus per-message framing (tokens.count_message_tokens). `prompt_tokens` is the
        reservation's, which bounds a prompt under EXACT_COUNT_MIN_BYTES by its bytes (about 4x its
        tokens): that bound was billed as the count."""
        text = self.req.prompt_text()
        if len(text) >= EXACT_COUNT_MIN_BYTES:      # at least as many bytes: counted exactly already
            return self.prompt_tokens
        n = len(self.req.messages)
        images = max(0, self.prompt_tokens - count_prompt_tokens(text, n))     # as reserved
        if not tokenizer_loaded():          # its first load (~1 s) never on the event loop
            await asyncio.to_thread(load_tokenizer)
        return count_message_tokens(text, n) + images

    def request_for(self, attempt: Attempt) -> ChatRequest:
        """The request as sent to this attempt: a model whose protocol needs an output limit
        (Anthropic) gets the catalog's documented default when the caller gave none; the billing
        reservation already assumed that same limit (ModelInfo.output_cap)."""
        default = attempt.model.default_max_tokens
        if self.req.max_tokens is None and default:
            return dataclasses.replace(self.req, max_tokens=default)
        return self.req

    def headers(self, attempt: Attempt) -> dict[str, str]:
        h = {"x-request-id": self.echo_id or self.request_id, "x-routerone-request-id": self.request_id, "x-routerone-model": attempt.model.id,
             "x-routerone-provider": attempt.deployment.vendor.name,
             "x-routerone-strategy": self.plan.strategy, "x-routerone-reason": _ascii(self.plan.reason),
             **self.limit_headers}
        if self.tried:
            h["x-routerone-fallbacks"] = _ascii(", ".join(self.tried))
        return h


# two 256-character model ids (vLLM serves Hugging Face ids) with their profile sources fit; at 300
# `auto`'s reason for two such models was cut inside the runner-up's source
MAX_ROUTE_HEADER_CHARS = 1000


def _ascii(s: str) -> str:
    return s.encode("ascii", "replace").decode()[:MAX_ROUTE_HEADER_CHARS]



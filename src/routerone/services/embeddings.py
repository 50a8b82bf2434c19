"""The embeddings pipeline: the chat pipeline's parts (key auth, allowlist, limits, reserve/settle,
fallback across deployments, usage rows, metrics), with an embeddings call in the middle.

Billing: input tokens at the model's catalog price. The reservation assumes one token per byte of
input (an upper bound); the settle uses the upstream's count, or Router One's own o200k count when
the upstream reports none (Gemini).

Routing: embeddings need a named embedding model (`auto` is refused: vectors of different models
are not comparable, so falling back to another model would silently break a caller's index).
Fallback is across the deployments of the requested model only.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time

from ..embedding_catalog import EmbeddingModel
from ..errors import (CapabilityMismatch, ContextLengthExceeded, InvalidRequest, ModelNotFound, PermissionDenied,
                      RouterOneError, echo)
from ..providers.adapters import adapter_for
from ..providers.embeddings import build_embeddings_requests, check_vectors, parse_embeddings_response
from ..routing.base import Attempt, Plan
from ..offload import run_heavy
from ..tokens import count_text_tokens, load_tokenizer, tokenizer_loaded
from ..wire.chat import ChatRequest
from ..wire.embeddings import EmbeddingsRequest, parse_embeddings_request, render_embeddings
from ..wire.types import Usage
from .auth import AuthContext
from .call import Call, Reply
from .chat import ChatService

__all__ = ["EmbeddingsService"]

PROTOCOL = "embeddings"


class EmbeddingsService:
    def __init__(self, chat: ChatService, models: dict[str, EmbeddingModel]) -> None:
        self.chat = chat
        self.models = models

    def _resolve(self, req: EmbeddingsRequest, auth: AuthContext) -> EmbeddingModel:
        name = req.model
        m = self.models.get(name)
        if m is None or not m.configured:
            if name == "auto":
                raise InvalidRequest("Embeddings need a named embedding model ('auto' could mix vectors of "
                                     "different models)", param="model")
            try:
                self.chat.d.planner.catalog.resolve(name)
            except ModelNotFound:
                raise ModelNotFound(f"The embedding model '{echo(name)}' does not exist or is not configured on this "
                                    "gateway", param="model") from None
            raise CapabilityMismatch(f"'{name}' is a chat model; it cannot create embeddings", param="model")
        info = self.chat.d.planner.catalog.permitted(auth.key.allowed_models, m.info)
        if info is None:
            raise PermissionDenied(f"This API key may not use the model '{m.info.id}'", param="model",
                                   code="model_not_allowed")
        m = dataclasses.replace(m, info=info)        # a `provider/model` entry: that provider's deployments
        if req.dimensions is not None and (not m.custom_dimensions or req.dimensions > m.dimensions):
            raise CapabilityMismatch(f"'{m.info.id}' cannot return {req.dimensions}-dimension vectors"
                                     + (f" (at most {m.dimensions})" if m.custom_dimensions else ""),
                                     param="dimensions")
        return m

    def _plan(self, m: EmbeddingModel) -> Plan:
        health = self.chat.d.health
        usable = [d for d in m.info.deployments if d.vendor.configured]
        usable.sort(key=lambda d: not health.available(d.id))      # deployments in cooldown last
        return Plan([Attempt(m.info, d) for d in usable], "explicit", "requested model", m.info.id)

    async def embed(self, raw: bytes, *, auth: AuthContext, request_id: str, echo_id: str) -> Reply:
        chat, d = self.chat, self.chat.d
        started = time.perf_counter()
        try:
            size = len(raw)           # a large body is parsed and counted off the event loop (offload)
            req = await run_heavy(size, parse_embeddings_request, raw)
            m = self._resolve(req, auth)
            await self._check_input_sizes(req, m, size)
            estimate = req.token_estimate()
            ticket, limit_headers = await chat._acquire_limits(auth, request_id, estimate)
        except RouterOneError as exc:
            chat.refused(exc, request_id=request_id, echo_id=echo_id, auth=auth, route=PROTOCOL)
            raise
        try:
            hold = await d.billing.reserve(auth, request_id,
                                           m.info.price.worst_case_micros(estimate, 0, auth.account.markup_bps))
        except BaseException as exc:
            if ticket:
                await d.limiter.release(ticket, 0)
            if isinstance(exc, RouterOneError):
                chat.refused(exc, request_id=request_id, echo_id=echo_id, auth=auth, route=PROTOCOL)
            raise
        shell = ChatRequest(body={}, model=req.model, messages=[], protocol=PROTOCOL)
        call = Call(request_id, started, auth, shell, self._plan(m), estimate, hold, ticket, limit_headers,
                    echo_id=echo_id)
        try:
            return await self._run(call, req, size)
        except BaseException as exc:
            await chat._fail(call, exc)
            raise

    async def _run(self, call: Call, req: EmbeddingsRequest, size_bytes: int) -> Reply:
        chat, d = self.chat, self.chat.d

        async def send(call: Call, attempt: Attempt, ups):
            dep = attempt.deployment
            t0 = time.perf_counter()
            resps = await asyncio.gather(*(d.transport.send(up, provider=dep.vendor.name) for up, _ in ups))
            elapsed_ms = (time.perf_counter() - t0) * 1000
            call.upstream_ms += elapsed_ms
            vectors: list[list[float]] = []
            tokens: int | None = 0
            for (_, n), resp in zip(ups, resps):
                if resp.status >= 400:
                    raise adapter_for(dep.vendor.protocol).map_error(resp.status, resp.headers, resp.body, dep)
                part, part_tokens = parse_embeddings_response(resp.body, n, dep)
                vectors += part
                tokens = None if tokens is None or part_tokens is None else tokens + part_tokens
            check_vectors(vectors, req.dimensions, dep)
            d.health.record_success(dep.id, ttft_ms=None, duration_ms=elapsed_ms, completion_tokens=0)
            return vectors, tokens

        attempt, (vectors, upstream_tokens) = await chat.run_attempts(
            call, lambda c, a: build_embeddings_requests(req, a.deployment), send)
        tokens = upstream_tokens if upstream_tokens is not None else await self._count(req, size_bytes)
        usage = Usage(tokens, 0, estimated=upstream_tokens is None)
        settlement = await d.billing.settle(call.hold, attempt.model.price, usage)
        await chat.finish(call, attempt, usage, settlement.charged_micros, status=200)
        body = render_embeddings(vectors, model=attempt.model.id, fmt=req.encoding_format, prompt_tokens=tokens,
                                 cost_micros=settlement.charged_micros)
        headers = call.headers(attempt)
        headers["x-routerone-cost"] = f"{settlement.charged_micros / 1_000_000:.6f}"
        headers["x-routerone-overhead-ms"] = f"{(time.perf_counter() - call.started) * 1000 - call.upstream_ms:.3f}"
        return Reply(200, headers, body)

    @staticmethod
    async def _check_input_sizes(req: EmbeddingsRequest, m: EmbeddingModel, size_bytes: int) -> None:
        """An input item longer than the model accepts is a 400 before any hold or upstream call.
        A text's UTF-8 byte length bounds its token count from above, so only items over the limit
        in bytes are counted exactly (off the event loop when the body is large)."""
        limit = m.info.context_window
        if not req.tokens_given and not tokenizer_loaded() and any(
                len(t) * 4 > limit and len(t.encode()) > limit for t in req.inputs):   # type: ignore[union-attr]
            await asyncio.to_thread(load_tokenizer)     # an item to count exactly: ~1 s once, never on the loop
        i = await run_heavy(size_bytes, _first_too_long, req, limit)
        if i is not None:
            raise ContextLengthExceeded(f"input[{i}] is longer than the {limit} tokens '{m.info.id}' accepts "
                                        "per input", param="input")

    @staticmethod
    async def _count(req: EmbeddingsRequest, size_bytes: int) -> int:
        if req.tokens_given:
            return req.token_estimate()
        if load_tokenizer.cache_info().currsize == 0:
            await asyncio.to_thread(load_tokenizer)     # ~1 s once, never on the event loop
        return await run_heavy(size_bytes, _count_inputs, req)


def _first_too_long(req: EmbeddingsRequest, limit: int) -> int | None:
    """The index of the first input item over `limit` tokens, or None."""
    for i, item in enumerate(req.inputs):
        size = len(item) if req.tokens_given else len(item.encode())     # type: ignore[union-attr]
        if size <= limit:
            continue
        if not req.tokens_given and count_text_tokens(item) <= limit:     # type: ignore[arg-type]
            continue
        return i
    return None


def _count_inputs(req: EmbeddingsRequest) -> int:
    return sum(count_text_tokens(t) for t in req.inputs)   # type: ignore[arg-type]

"""The chat pipeline: authenticate -> validate -> plan -> limit -> reserve -> call -> return -> settle -> record.

`ChatService.complete` returns a `Reply`: a whole JSON body, or an open `ChatStream` (see
streaming.py) whose first content token has already arrived, so failures before it fail over
invisibly to the next candidate.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Callable

import orjson

from ..catalog import AUTO_MODEL
from ..errors import (RateLimited, RouterOneError, ServiceUnavailable, UnsupportedParameter, UpstreamError,
                      UpstreamRateLimited)
from ..limits.base import DenyReason, LimitRule, LimitTicket
from ..observability.route_metrics import RouteCounter
from ..offload import OFF_LOOP_BYTES, run_heavy
from ..providers.adapters import adapter_for
from ..providers.base import UpstreamRequest
from ..routing.base import Attempt
from ..routing.planner import STRATEGY_HEADER
from ..routing.wtp import HEADER as WTP_HEADER, parse_willingness_to_pay
from ..store.base import UsageRecord
from ..tokens import count_prompt_tokens, count_text_tokens, load_tokenizer, needs_tokenizer, tokenizer_loaded
from ..wire.chat import ChatRequest, parse_chat_request
from ..wire.responses_reasoning import reasoning_texts
from ..wire.types import Usage
from .auth import AuthContext
from .billing import usage_to_bill
from .call import Call, ChatDeps, Reply
from .streaming import open_stream

__all__ = ["ChatService", "ChatDeps", "Reply"]

IMAGE_TOKENS = 1000   # reservation estimate per image part (providers bill 85..1600+)
MAX_RETRY_WAIT_S = 5.0   # the longest the router waits between rounds of attempts


class ChatService:
    def __init__(self, deps: ChatDeps) -> None:
        self.d = deps
        self.background: set[asyncio.Task] = set()
        self.routes = RouteCounter(deps.metrics.registry) if deps.metrics is not None else None

    # -- the pipeline ---------------------------------------------------------------------------
    async def complete(self, raw: bytes | ChatRequest, *, auth: AuthContext, request_id: str | None = None,
                       echo_id: str | None = None, strategy_header: str | None = None,
                       parse: Callable[[bytes], ChatRequest] = parse_chat_request,
                       protocol: str = "chat", wtp_header: str | None = None,
                       body_bytes: int | None = None) -> Reply:
        """`request_id` must be unique (it keys the billing hold); `echo_id` is what the
        response's x-request-id says (the caller's own id when it sent one). `parse` turns the
        body into a ChatRequest: other client protocols (wire/messages.py, wire/responses.py)
        pass their own translation, and the reply is then rendered back by their HTTP route.
        `body_bytes` is the size of the body a parsed `raw` came from (else len(raw)): from
        offload.OFF_LOOP_BYTES on, parsing and counting the prompt run off the event loop."""
        started = time.perf_counter()
        if body_bytes is None:
            body_bytes = len(raw) if isinstance(raw, (bytes, bytearray)) else 0
        request_id = request_id or f"req_{uuid.uuid4().hex}"
        try:
            if body_bytes >= OFF_LOOP_BYTES:     # a large body: parse and count it off the event loop
                req, prompt_tokens = await run_heavy(body_bytes, _parse_and_count, raw, parse)
            else:
                req = raw if isinstance(raw, ChatRequest) else parse(raw)   # the route may parse it
                text = req.prompt_text()
                if needs_tokenizer(text):      # first long prompt: load the tokenizer off the event loop
                    await asyncio.to_thread(load_tokenizer)
                prompt_tokens = _prompt_tokens(req, text)
            wtp = req.willingness_to_pay
            if wtp is None:
                wtp = parse_willingness_to_pay(wtp_header, WTP_HEADER)
            if wtp is None:
                wtp = getattr(auth.key, "willingness_to_pay", None)
            planner = self.d.planner
            planner.check_strategy(req.strategy or strategy_header, "route" if req.strategy else STRATEGY_HEADER)
            strategy = req.strategy or strategy_header or auth.key.strategy
            if body_bytes >= OFF_LOOP_BYTES and req.model == AUTO_MODEL:   # hash and featurise it off the loop
                await run_heavy(body_bytes, planner.prepare, req, str(auth.key.id), strategy)
            # a remote sticky store (Redis) is asked before planning, off the loop; in-process: inside plan
            recall = await planner.recall(req, str(auth.key.id)) if planner.needs_recall(req) else None
            plan = planner.plan(req, prompt_tokens, allowlist=auth.key.allowed_models, strategy=strategy,
                                willingness_to_pay=wtp, scope=str(auth.key.id), recall=recall)
            choices = req.body.get("n") or 1        # every choice may generate the whole output
            worst_out = choices * max(req.max_tokens or a.model.output_cap for a in plan.attempts)
            ticket, limit_headers = await self._acquire_limits(auth, request_id, prompt_tokens + worst_out)
        except RouterOneError as exc:
            self.refused(exc, request_id=request_id, echo_id=echo_id or request_id, auth=auth,
                         route=protocol)
            raise
        try:
            worst = max(a.model.price.worst_case_micros(prompt_tokens, choices * (req.max_tokens or a.model.output_cap),
                                                        auth.account.markup_bps) for a in plan.attempts)
            hold = await self.d.billing.reserve(auth, request_id, worst)
        except BaseException as exc:
            if ticket:
                await self.d.limiter.release(ticket, 0)
            if isinstance(exc, RouterOneError):
                self.refused(exc, request_id=request_id, echo_id=echo_id or request_id, auth=auth,
                             route=req.protocol)
            raise
        call = Call(request_id, started, auth, req, plan, prompt_tokens, hold, ticket, limit_headers,
                    echo_id=echo_id or request_id)
        try:
            if req.stream:
                return await open_stream(self, call)
            return await self._complete_json(call)
        except BaseException as exc:
            await self._fail(call, exc)
            raise

    async def _acquire_limits(self, auth: AuthContext, request_id: str, tokens: int) -> tuple[LimitTicket | None, dict]:
        s, k, a = self.d.settings, auth.key.limits, auth.account.limits
        rules = [LimitRule(f"key:{auth.key.id}", k.rpm or s.default_rpm, k.tpm or s.default_tpm,
                           k.concurrency or s.default_concurrency)]
        if a.rpm or a.tpm or a.concurrency:
            rules.append(LimitRule(f"acct:{auth.account.id}", a.rpm, a.tpm, a.concurrency))
        rules = [r for r in rules if r.rpm or r.tpm or r.concurrency]
        if not rules:
            return None, {}
        decision = await self.d.limiter.acquire(rules, request_id, tokens)
        if not decision.allowed and decision.reason == DenyReason.UNAVAILABLE:   # not the caller's limit
            raise ServiceUnavailable("Rate limits cannot be checked right now (the limiter is unavailable); "
                                     "retry shortly", code="limiter_unavailable")
        if not decision.allowed and decision.reason == DenyReason.TOKENS_EXCEED_TPM:
            # more than the whole per-minute budget: waiting never helps, so no Retry-After and the
            # SDKs are told not to retry (they would wait a minute, twice, for the same answer)
            tpm = next((r.tpm for r in rules if r.scope == decision.denied_scope), None)
            whose = "account" if (decision.denied_scope or "").startswith("acct:") else "key"
            raise RateLimited(f"Rate limit exceeded: this request may use up to {tokens} tokens (its input plus the "
                              f"most it may generate), more than this {whose}'s limit of {tpm} tokens per minute; it "
                              "cannot succeed as it is: lower max_tokens or shorten the input",
                              headers={**decision.headers, "x-should-retry": "false"})
        if not decision.allowed:
            retry = max(1, int(decision.retry_after_s + 0.999))
            raise RateLimited(headers={**decision.headers, "Retry-After": str(retry)})
        return decision.ticket, dict(decision.headers)

    async def _complete_json(self, call: Call) -> Reply:
        attempt, result = await self.run_attempts(call, self.build_json, self._send_json)
        usage = await usage_to_bill(result.usage, prompt_tokens=call.prompt_tokens,
                                    has_output=lambda: bool(_output_text(result.response)),
                                    count=lambda: _estimated_usage(call, result.response))
        usage = self.d.billing.check_usage(call.request_id, usage)
        record = self.usage_record(call, attempt, usage, status=200)
        settlement = await self.d.billing.settle(call.hold, attempt.model.price, usage, record)
        resp = result.response
        rid, created = resp.get("id"), resp.get("created")
        # the envelope with the protocol's types whatever the upstream sent (a stream's chunks are stamped alike)
        resp["id"] = rid if rid.__class__ is str and rid else f"chatcmpl-{call.request_id}"
        resp["object"] = "chat.completion"
        if created.__class__ is not int or not 0 <= created < 1 << 32:
            resp["created"] = int(time.time())
        resp["model"] = attempt.model.id
        resp["usage"] = {**usage.to_openai(), "cost": settlement.charged_micros / 1_000_000}
        if result.native is not None and call.req.native is not None:
            resp["_native"] = result.native   # the upstream spoke the client's protocol: its own body
        else:
            resp.pop("_native", None)         # Router One's key: never an upstream's (pass-through of anything)
        logs_text = self.d.request_log is not None and self.d.request_log.content
        await self.finish(call, attempt, usage, settlement.charged_micros, status=200, record=record,
                          completion_text=_choice_text(resp) if logs_text else None)
        headers = call.headers(attempt)
        headers["x-routerone-cost"] = f"{settlement.charged_micros / 1_000_000:.6f}"
        headers["x-routerone-overhead-ms"] = f"{(time.perf_counter() - call.started) * 1000 - call.upstream_ms:.3f}"
        return Reply(200, headers, orjson.dumps(resp))

    @staticmethod
    def build_json(call: Call, attempt: Attempt) -> UpstreamRequest:
        return adapter_for(attempt.deployment.vendor.protocol).build_request(
            call.request_for(attempt), attempt.deployment, stream=False)

    async def _send_json(self, call: Call, attempt: Attempt, up: UpstreamRequest):
        adapter = adapter_for(attempt.deployment.vendor.protocol)
        t0 = time.perf_counter()
        resp = await self.d.transport.send(up, provider=attempt.deployment.vendor.name)
        elapsed_ms = (time.perf_counter() - t0) * 1000
        call.upstream_ms += elapsed_ms
        if resp.status >= 400:
            raise adapter.map_error(resp.status, resp.headers, resp.body, attempt.deployment)
        result = adapter.parse_response(resp.body, attempt.deployment)
        self.d.health.record_success(attempt.deployment.id, ttft_ms=None, duration_ms=elapsed_ms,
                                     completion_tokens=result.usage.completion_tokens if result.usage else 0)
        return result

    # -- executing a plan -----------------------------------------------------------------------
    async def run_attempts(self, call: Call, build, send):
        """Try the plan's attempts in order; on a retryable error move on, backing off between
        rounds and honouring Retry-After. `build(call, attempt)` makes an attempt's upstream request
        (once per deployment, before its rate cap is taken) and `send(call, attempt, built)` sends it.
        A deployment whose adapter refuses a parameter (UnsupportedParameter from `build`: nothing
        taken, nothing sent, no retry counted) is skipped for one that can honour it; the
        refusal is the answer when none can. A non-retryable error is raised at once. A deployment is
        not tried again in this request when it will answer the same until an operator acts (a
        rejected key, a drained account), gave no first byte in time (UpstreamNoResponse), asks
        for a longer wait than MAX_RETRY_WAIT_S, or has spent its retry budget (Health: first
        attempts and failover to another deployment are never throttled)."""
        last: UpstreamError | None = None
        refused: UnsupportedParameter | None = None    # the first deployment's refusal of a parameter
        budget = len(call.plan.attempts) + self.d.settings.max_retries
        tries = sent = 0
        stuck: set[str] = set()   # deployments not to try again in this request
        tried: set[str] = set()   # deployments tried in this request: another try is a retry
        built: dict[str, object] = {}   # each deployment's upstream request, made once
        while tries < budget:
            for attempt in call.plan.attempts:
                if tries >= budget:
                    break
                dep_id = attempt.deployment.id
                if dep_id in stuck or (dep_id in tried and self._retry_throttled(dep_id, stuck)):
                    continue
                tries += 1
                tried.add(dep_id)
                if dep_id not in built:
                    try:
                        built[dep_id] = build(call, attempt)
                    except UnsupportedParameter as exc:
                        stuck.add(dep_id)
                        call.tried.append(f"{dep_id} (unsupported {exc.param})")
                        refused = refused or exc
                        continue
                if not await self._deployment_capacity(call, attempt, tries):
                    last = last or UpstreamRateLimited(f"{dep_id} is at its configured rate cap",
                                                       provider=attempt.deployment.vendor.name, retry_after_s=1)
                    continue
                if sent and self.d.metrics is not None:
                    self.d.metrics.retries.inc()
                sent += 1
                try:
                    return attempt, await send(call, attempt, built[dep_id])
                except UpstreamError as exc:
                    if exc.retryable:    # a 400 is about the request, not the deployment's health
                        self.d.health.record_failure(dep_id)
                    if self.d.metrics is not None:
                        self.d.metrics.upstream_errors.labels(attempt.deployment.vendor.name, exc.metric_code).inc()
                    call.tried.append(f"{dep_id} ({exc.upstream_status or exc.code})")
                    if not exc.retryable:
                        raise
                    if not exc.retry_same_deployment or (exc.retry_after_s or 0.0) > MAX_RETRY_WAIT_S:
                        stuck.add(dep_id)
                    last = exc
            if tries < budget:     # no back-off for a round with nothing left to try
                for dep_id in tried - stuck:
                    self._retry_throttled(dep_id, stuck)
            if stuck and all(a.deployment.id in stuck for a in call.plan.attempts):
                break
            if last is None and refused is not None:
                break       # every other deployment was skipped (at its rate cap) or refused too
            if tries < budget:
                wait_s = min(last.retry_after_s or 0.25 * tries, MAX_RETRY_WAIT_S) if last else 0.0
                await asyncio.sleep(wait_s)
        if last is None and refused is not None:
            raise refused
        assert last is not None
        raise last

    def _retry_throttled(self, dep_id: str, stuck: set[str]) -> bool:
        """The deployment's retry budget is spent: no more tries of it in this request (counted once)."""
        if self.d.health.retry_allowed(dep_id):
            return False
        stuck.add(dep_id)
        if self.d.metrics is not None:
            self.d.metrics.retries_throttled.inc()
        return True

    async def _deployment_capacity(self, call: Call, attempt: Attempt, n: int) -> bool:
        """Per-deployment upstream caps: never send a provider more than its quota; a capped
        deployment is skipped (recorded in x-routerone-fallbacks), not hammered."""
        dep = attempt.deployment
        if not (dep.rpm or dep.tpm):
            return True
        tokens = call.prompt_tokens + (call.req.max_tokens or attempt.model.output_cap)
        decision = await self.d.limiter.acquire([LimitRule(f"dep:{dep.id}", dep.rpm, dep.tpm)],
                                                f"{call.request_id}:{n}", tokens)
        if not decision.allowed:
            call.tried.append(f"{dep.id} (at its rate cap)")
            return False
        if call.dep_ticket is not None:
            self.spawn(self.d.limiter.release(call.dep_ticket, call.dep_ticket.tokens))
        call.dep_ticket = decision.ticket
        return True

    # -- bookkeeping ----------------------------------------------------------------------------
    def usage_record(self, call: Call, attempt: Attempt | None, usage: Usage | None, *, status: int,
                     error_type: str | None = None, ttft_ms: float | None = None) -> UsageRecord:
        """The request's usage row, to be written with its settle (Billing.settle / release set
        its cost to the charge)."""
        u = usage or Usage()
        return UsageRecord(
            request_id=call.request_id, key_id=call.auth.key.id, account_id=call.auth.account.id,
            requested_model=call.req.model, routed_model=attempt.model.id if attempt else "",
            provider=attempt.deployment.vendor.name if attempt else "", prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens, cached_tokens=u.cached_tokens, cost_micros=0,
            latency_ms=(time.perf_counter() - call.started) * 1000, ttft_ms=ttft_ms, status=status,
            error_type=error_type, stream=call.req.stream, created_at=time.time(),
            route_reason=call.plan.reason[:500] or None, fallbacks=", ".join(call.tried)[:500] or None,
            protocol=call.req.protocol)

    async def finish(self, call: Call, attempt: Attempt | None, usage: Usage | None, cost_micros: int, *,
                     status: int, error_type: str | None = None, ttft_ms: float | None = None,
                     completion_text: str | None = None, record: UsageRecord | None = None) -> None:
        """Give back limiter slots (before the reply goes out, so a client's next request finds
        its concurrency slot free), then the metrics and the request log line. `record` is the
        usage row already handed to the settle; without one, a row is made and queued (the
        UsageWriter). `error_type` is a metric label: Router One's own code (`RouterOneError.metric_code`).
        `completion_text` is read only when the operator turned `log_content` on."""
        tickets = [t for t in (call.ticket, call.dep_ticket) if t is not None]
        call.ticket = call.dep_ticket = None
        for ticket in tickets:
            await self.d.limiter.release(ticket, usage.total_tokens if usage else 0)
        u = usage or Usage()
        if record is None:
            record = self.usage_record(call, attempt, usage, status=status, error_type=error_type, ttft_ms=ttft_ms)
            record.cost_micros = cost_micros
            self.d.usage.add(record)
        rl = self.d.request_log
        if rl is not None and rl.wants(status):
            rl.emit(record, echo_id=call.echo_id, prompt=call.req.prompt_text() if rl.content else None,
                    completion=completion_text)
        m = self.d.metrics
        if m is not None:
            self.routes.inc(call.req.protocol, status)
            m.record_request(attempt.model.id if attempt else "", attempt.deployment.vendor.name if attempt else "",
                             status, error_type, time.perf_counter() - call.started,
                             ttft_ms / 1000 if ttft_ms is not None else None, u.prompt_tokens,
                             u.completion_tokens, cost_micros)
            if not call.req.stream and attempt is not None:
                m.overhead.observe(max(0.0, time.perf_counter() - call.started - call.upstream_ms / 1000))

    def refused(self, exc: RouterOneError, *, request_id: str, echo_id: str, auth: AuthContext | None = None,
                route: str = "chat") -> None:
        """A request refused before any upstream call (bad input, auth, limits, balance): counted in
        routerone_rejections by error code (and routerone_route_requests by route), and logged (see
        observability.logs.RequestLog)."""
        if self.d.metrics is not None:
            self.d.metrics.rejections.labels(exc.metric_code).inc()
            self.routes.inc(route, exc.status)
        rl = self.d.request_log
        if rl is not None and rl.wants(exc.status):
            rl.refused(request_id=request_id, echo_id=echo_id, status=exc.status, error_type=exc.code or exc.type,
                       key_id=auth.key.id if auth else None, account_id=auth.account.id if auth else None)

    async def _fail(self, call: Call, exc: BaseException) -> None:
        err = exc if isinstance(exc, RouterOneError) else None
        status, code = (err.status, err.code) if err else (500, type(exc).__name__)
        record = self.usage_record(call, None, None, status=status, error_type=code)
        await self.d.billing.release(call.hold, record)      # the row keeps the code the client saw
        await self.finish(call, None, None, 0, status=status, error_type=err.metric_code if err else code,
                          record=record)

    def spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def drain(self, timeout_s: float = 30.0) -> None:
        if self.background:
            await asyncio.wait(list(self.background), timeout=timeout_s)


def _prompt_tokens(req: ChatRequest, text: str) -> int:
    return count_prompt_tokens(text, len(req.messages)) + (IMAGE_TOKENS if req.has_images else 0)


def _parse_and_count(raw: bytes | ChatRequest, parse: Callable[[bytes], ChatRequest]) -> tuple[ChatRequest, int]:
    """Parse (unless parsed) and count the prompt: the CPU-heavy part of a large request, run in
    offload's pool (the tokenizer loads there too, on first need)."""
    req = raw if isinstance(raw, ChatRequest) else parse(raw)
    return req, _prompt_tokens(req, req.prompt_text())


async def _estimated_usage(call: Call, resp: dict) -> Usage:
    """An upstream that reported no usage: the prompt counted by Router One (Call.counted_prompt_tokens), the completion
    counted from the reply's text (content, reasoning_content or vLLM's reasoning, and tool-call
    arguments), as a stream's would be."""
    text = _output_text(resp)
    if text and not tokenizer_loaded():     # counting any text loads it: ~1 s the first time, not on the event loop
        await asyncio.get_running_loop().run_in_executor(None, load_tokenizer)
    return Usage(await call.counted_prompt_tokens(), count_text_tokens(text), estimated=True)


def _output_text(resp: dict) -> str:
    """The reply's output as counted for billing: content, reasoning_content or vLLM's reasoning,
    tool calls' names and arguments ("" if none)."""
    parts = []
    for choice in resp.get("choices") or ():
        msg = choice.get("message") or {}
        parts.extend(reasoning_texts(msg))     # the same text as both fields: once
        if isinstance(msg.get("content"), str):     # a list of parts was joined already (guarded.parse_response)
            parts.append(msg["content"])
        for tc in msg.get("tool_calls") or ():
            fn = tc.get("function") or {}
            parts.extend(v for v in (fn.get("name"), fn.get("arguments")) if isinstance(v, str))
    return "\n".join(parts)


def _choice_text(resp: dict) -> str:
    """The completion's text for the request log: every choice's content, tool calls as JSON."""
    parts = []
    for choice in resp.get("choices") or []:
        msg = choice.get("message") or {}
        if msg.get("content"):
            parts.append(msg["content"])
        parts.extend(orjson.dumps(tc).decode() for tc in msg.get("tool_calls") or [])
    return "\n".join(parts)

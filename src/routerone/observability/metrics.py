"""Prometheus metrics on a per-app registry (prometheus-client: the reference client library).

With `--workers N` every worker keeps its own registry and answers `/metrics` for itself; scrape
each worker or run one worker per port behind the balancer.
"""
from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("routerone_requests", "Chat requests by outcome",
                                ["model", "provider", "status", "error_type"], registry=r)
        self.latency = Histogram("routerone_request_latency_seconds", "End-to-end request latency",
                                 ["model"], buckets=_LATENCY_BUCKETS_S, registry=r)
        self.ttft = Histogram("routerone_time_to_first_token_seconds", "Streaming time to first token",
                              ["model"], buckets=_LATENCY_BUCKETS_S, registry=r)
        self.overhead = Histogram("routerone_gateway_overhead_seconds", "Time spent in Router One itself",
                                  buckets=_OVERHEAD_BUCKETS_S, registry=r)
        self.tokens = Counter("routerone_tokens", "Tokens by model and kind", ["model", "kind"], registry=r)
        self.cost = Counter("routerone_cost_micros", "Charged cost in micro-dollars", ["model"], registry=r)
        self.upstream_errors = Counter("routerone_upstream_errors", "Upstream failures by provider and code",
                                       ["provider", "code"], registry=r)
        self.retries = Counter("routerone_retries", "Attempts beyond the first", registry=r)
        self.rejections = Counter("routerone_rejections", "Requests refused before any upstream call",
                                  ["reason"], registry=r)
        self._children: dict[tuple, tuple] = {}

    def gauge(self, name: str, doc: str, fn: Callable[[], float]) -> None:
        Gauge(name, doc, registry=self.registry).set_function(fn)

    def record_request(self, model: str, provider: str, status: int, error_type: str | None,
                       latency_s: float, ttft_s: float | None, prompt_tokens: int, completion_tokens: int,
                       cost_micros: int) -> None:
        key = (model, provider, status, error_type)
        children = self._children.get(key)
        if children is None:          # labels() validates and locks on every call: look them up once
            children = self._children[key] = (
                self.requests.labels(model, provider, str(status), error_type or ""),
                *((self.latency.labels(model), self.ttft.labels(model), self.tokens.labels(model, "prompt"),
                   self.tokens.labels(model, "completion"), self.cost.labels(model)) if model else ()))
        children[0].inc()
        if model:
            _, latency, ttft, prompt, completion, cost = children
            latency.observe(latency_s)
            if ttft_s is not None:
                ttft.observe(ttft_s)
            if prompt_tokens:
                prompt.inc(prompt_tokens)
            if completion_tokens:
                completion.inc(completion_tokens)
            if cost_micros:
                cost.inc(cost_micros)

    def render(self) -> bytes:
        return generate_latest(self.registry)

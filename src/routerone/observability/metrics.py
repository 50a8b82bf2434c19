"""Prometheus metrics on a per-app registry (prometheus-client: the reference client library).

One process: callback gauges read the live values at scrape time.

`serve --workers N`: server.py points PROMETHEUS_MULTIPROC_DIR at a fresh directory before the
workers start, which puts prometheus-client in its multiprocess mode: every worker writes its
values to its own mmap'ed files there, and whichever worker answers a scrape reads all of them
(`MultiProcessCollector`): counters summed, histograms merged bucket by bucket. So one scrape
reports the whole server. Costs ~3 us more per request (measured: record_request 3.1 -> 6.2 us);
a single worker keeps the plain in-memory values (and in multiprocess mode each value asks for the
process id, to notice a fork, from a cached copy: `os.getpid()` is a system call, ~10 a request).
Multiprocess mode has no callback gauges, so in
it each gauge is a plain gauge that every worker refreshes from the same callback every
`GAUGE_REFRESH_S` (and the answering worker just before the scrape): "sum" across workers for the
running totals, "livesum" for the queue depth (only live workers count). A gauge read in another
worker may thus be up to `GAUGE_REFRESH_S` old; counters and histograms are exact.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "CONTENT_TYPE_LATEST", "MULTIPROC_ENV", "GAUGE_REFRESH_S"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
GAUGE_REFRESH_S = 1.0

_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def _cached_pid() -> int:
    return _PID[0]


def _multiprocess_values() -> None:
    """prometheus-client's multiprocess values with the process id read from `_PID` (kept right by
    the fork hook) instead of a getpid system call per value update; once per process, before any
    value exists (each value class keeps its own files, named by pid)."""
    from prometheus_client import values
    if getattr(values.ValueClass, "_routerone", False) or not getattr(values.ValueClass, "_multiprocess", False):
        return                     # done, or prometheus-client was imported outside multiprocess mode
    cls = values.MultiProcessValue(process_identifier=_cached_pid)
    cls._routerone = True
    values.ValueClass = cls


class Metrics:
    def __init__(self) -> None:
        _multiprocess_values()
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
        self.retries_throttled = Counter("routerone_retries_throttled", "Retries not made: the deployment's "
                                         "retry budget was spent", registry=r)
        self.rejections = Counter("routerone_rejections", "Requests refused before any upstream call",
                                  ["reason"], registry=r)
        self._children: dict[tuple, tuple] = {}
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self._polled: list[tuple[Gauge, Callable[[], float]]] = []
        self._refresher: asyncio.Task | None = None

    def gauge(self, name: str, doc: str, fn: Callable[[], float], *, live: bool = False) -> None:
        """A gauge read from `fn`. `live`: a level (a queue depth) rather than a running total,
        summed over live workers only in multiprocess mode."""
        if self.multiprocess_dir is None:
            Gauge(name, doc, registry=self.registry).set_function(fn)
            return
        g = Gauge(name, doc, registry=self.registry, multiprocess_mode="livesum" if live else "sum")
        self._polled.append((g, fn))

    def refresh_gauges(self) -> None:
        for g, fn in self._polled:
            g.set(fn())

    def start(self) -> None:
        """In multiprocess mode, refresh the gauges every GAUGE_REFRESH_S (needs a running loop)."""
        if self._polled and self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        self.refresh_gauges()          # the last values of a worker that stops

    async def _refresh_loop(self) -> None:
        while True:
            self.refresh_gauges()
            await asyncio.sleep(GAUGE_REFRESH_S)

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
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector
        self.refresh_gauges()
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)
        return generate_latest(merged)

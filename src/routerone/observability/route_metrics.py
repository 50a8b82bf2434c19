"""`routerone_route_requests{route, status}`: requests per client protocol (chat, messages,
responses, embeddings) and HTTP status.

A counter of its own rather than a `route` label on `routerone_requests`: that counter's label set
is summed across workers and read by existing dashboards, and its children are cached per
(model, provider, status, error) on the hot path; one more small counter changes neither.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

__all__ = ["RouteCounter"]


class RouteCounter:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = Counter("routerone_route_requests", "Requests by client protocol route and HTTP status",
                               ["route", "status"], registry=registry)
        self._children: dict[tuple[str, int], object] = {}

    def inc(self, route: str, status: int) -> None:
        child = self._children.get((route, status))
        if child is None:        # labels() validates and locks: look each child up once
            child = self._children[(route, status)] = self.counter.labels(route, str(status))
        child.inc()   # type: ignore[attr-defined]

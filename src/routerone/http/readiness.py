"""Readiness and the in-flight count a graceful drain waits on.

`/healthz` is liveness: the process answers. `/readyz` is readiness: 503 as soon as a drain starts
(server.py sets `draining` on SIGTERM), and while the database or, under the closed Redis failure
policy, Redis does not answer a ping. The dependency check runs at most once per `cache_s` however
many probes arrive (concurrent probes share it), so a probe is cheap.

Readiness means "a request that needs the store would not wait on it": the store's ping asks for
the locks the request path's writes take (it writes nothing) and waits at most PING_LOCK_WAIT_MS
(250 ms), so another session holding a table lock (PostgreSQL `LOCK TABLE ... EXCLUSIVE`, a
migration's ACCESS EXCLUSIVE, another SQLite writer) answers 503 `{"database": "locked"}`, and a
database that does not answer within PING_TIMEOUT_S, 503 `{"database": "timeout"}`. Liveness
(/healthz) never asks the store.

`track` is a middleware that counts requests and streams in flight, for the drain's log line.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web

from ..limits.base import Limiter
from ..store.base import Store
from ..store.errors import StoreLocked
from .render import json_response

__all__ = ["Readiness", "READINESS", "add_readiness_routes"]

PING_TIMEOUT_S = 1.0


@dataclass
class Readiness:
    store: Store
    limiter: Limiter
    limiter_required: bool                 # Redis limiter with failure_policy = "closed"
    cache_s: float = 1.0
    draining: bool = False
    in_flight: int = 0                     # requests whose handler has not returned
    streams: int = 0                       # of those, streamed responses already started
    completed: int = 0
    _checked_at: float = -1e9
    _problems: dict[str, str] = field(default_factory=dict)
    _check: asyncio.Future | None = None

    @web.middleware
    async def track(self, request: web.Request, handler):
        self.in_flight += 1
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1
            self.completed += 1
            if request.get(_STREAMING):
                self.streams -= 1

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """A streamed response started: counted until its handler returns."""
        if response.content_type == "text/event-stream":
            self.streams += 1
            request[_STREAMING] = True

    async def dependency_problems(self) -> dict[str, str]:
        """{dependency: problem} from the last check, re-checked when older than `cache_s`."""
        if time.monotonic() - self._checked_at < self.cache_s:
            return self._problems
        if self._check is None or self._check.done():
            self._check = asyncio.ensure_future(self._run_checks())
        return await asyncio.shield(self._check)     # a probe that goes away does not cancel it

    async def _run_checks(self) -> dict[str, str]:
        checks = {"database": self.store.ping()}
        if self.limiter_required:
            checks["redis"] = self.limiter.ping()
        results = await asyncio.gather(*(asyncio.wait_for(c, PING_TIMEOUT_S) for c in checks.values()),
                                       return_exceptions=True)
        # the exception's type only: a driver's message may name hosts or users
        self._problems = {name: _reason(r) for name, r in zip(checks, results) if isinstance(r, BaseException)}
        self._checked_at = time.monotonic()
        return self._problems


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, StoreLocked):
        return "locked"
    return type(exc).__name__


_STREAMING = web.RequestKey("routerone_streaming", bool)
READINESS: web.AppKey[Readiness] = web.AppKey("routerone_readiness", Readiness)


async def readyz(request: web.Request) -> web.Response:
    r = request.app[READINESS]
    if r.draining:
        return json_response({"status": "draining"}, status=503)
    problems = await r.dependency_problems()
    if problems:
        return json_response({"status": "unready", "unreachable": problems}, status=503)
    return json_response({"status": "ready"})


def add_readiness_routes(app: web.Application, readiness: Readiness) -> None:
    app[READINESS] = readiness
    app.middlewares.append(readiness.track)
    app.on_response_prepare.append(readiness.on_prepare)
    app.router.add_get("/readyz", readyz)


"""Run the gateway: one process, or `--workers N` processes sharing the port (SO_REUSEPORT)."""
from __future__ import annotations

import asyncio
import multiprocessing
import signal
import sys
from typing import Awaitable, Callable

from aiohttp import web

from .app import create_app
from .observability.logs import configure_logging
from .settings import Settings

try:
    import uvloop
except ImportError:  # pragma: no cover - Windows
    uvloop = None

__all__ = ["serve", "run_worker"]


def _loop_policy() -> None:
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_worker(settings: Settings, reuse_port: bool = False) -> None:
    configure_logging(settings.log_level)
    _loop_policy()
    web.run_app(create_app(settings), host=settings.host, port=settings.port, access_log=None,
                print=None, reuse_port=reuse_port, shutdown_timeout=30)


def serve(settings: Settings, *, bootstrap: Callable[[Settings], Awaitable[list[str]]]) -> int:
    if settings.workers > 1 and not (settings.limiter == "redis" or (settings.limiter == "auto" and settings.redis_url)):
        print("routerone: --workers > 1 needs the Redis limiter so limits hold across processes.\n"
              "Set ROUTERONE_REDIS_URL=redis://127.0.0.1:6379/0 (or redis_url in the config file).",
              file=sys.stderr)
        return 2
    for line in asyncio.run(bootstrap(settings)):
        print(line)
    url = f"http://{settings.host}:{settings.port}"
    print(f"Router One listening on {url}  (OpenAI base_url: {url}/v1; workers: {settings.workers})", flush=True)
    if settings.workers == 1:
        run_worker(settings)
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=run_worker, args=(settings, True), daemon=False) for _ in range(settings.workers)]
    for p in procs:
        p.start()

    def stop(*_):
        for p in procs:
            if p.is_alive():
                p.terminate()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for p in procs:
        p.join()
    return 0

"""Run an aiohttp application on 127.0.0.1 in a background thread with its own event loop.

Used by tests and the benchmark so that sync clients (the `openai` SDK's `OpenAI`) and async ones
can both talk to real sockets without sharing the server's loop.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Awaitable, Callable

from aiohttp import web

__all__ = ["ThreadedServer"]


class ThreadedServer:
    """`with ThreadedServer(make_app) as srv: srv.url` — make_app runs inside the server's loop."""

    def __init__(self, make_app: Callable[[], web.Application | Awaitable[web.Application]],
                 *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._make_app = make_app
        self.host, self.port = host, port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="threaded-server")
        self._runner: web.AppRunner | None = None
        self.app: web.Application | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _start(self) -> None:
        app = self._make_app()
        if asyncio.iscoroutine(app):
            app = await app
        self.app = app
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> "ThreadedServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def call(self, coro, timeout: float = 30):
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._runner is not None:
            try:
                self.call(self._runner.cleanup(), timeout=30)
            finally:
                self._runner = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()

    def __enter__(self) -> "ThreadedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

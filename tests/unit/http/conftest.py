"""Fixtures for the listening-socket tests: an aiohttp server that answers `GET /?n=X` with
`hi X`, and a non-blocking listening socket on a free loopback port; neither accepts by itself."""
from __future__ import annotations

import socket
from typing import AsyncIterator, Iterator

import pytest
from aiohttp import web


@pytest.fixture
async def hello_runner() -> AsyncIterator[web.AppRunner]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi " + request.query.get("n", ""))
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield runner
    finally:
        await runner.cleanup()


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0), backlog=128)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()

"""AcceptPoller (http/accept.py): connections taken from the listening socket on a timer reach the
aiohttp server like any other; after stop() it takes none; a closed socket ends the polling."""
from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp import web

from routerone.http.accept import ACCEPT_IDLE_MAX_S, ACCEPT_POLL_S, AcceptPoller


async def _server():
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi " + request.query.get("n", ""))
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0), backlog=128)
    sock.setblocking(False)
    return runner, sock, sock.getsockname()[1]


async def test_poller_alone_serves_every_connection():
    # no site: the poller is the only thing that accepts on this socket
    runner, sock, port = await _server()
    poller = AcceptPoller(sock, runner.server)
    poller.start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            async def one(i: int) -> str:
                async with s.get(f"http://127.0.0.1:{port}/?n={i}") as r:
                    assert r.status == 200
                    return await r.text()
            texts = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(40))), 10)
        assert texts == [f"hi {i}" for i in range(40)]
        assert poller.accepted == 40
    finally:
        poller.stop()
        sock.close()
        await runner.cleanup()


async def test_stopped_poller_accepts_nothing_and_a_closed_socket_ends_it():
    runner, sock, port = await _server()
    poller = AcceptPoller(sock, runner.server)
    poller.start()
    poller.stop()
    client = socket.create_connection(("127.0.0.1", port))
    try:
        await asyncio.sleep(ACCEPT_POLL_S * 20)
        assert poller.accepted == 0
        poller.start()
        await asyncio.sleep(ACCEPT_POLL_S * 20)
        assert poller.accepted == 1          # the waiting connection is taken once polling resumes
        sock.close()
        await asyncio.sleep(ACCEPT_IDLE_MAX_S * 3)
        assert poller._timer is None          # the closed socket stopped the polling
    finally:
        client.close()
        poller.stop()
        await runner.cleanup()


async def test_an_idle_poller_backs_off_and_a_connection_brings_it_back():
    runner, sock, port = await _server()
    poller = AcceptPoller(sock, runner.server)
    poller.start()
    client = None
    try:
        await asyncio.sleep(0.5)
        # at a fixed ACCEPT_POLL_S that would be ~250 polls; backing off to ACCEPT_IDLE_MAX_S, ~30
        assert poller.polls <= 0.5 / ACCEPT_IDLE_MAX_S + 10, poller.polls
        assert poller._interval_s == ACCEPT_IDLE_MAX_S
        poller.stop()                      # from here the polls are driven by hand, one at a time
        client = socket.create_connection(("127.0.0.1", port))   # queued: the poller took over accept
        poller._poll()
        assert poller.accepted == 1 and poller._interval_s == ACCEPT_POLL_S   # found one: fast again
        poller.stop()
        poller._poll()
        assert poller.accepted == 1 and poller._interval_s == 2 * ACCEPT_POLL_S   # found none: slower
    finally:
        if client is not None:
            client.close()
        poller.stop()
        sock.close()
        await runner.cleanup()

"""AcceptPoller (http/accept.py): connections taken from the listening socket on a timer reach the
aiohttp server like any other; after stop() it takes none; a closed socket ends the polling; an
idle poller backs off and a connection brings it back to the fast interval."""
from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from routerone.http.accept import ACCEPT_IDLE_MAX_S, ACCEPT_POLL_S, AcceptPoller


@dataclass
class Served:
    poller: AcceptPoller
    sock: socket.socket
    port: int


@pytest.fixture
async def served(hello_runner: web.AppRunner, listening: socket.socket) -> AsyncIterator[Served]:
    """An aiohttp server with no site: a started AcceptPoller is the only thing that accepts on its
    listening socket."""
    poller = AcceptPoller(listening, hello_runner.server)
    poller.start()
    try:
        yield Served(poller, listening, listening.getsockname()[1])
    finally:
        poller.stop()


async def test_poller_alone_serves_every_connection(served: Served):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async def one(i: int) -> str:
            async with s.get(f"http://127.0.0.1:{served.port}/?n={i}") as r:
                assert r.status == 200
                return await r.text()
        texts = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(40))), 10)
    assert texts == [f"hi {i}" for i in range(40)]
    assert served.poller.accepted == 40


async def test_stopped_poller_accepts_nothing_and_a_closed_socket_ends_it(served: Served):
    poller = served.poller
    poller.stop()
    with socket.create_connection(("127.0.0.1", served.port)):
        await asyncio.sleep(ACCEPT_POLL_S * 20)
        assert poller.accepted == 0
        poller.start()
        await asyncio.sleep(ACCEPT_POLL_S * 20)
        assert poller.accepted == 1          # the waiting connection is taken once polling resumes
        served.sock.close()
        await asyncio.sleep(ACCEPT_IDLE_MAX_S * 3)
        assert poller._timer is None          # the closed socket stopped the polling


async def test_an_idle_poller_backs_off_to_its_longest_interval(served: Served):
    await asyncio.sleep(0.5)
    # at a fixed ACCEPT_POLL_S that would be ~250 polls; backing off to ACCEPT_IDLE_MAX_S, ~30
    assert served.poller.polls <= 0.5 / ACCEPT_IDLE_MAX_S + 10, served.poller.polls
    assert served.poller._interval_s == ACCEPT_IDLE_MAX_S


@pytest.mark.parametrize("interval_s, waiting, after_s", [
    (ACCEPT_IDLE_MAX_S, True, ACCEPT_POLL_S),            # found one: fast again
    (ACCEPT_POLL_S, False, 2 * ACCEPT_POLL_S),           # found none: twice as long
    (ACCEPT_IDLE_MAX_S, False, ACCEPT_IDLE_MAX_S),       # found none, already at the longest: stays
])
async def test_one_poll_sets_the_next_interval(served: Served, interval_s: float, waiting: bool, after_s: float):
    poller = served.poller
    poller.stop()                          # the polls are driven by hand, one at a time
    poller._interval_s = interval_s
    client = socket.create_connection(("127.0.0.1", served.port)) if waiting else None  # queued for the poll
    try:
        poller._poll()
        assert poller.accepted == (1 if waiting else 0)
        assert poller._interval_s == after_s
    finally:
        if client is not None:
            client.close()

"""Transport's idle timeout (a real aiohttp upstream on a socket): it counts only the time spent
waiting on the upstream, a stall mid-stream fails with UpstreamTimeout, and a read cancelled by
the caller (the hold before the first token does that) loses no bytes."""
from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from routerone.errors import UpstreamOverran, UpstreamTimeout
from routerone.providers.base import UpstreamRequest
from routerone.providers.transport import Timeouts, Transport

IDLE_S = 0.3


@pytest.fixture
async def upstream():
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"one")
        await asyncio.sleep(float(request.query["gap"]))
        await resp.write(b"two")
        return resp
    app = web.Application()
    app.router.add_post("/s", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]
    transport = Transport(Timeouts(1.0, 5.0, IDLE_S))
    yield lambda gap_s: transport.open(UpstreamRequest(f"http://127.0.0.1:{port}/s?gap={gap_s}", {}, b""))
    await transport.close()
    await runner.cleanup()


async def test_a_stall_longer_than_the_idle_timeout_fails_the_stream(upstream):
    stream = await upstream(0.8)
    try:
        assert await stream.read() == b"one"
        t0 = time.perf_counter()
        with pytest.raises(UpstreamTimeout):
            await stream.read()
        assert IDLE_S - 0.01 <= time.perf_counter() - t0 < IDLE_S + 0.5
    finally:
        stream.close()


async def test_time_the_caller_spends_elsewhere_does_not_count(upstream):
    stream = await upstream(0.2)
    try:
        assert await stream.read() == b"one"
        await asyncio.sleep(2 * IDLE_S)         # a slow client: we are not waiting on the upstream
        assert await stream.read() == b"two"
        assert await stream.read() == b""
    finally:
        stream.close()


async def test_a_cancelled_read_loses_nothing(upstream):
    stream = await upstream(0.25)
    try:
        assert await stream.read() == b"one"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await stream.read()
        assert await stream.read() == b"two"    # waited again, well within the idle timeout
    finally:
        stream.close()


@pytest.fixture(params=[True, False], ids=["http1", "aiohttp"])
async def trickle(request):
    """A body that never ends: a byte every 50 ms for up to 3 s (well within the idle timeout)."""
    async def handler(req: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(req)
        try:
            for _ in range(60):
                await resp.write(b"x")
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        return resp
    app = web.Application()
    app.router.add_post("/t", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]
    transport = Transport(Timeouts(1.0, 5.0, IDLE_S, STREAM_S), http1=request.param)
    yield lambda: transport.open(UpstreamRequest(f"http://127.0.0.1:{port}/t", {}, b""))
    await transport.close()
    await runner.cleanup()


STREAM_S = 0.6


async def test_a_body_trickling_past_the_stream_timeout_fails_waiting_or_not(trickle):
    """Reads that never wait `idle_s` went on for as long as the upstream liked; past `stream_s`
    (from the request sent) the stream fails, whether a read is waiting then or the caller is busy
    elsewhere (its next read raises)."""
    for busy_s in (0.0, 2 * STREAM_S):
        t0 = time.perf_counter()
        stream = await trickle()
        try:
            await asyncio.sleep(busy_s)
            with pytest.raises(UpstreamOverran, match="stream_timeout_s"):
                while await stream.read():
                    pass
            assert STREAM_S - 0.01 <= time.perf_counter() - t0 < STREAM_S + 0.5 + busy_s
        finally:
            stream.close()

"""http/sink.ChunkedSink, the way a pushed stream reaches its client: chunked frames on the real
transport, "full" past the high-water mark, a write deadline for a client that stopped reading,
and "gone" for one that left."""
from __future__ import annotations

import asyncio
import socket

import pytest

from routerone.http.sink import HIGH_WATER_BYTES, ChunkedSink


@pytest.fixture
async def pair():
    """(server-side transport, client socket that reads only when told)."""
    got: asyncio.Future = asyncio.get_running_loop().create_future()

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            got.set_result(transport)
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(server.sockets[0].getsockname())
    client.setblocking(False)
    transport = await got
    yield transport, client
    transport.close()
    client.close()
    server.close()


async def test_frames_are_chunked_and_a_full_client_says_so(pair):
    transport, client = pair
    sink = ChunkedSink(transport, write_timeout_s=5)
    assert sink.write(b"data: x\n\n") is True
    await asyncio.sleep(0.05)
    assert client.recv(100) == b"9\r\ndata: x\n\n\r\n"
    full = False
    for _ in range(10_000):                        # the client stops reading: buffers fill
        full = not sink.write(b"y" * 4096)
        if full:
            break
    assert full and transport.get_write_buffer_size() >= HIGH_WATER_BYTES


async def test_wait_writable_times_out_on_a_client_that_stopped_reading(pair):
    transport, _ = pair
    sink = ChunkedSink(transport, write_timeout_s=0.3)
    while sink.write(b"y" * 4096):
        pass
    with pytest.raises(TimeoutError):
        await sink.wait_writable()


async def test_wait_writable_true_once_the_client_reads_and_false_once_it_is_gone(pair):
    transport, client = pair
    sink = ChunkedSink(transport, write_timeout_s=5)
    while sink.write(b"y" * 4096):
        pass

    async def read_all():
        while transport.get_write_buffer_size():
            try:
                client.recv(1 << 16)
            except BlockingIOError:
                await asyncio.sleep(0.005)
    reader = asyncio.create_task(read_all())
    assert await sink.wait_writable() is True
    reader.cancel()
    transport.close()
    assert sink.write(b"late") is False
    assert await sink.wait_writable() is False

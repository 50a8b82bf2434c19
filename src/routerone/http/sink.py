"""A pushed stream's way to its client (services/streaming.ChatStream.push_to): the upstream's
chunks, already framed as SSE, written from the upstream's read callback straight to the client
connection as chunked-encoding frames, the way aiohttp's writer frames them. Used only after the
response's headers are out and only for a chunked response; the last bytes and the end of the body
still go through aiohttp (`write_eof`)."""
from __future__ import annotations

import asyncio

__all__ = ["ChunkedSink", "HIGH_WATER_BYTES"]

HIGH_WATER_BYTES = 32 * 1024     # unsent bytes for one client above which the upstream pauses
POLL_S = 0.01                    # a paused stream looks this often whether its client reads again


class ChunkedSink:
    __slots__ = ("_transport", "_write_timeout_s")

    def __init__(self, transport: asyncio.Transport, write_timeout_s: float) -> None:
        self._transport = transport
        self._write_timeout_s = write_timeout_s

    def write(self, data: bytes) -> bool:
        t = self._transport
        if t.is_closing():
            return False
        t.write(b"%x\r\n%b\r\n" % (len(data), data))
        return t.get_write_buffer_size() < HIGH_WATER_BYTES

    async def wait_writable(self) -> bool:
        """True once the client has taken the bytes below the high-water mark, False if it is gone;
        TimeoutError if it takes none for the write timeout (it stopped reading)."""
        t = self._transport
        async with asyncio.timeout(self._write_timeout_s):
            while True:
                if t.is_closing():
                    return False
                if t.get_write_buffer_size() < HIGH_WATER_BYTES // 2:
                    return True
                await asyncio.sleep(POLL_S)

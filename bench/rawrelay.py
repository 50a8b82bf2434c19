"""The floor below the floor: a chat-completions relay in raw asyncio protocols on uvloop, no HTTP library.

It parses only what a relay must (the request line, `Content-Length`, the upstream's status line and
chunked framing to know where a reply ends), forwards the client's body to the upstream on a pooled
keep-alive connection, and copies the upstream's bytes to the client as they arrive, unchanged (the
upstream's chunked framing is passed through). No auth, limits, billing, logging or JSON. It is not a
gateway: it is what the cheapest possible Python asyncio relay costs on this machine, to compare
with `passthrough.py` (the aiohttp floor) and Router One in bench/streams.py runs.

    python bench/rawrelay.py --port 9103 --upstream 127.0.0.1:9101
"""
from __future__ import annotations

import argparse
import asyncio

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

UPSTREAM_HEAD = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: upstream\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer sk-bench-upstream\r\nContent-Length: %d\r\n\r\n")


class Upstream(asyncio.Protocol):
    """One keep-alive connection to the upstream; relays one reply at a time to `client`."""

    def __init__(self, pool: list["Upstream"]) -> None:
        self.pool, self.transport, self.client = pool, None, None
        self.head_done, self.chunked, self.left, self.tail = False, False, 0, b""
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.ready.set_result(None)

    def send(self, client: "Client", body: bytes) -> None:
        self.client, self.head_done, self.tail = client, False, b""
        self.transport.write(UPSTREAM_HEAD % len(body) + body)

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:
            return
        client.transport.write(data)      # status line, headers and body pass through unchanged
        if not self.head_done:
            self.tail += data
            end = self.tail.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.tail[:end].lower()
            self.head_done, self.chunked = True, b"transfer-encoding: chunked" in head
            if not self.chunked:
                i = head.find(b"content-length:")
                self.left = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None]) if i >= 0 else 0
                self.left -= len(self.tail) - end - 4
            self.tail = self.tail[-5:]
        else:
            self.tail = (self.tail + data)[-5:]
            if not self.chunked:
                self.left -= len(data)
        if (self.chunked and self.tail.endswith(b"0\r\n\r\n")) or (not self.chunked and self.left <= 0):
            self.client = None
            client.finished()
            self.pool.append(self)

    def connection_lost(self, exc) -> None:
        if self in self.pool:
            self.pool.remove(self)
        if self.client is not None:
            self.client.transport.close()


class Client(asyncio.Protocol):
    def __init__(self, relay: "Relay") -> None:
        self.relay, self.transport, self.buf, self.keep_alive = relay, None, b"", True

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower()
        i = head.find(b"content-length:")
        j = head.find(b"\r\n", i)
        length = int(head[i + 15:j if j > 0 else None]) if i >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return
        body, self.buf = self.buf[end + 4:end + 4 + length], self.buf[end + 4 + length:]
        self.keep_alive = b"connection: close" not in head
        self.transport.pause_reading()
        asyncio.ensure_future(self.relay.forward(self, body))

    def finished(self) -> None:
        if self.keep_alive:
            self.transport.resume_reading()
        else:
            self.transport.close()


class Relay:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port, self.pool = host, port, []

    async def forward(self, client: Client, body: bytes) -> None:
        if self.pool:
            up = self.pool.pop()
        else:
            loop = asyncio.get_running_loop()
            _, up = await loop.create_connection(lambda: Upstream(self.pool), self.host, self.port)
            await up.ready
        up.send(client, body)


async def main(host: str, port: int, upstream: str) -> None:
    up_host, up_port = upstream.rsplit(":", 1)
    relay = Relay(up_host, int(up_port))
    server = await asyncio.get_running_loop().create_server(lambda: Client(relay), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9103)
    ap.add_argument("--upstream", default="127.0.0.1:9101", help="HOST:PORT of the upstream")
    a = ap.parse_args()
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main(a.host, a.port, a.upstream))

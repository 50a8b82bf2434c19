"""providers/http1.py, the lean HTTP/1.1 client for http:// upstreams, against scripted raw servers:
hostile framing (split heads, chunk extensions, bodies that end early, malformed chunks, oversize
heads), gzip, keep-alive reuse and when a connection must not be reused, and bounded buffering."""
from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib

import pytest

from routerone.errors import UpstreamUnavailable
from routerone.providers import http1, http1_stream
from routerone.providers.base import UpstreamRequest
from routerone.providers.decode import DECODE_SLICE_BYTES
from routerone.providers.transport import Timeouts, Transport


class Scripted:
    """A raw TCP server: for each request read, writes the next reply's pieces (a short pause
    between pieces, so that each is its own read), and records requests and connections."""

    def __init__(self, replies: list[list[bytes]], close_after: bool = False, pause_s: float = 0.01) -> None:
        self.replies, self.close_after, self.pause_s = list(replies), close_after, pause_s
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                self.requests.append(head + await reader.readexactly(length))
                for piece in self.replies.pop(0):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(self.pause_s)
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve():
    servers = []

    async def start(replies, close_after=False, pause_s=0.01):
        s = Scripted(replies, close_after, pause_s)
        srv = await asyncio.start_server(s.handle, "127.0.0.1", 0)
        servers.append(srv)
        s.url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1/chat/completions?x=1"
        return s
    t = Transport(Timeouts(1.0, 2.0, 1.0))
    start.transport = t
    yield start
    await t.close()
    for srv in servers:
        srv.close()


async def body_of(t: Transport, url: str, headers=None) -> tuple[int, bytes]:
    stream = await t.open(UpstreamRequest(url, headers or {"Authorization": "Bearer k"}, b'{"a":1}'))
    assert isinstance(stream, http1_stream.Http1Stream)
    try:
        out = b""
        while data := await stream.read():
            out += data
        return stream.status, out
    finally:
        stream.close()


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


async def test_split_head_and_chunk_framing_then_the_connection_is_reused(serve):
    pieces = [b"HTTP/1.1 200 O", b"K\r\nTransfer-Enc", b"oding: chunked\r\nX-Up: 1\r", b"\n\r\n",
              b"5;ext=1\r\nhel", b"lo\r\n", b"1", b"\r\n!\r\n0\r\n", b"\r\n"]
    s = await serve([pieces, [CHUNKED_HEAD + b"2\r\nok\r\n0\r\n\r\n"]])
    assert await body_of(serve.transport, s.url) == (200, b"hello!")
    assert await body_of(serve.transport, s.url) == (200, b"ok")
    assert s.connections == 1                                   # kept alive and reused
    req = s.requests[0]
    assert req.startswith(b"POST /v1/chat/completions?x=1 HTTP/1.1\r\n")
    assert b"\r\nAccept-Encoding: identity\r\n" in req and b"\r\nAuthorization: Bearer k\r\n" in req
    assert req.endswith(b'\r\n\r\n{"a":1}')


async def test_content_length_and_close_delimited_bodies(serve):
    s = await serve([[b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", b"cd"]])
    assert await body_of(serve.transport, s.url) == (200, b"abcd")
    s2 = await serve([[b"HTTP/1.1 200 OK\r\n\r\nuntil ", b"the end"]], close_after=True)
    assert await body_of(serve.transport, s2.url) == (200, b"until the end")


async def test_a_body_cut_short_is_an_upstream_failure(serve):
    s = await serve([[CHUNKED_HEAD + b"5\r\nhello\r\n", b"9\r\nonly"]], close_after=True)
    with pytest.raises(UpstreamUnavailable, match="connection closed"):
        await body_of(serve.transport, s.url)
    s2 = await serve([[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]], close_after=True)
    with pytest.raises(UpstreamUnavailable):
        await body_of(serve.transport, s2.url)


async def test_malformed_chunks_and_heads_are_upstream_failures(serve):
    s = await serve([[CHUNKED_HEAD + b"zz\r\nhello\r\n0\r\n\r\n"]])
    with pytest.raises(UpstreamUnavailable, match="malformed HTTP"):
        await body_of(serve.transport, s.url)
    s2 = await serve([[b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (http1.MAX_HEAD_BYTES + 10) + b"\r\n\r\n"]])
    with pytest.raises(UpstreamUnavailable, match="connection failed"):
        await body_of(serve.transport, s2.url)
    s3 = await serve([[b"SSH-2.0-OpenSSH\r\n\r\n"]])
    with pytest.raises(UpstreamUnavailable, match="connection failed"):
        await body_of(serve.transport, s3.url)


async def test_no_response_at_all(serve):
    s = await serve([[]], close_after=True)
    with pytest.raises(UpstreamUnavailable, match="connection failed"):
        await body_of(serve.transport, s.url)


async def test_a_gzip_body_is_decoded(serve):
    packed = gzip.compress(b"data: {}\n\n" * 50)
    s = await serve([[b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed),
                      packed[:20], packed[20:]]])
    assert await body_of(serve.transport, s.url) == (200, b"data: {}\n\n" * 50)


async def test_connections_that_must_not_be_reused_are_not(serve):
    close = [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"]
    s = await serve([close, close])
    assert await body_of(serve.transport, s.url) == (200, b"ok")
    assert await body_of(serve.transport, s.url) == (200, b"ok")
    assert s.connections == 2
    # bytes after a complete response (a confused or hostile upstream): that connection is dropped
    extra = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"HTTP/1.1 200 OK\r\n"]
    s2 = await serve([extra, [b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew"]])
    assert await body_of(serve.transport, s2.url) == (200, b"ok")
    await asyncio.sleep(0.05)
    assert await body_of(serve.transport, s2.url) == (200, b"new")
    assert s2.connections == 2


async def test_an_unread_body_is_bounded_in_memory(serve):
    big = b"x" * (4 * http1.BUFFER_PAUSE_BYTES)
    s = await serve([[b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big), big]])
    stream = await serve.transport.open(UpstreamRequest(s.url, {}, b"{}"))
    try:
        await asyncio.sleep(0.3)                   # the server writes all of it; nobody reads
        assert stream._conn.body_bytes <= http1.BUFFER_PAUSE_BYTES + (1 << 18)
        got = 0
        while data := await stream.read():
            got += len(data)
        assert got == len(big)
    finally:
        stream.close()


async def test_a_header_with_a_line_break_is_refused(serve):
    s = await serve([[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]])
    with pytest.raises(UpstreamUnavailable):
        await body_of(serve.transport, s.url, {"X-Key": "a\r\nX-Evil: 1"})


async def test_pump_pushes_each_piece_and_raises_what_on_data_raises(serve):
    s = await serve([[CHUNKED_HEAD + b"4\r\ngood\r\n", b"3\r\nbad\r\n", b"4\r\nrest\r\n0\r\n\r\n"]])
    stream = await serve.transport.open(UpstreamRequest(s.url, {}, b"{}"))
    sent = []

    def on_data(data: bytes) -> bytes:
        if data == b"bad":
            raise UpstreamUnavailable("a bad chunk")
        return data.upper()
    try:
        with pytest.raises(UpstreamUnavailable, match="a bad chunk"):
            await stream.pump(on_data, lambda out: sent.append(out) or True, lambda: False)
        assert sent == [b"GOOD"]
    finally:
        stream.close()


async def test_a_connection_paused_by_a_full_receiver_is_reused_reading(serve):
    """The receiver was full on the last piece (reading paused), then the body ended: the pooled
    connection must read again, or the next request on it never sees its response."""
    s = await serve([[CHUNKED_HEAD + b"4\r\nlast\r\n0\r\n\r\n"], [CHUNKED_HEAD + b"2\r\nok\r\n0\r\n\r\n"]])
    stream = await serve.transport.open(UpstreamRequest(s.url, {}, b"{}"))
    try:
        verdict = await stream.pump(lambda d: d, lambda out: False, lambda: False)
        if verdict == "full":
            assert await stream.read() == b""
    finally:
        stream.close()
    assert await asyncio.wait_for(body_of(serve.transport, s.url), 2) == (200, b"ok")
    assert s.connections == 1


async def test_pump_ends_when_done_and_on_body_end(serve):
    s = await serve([[CHUNKED_HEAD + b"1\r\na\r\n", b"1\r\nb\r\n", b"1\r\nc\r\n0\r\n\r\n"]])
    stream = await serve.transport.open(UpstreamRequest(s.url, {}, b"{}"))
    sent = []
    try:
        assert await stream.pump(lambda d: d, lambda out: sent.append(out) or True, lambda: sent[-1:] == [b"b"]) == "end"
        assert await stream.pump(lambda d: d, lambda out: sent.append(out) or True, lambda: False) == "end"
        assert b"".join(sent) == b"abc" and await stream.read() == b""
    finally:
        stream.close()


async def test_a_body_left_just_before_its_end_is_pooled_once_the_end_arrives(serve):
    """A stream stops reading at `[DONE]`; the chunked body's end comes in a segment of its own."""
    s = await serve([[CHUNKED_HEAD + b"e\r\ndata: [DONE]\n\n\r\n", b"0\r\n\r\n"],
                     [CHUNKED_HEAD + b"2\r\nok\r\n0\r\n\r\n"]])
    stream = await serve.transport.open(UpstreamRequest(s.url, {}, b"{}"))
    assert await stream.read() == b"data: [DONE]\n\n"
    stream.close()                                     # before the end arrived
    await asyncio.sleep(0.1)
    assert await body_of(serve.transport, s.url) == (200, b"ok")
    assert s.connections == 1


@pytest.mark.parametrize("pause_s", [0.2, 0.01])
async def test_a_body_whose_end_does_not_come_soon_is_closed(serve, monkeypatch, pause_s):
    """Not within LINGER_S (0.2), or more body instead of its end (0.01): the connection closes."""
    monkeypatch.setattr(http1, "LINGER_S", 0.05 if pause_s > 0.1 else 1.0)
    s = await serve([[CHUNKED_HEAD + b"1\r\na\r\n", b"1\r\nb\r\n", b"0\r\n\r\n"],
                     [CHUNKED_HEAD + b"2\r\nok\r\n0\r\n\r\n"]], pause_s=pause_s)
    stream = await serve.transport.open(UpstreamRequest(s.url, {}, b"{}"))
    assert await stream.read() == b"a"
    stream.close()
    await asyncio.sleep(0.3)
    assert await body_of(serve.transport, s.url) == (200, b"ok")
    assert s.connections == 2


async def test_shutdown_closes_a_lingering_connection(serve):
    s = await serve([[CHUNKED_HEAD + b"1\r\na\r\n", b"0\r\n\r\n"]], pause_s=0.5)
    stream = await serve.transport.open(UpstreamRequest(s.url, {}, b"{}"))
    assert await stream.read() == b"a"
    conn = stream._conn
    stream.close()
    assert conn.linger is not None and not conn.closed
    await serve.transport.close()
    assert conn.closed and conn.linger is None


async def test_pump_writes_once_per_upstream_read(serve):
    """Many events in one upstream read (a fast upstream) are one write to the receiver, not one each."""
    s = await serve([[CHUNKED_HEAD, b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n", b"0\r\n\r\n"]])
    stream = await serve.transport.open(UpstreamRequest(s.url, {}, b"{}"))
    writes, pieces = [], []

    def on_data(data: bytes) -> bytes:
        pieces.append(data)
        return data
    try:
        assert await stream.pump(on_data, lambda out: writes.append(out) or True, lambda: False) == "end"
    finally:
        stream.close()
    assert pieces == [b"a", b"b", b"c"] and writes == [b"abc"]


@pytest.mark.parametrize("first", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"HTTP/1.1 204 No Content\r\n\r\n"])
async def test_bytes_after_a_response_in_the_same_read_are_neither_its_body_nor_the_next_response(serve, first):
    """A second response (or the start of one) right behind the first, in the same segment: llhttp
    parses on into it. Before, its body was appended to this one's (`okEVIL!`; a 204 got `EVIL`)
    and a head cut short was kept in the pooled connection's parser, so the NEXT request (maybe
    another user's) read the rest of it as its own response."""
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEV"
    s = await serve([[first + smuggled], [b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew"]])
    assert await body_of(serve.transport, s.url) == (int(first[9:12]), first.partition(b"\r\n\r\n")[2])
    assert await body_of(serve.transport, s.url) == (200, b"new")
    assert s.connections == 2                      # the first connection was not reused


async def test_a_head_over_the_bound_dripped_over_many_reads_fails_at_the_bound(serve):
    """httptools keeps a header's value (and the status reason) until it ends; on_header counted
    only whole headers, so one endless header, 4 KiB a read, grew in memory until the first-byte
    timeout (at local speeds, gigabytes). Now the head fails once its bytes pass MAX_HEAD_BYTES."""
    drip = [b"HTTP/1.1 200 OK\r\nX-Endless: "] + [b"a" * 4096] * (3 * http1.MAX_HEAD_BYTES // 4096)
    s = await serve([drip], pause_s=0.001)
    with pytest.raises(UpstreamUnavailable, match="response head over"):
        await body_of(serve.transport, s.url)


async def test_a_gzip_bomb_is_decoded_in_bounded_slices(serve):
    """256 MiB of zeros, 254 KiB gzipped: one upstream read decoded at once was 256 MiB in memory
    (peak 267 MiB) before read_all's 64 MiB bound could look. Now it is decoded 1 MiB at a time and
    fails once it passes MAX_REPLY_BYTES, buffered or not."""
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    packed = b"".join(gz.compress(zeros) for _ in range(256)) + gz.flush()
    s = await serve([[b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed),
                      packed]])
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamUnavailable, match="over|larger than"):
            await serve.transport.send(UpstreamRequest(s.url, {}, b"{}"))
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_bytes < http1.MAX_REPLY_BYTES + (16 << 20)


async def test_an_ipv6_literal_host_is_bracketed_in_the_host_header():
    """`http://[::1]:port/v1`: the Host header was `::1:port` (not valid HTTP: a strict upstream
    answers 400); aiohttp sends `[::1]:port`."""
    s = Scripted([[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]])
    srv = await asyncio.start_server(s.handle, "::1", 0)
    port = srv.sockets[0].getsockname()[1]
    t = Transport(Timeouts(1.0, 2.0, 1.0))
    try:
        assert await body_of(t, f"http://[::1]:{port}/v1/chat/completions") == (200, b"ok")
    finally:
        await t.close()
        srv.close()
    assert f"\r\nHost: [::1]:{port}\r\n".encode() in s.requests[0]


@pytest.mark.parametrize("wbits", [15, -15])
async def test_deflate_with_or_without_its_zlib_header_is_decoded(serve, wbits):
    """`Content-Encoding: deflate` is zlib by the RFC, raw deflate from some servers; aiohttp
    decodes both (it looks at the first byte). Before, raw deflate was an upstream failure here."""
    z = zlib.compressobj(6, zlib.DEFLATED, wbits)
    packed = z.compress(b"data: {}\n\n" * 20) + z.flush()
    s = await serve([[b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(packed),
                      packed[:3], packed[3:]]])
    assert await body_of(serve.transport, s.url) == (200, b"data: {}\n\n" * 20)


async def test_a_host_header_set_by_the_operator_is_the_one_sent(serve):
    """An upstream behind a proxy that routes by name (`base_url` an address, `headers = {Host = ...}`):
    aiohttp sends the operator's Host; this client dropped it and sent the address."""
    s = await serve([[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]])
    assert await body_of(serve.transport, s.url, {"host": "vllm.internal", "Authorization": "Bearer k"}) == (200, b"ok")
    head = s.requests[0].partition(b"\r\n\r\n")[0].lower()
    assert head.count(b"\r\nhost: ") == 1 and b"\r\nhost: vllm.internal\r\n" in head + b"\r\n"


async def test_a_pooled_connection_whose_peer_closed_is_not_handed_out(serve):
    """On the upstream's FIN the transport closes at once (eof_received) but `connection_lost`,
    which marks the connection closed, comes a loop iteration later: a request in between was
    written into the closing transport (dropped) and failed."""
    ok = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    s = await serve([ok, ok])
    assert await body_of(serve.transport, s.url) == (200, b"ok")
    pool = serve.transport._http1
    [conn] = [c for conns in pool._idle.values() for c in conns]
    conn.transport.close()                      # what the FIN does, connection_lost still to come
    assert not conn.closed
    assert pool._reuse(("127.0.0.1", int(s.url.split(":")[2].split("/")[0]))) is None


class OnePerConnection:
    """Answers the first request on a connection with `first`; the second is answered with `then`
    (maybe nothing), and the connection closed."""

    def __init__(self, first: bytes, then: bytes) -> None:
        self.first, self.then, self.requests, self.connections = first, then, 0, 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for reply in (self.first, self.then):
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]))
                self.requests += 1
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("then, resent", [(b"", True), (b"HTTP/1.1 200 OK\r\nContent-", False)],
                         ids=["unanswered", "answer-begun"])
async def test_a_request_is_sent_again_only_when_a_reused_connection_closed_before_any_byte(then, resent):
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    s = OnePerConnection(ok, then)
    srv = await asyncio.start_server(s.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1/chat/completions"
    t = Transport(Timeouts(1.0, 2.0, 1.0))
    try:
        assert await body_of(t, url) == (200, b"ok")
        if resent:
            assert await body_of(t, url) == (200, b"ok")     # on a fresh connection
        else:
            with pytest.raises(UpstreamUnavailable, match="connection closed"):
                await body_of(t, url)
        assert (s.requests, s.connections) == ((3, 2) if resent else (2, 1))
    finally:
        await t.close()
        srv.close()


async def test_a_fresh_connection_closed_unanswered_is_not_sent_again(serve):
    s = await serve([[]], close_after=True)
    with pytest.raises(UpstreamUnavailable, match="connection closed"):
        await body_of(serve.transport, s.url)
    assert (len(s.requests), s.connections) == (1, 1)


def _gzip_reply(data: bytes, framing: str) -> bytes:
    packed = gzip.compress(data)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
    if framing == "chunked":
        return head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%b\r\n0\r\n\r\n" % (len(packed), packed)
    if framing == "length":
        return head + b"Content-Length: %d\r\n\r\n" % len(packed) + packed
    return head + b"\r\n" + packed


@pytest.mark.parametrize("framing", ["chunked", "length", "close"])
@pytest.mark.parametrize("data", [b"data: {}\n\n" * 800_000, b"".join(b"data: %d\n\n" % i for i in range(600_000))],
                         ids=["one-read", "many-reads"])
async def test_a_pushed_compressed_body_is_decoded_only_as_fast_as_the_receiver_takes_it(serve, framing, data):
    """Pumping, one compressed read was decoded whole (up to MAX_REPLY_BYTES, 64 MiB) into one write,
    before the receiver could say it was full. Now each slice is written before the next is decoded,
    and once the receiver is full the compressed rest waits for the next pump. Nothing is lost, and
    the body's end (in the same read, or later) still ends it: the connection is reused."""
    ok = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    s = await serve([[_gzip_reply(data, framing)], ok], close_after=framing == "close")
    stream = await serve.transport.open(UpstreamRequest(s.url, {}, b"{}"))
    writes = []
    try:
        while (verdict := await stream.pump(lambda d: d, lambda out: writes.append(out) and False, lambda: False)) \
                == "full":
            pass
        assert verdict == "end" and await stream.read() == b""
    finally:
        stream.close()
    assert b"".join(writes) == data
    assert max(map(len, writes)) <= DECODE_SLICE_BYTES and len(writes) >= len(data) // DECODE_SLICE_BYTES
    if framing != "close":
        assert await body_of(serve.transport, s.url) == (200, b"ok")
        assert s.connections == 1


async def test_a_pushed_gzip_bomb_is_decoded_a_slice_per_pump(serve):
    """256 MiB of zeros in 254 KiB: the first pump decoded 64 MiB (the per-read bound) into memory
    before failing; with a receiver that is full, it now decodes one slice."""
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    packed = b"".join(gz.compress(zeros) for _ in range(256)) + gz.flush()
    s = await serve([[b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed),
                      packed]])
    stream = await serve.transport.open(UpstreamRequest(s.url, {}, b"{}"))
    tracemalloc.start()
    try:
        assert await stream.pump(lambda d: d, lambda out: False, lambda: False) == "full"
        assert await stream.pump(lambda d: d, lambda out: False, lambda: False) == "full"
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        stream.close()
    assert peak_bytes < 4 * DECODE_SLICE_BYTES


async def test_a_held_compressed_body_that_ends_early_still_fails_once_decoded(serve):
    data = b"data: {}\n\n" * 800_000
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    packed = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)          # no final block, no trailer
    s = await serve([[b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)
                      + packed]])
    stream = await serve.transport.open(UpstreamRequest(s.url, {}, b"{}"))
    writes = []
    try:
        with pytest.raises(UpstreamUnavailable, match="ends before its compressed stream"):
            while await stream.pump(lambda d: d, lambda out: writes.append(out) and False, lambda: False) == "full":
                pass
    finally:
        stream.close()
    assert b"".join(writes) == data and len(writes) > 1

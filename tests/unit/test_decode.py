"""providers/decode.py, the Content-Encoding decoder both upstream clients use: gzip, zlib and raw
deflate; bounded slices with the compressed rest kept; a body that ends before its compressed
stream does is an upstream failure; and through aiohttp's client (https upstreams), a gzip bomb
stays bounded in memory as on the lean client."""
from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest
from aiohttp import web
from multidict import CIMultiDict

from routerone.errors import UpstreamUnavailable
from routerone.providers.base import UpstreamRequest
from routerone.providers.decode import DECODE_SLICE_BYTES, BodyDecoder, codings_of
from routerone.providers.transport import MAX_REPLY_BYTES, Timeouts, Transport

TEXT = b'data: {"choices":[{"delta":{"content":"hello"}}]}\n\n' * 200


def _packed(wbits: int, data: bytes = TEXT, end: bool = True) -> bytes:
    z = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return z.compress(data) + (z.flush() if end else z.flush(zlib.Z_SYNC_FLUSH))


def _decode_all(decoder: BodyDecoder, packed: bytes, piece_bytes: int = 7) -> bytes:
    out = b""
    for i in range(0, len(packed), piece_bytes):
        out += decoder.decode(packed[i:i + piece_bytes])
        while decoder.pending:
            out += decoder.decode(b"")
    return out + decoder.end()


@pytest.mark.parametrize("coding, wbits", [("gzip", 31), ("x-gzip", 31), ("deflate", 15), ("deflate", -15)])
def test_each_coding_decodes_whatever_the_pieces(coding, wbits):
    assert _decode_all(BodyDecoder.for_coding(coding), _packed(wbits)) == TEXT


@pytest.mark.parametrize("coding, wbits", [("gzip", 31), ("deflate", 15), ("deflate", -15)])
def test_a_body_that_ends_before_its_compressed_stream_is_an_upstream_failure(coding, wbits):
    """Cut at a flush point: all of TEXT decodes; only the final block (and gzip's trailer) is missing."""
    decoder = BodyDecoder.for_coding(coding)
    assert decoder.decode(_packed(wbits, end=False)) == TEXT
    with pytest.raises(UpstreamUnavailable, match="ends before its compressed stream"):
        decoder.end()
    full = _packed(31)
    decoder = BodyDecoder.for_coding("gzip")
    decoder.decode(full[:-8])                       # all but the trailer (CRC, length)
    with pytest.raises(UpstreamUnavailable, match="ends before its compressed stream"):
        decoder.end()


def test_an_empty_body_and_no_coding():
    assert BodyDecoder.for_coding("gzip").end() == b""          # Content-Encoding on an empty body, as aiohttp
    assert BodyDecoder.for_coding("") is None and BodyDecoder.for_coding(" Identity ") is None
    with pytest.raises(UpstreamUnavailable, match="unsupported Content-Encoding 'br'"):
        BodyDecoder.for_coding("br")
    with pytest.raises(UpstreamUnavailable, match="does not decode"):
        BodyDecoder.for_coding("gzip").decode(b"not gzip at all")


def test_a_bomb_decodes_a_slice_at_a_time_and_keeps_the_rest():
    zeros = bytes(8 * DECODE_SLICE_BYTES)
    decoder = BodyDecoder.for_coding("gzip")
    slices = [decoder.decode(_packed(31, zeros))]
    while decoder.pending:
        slices.append(decoder.decode(b""))
    assert max(map(len, slices)) == DECODE_SLICE_BYTES and sum(map(len, slices)) == len(zeros)
    assert decoder.end() == b""


async def test_through_aiohttp_a_gzip_bomb_is_bounded_and_a_cut_gzip_body_fails():
    """aiohttp's client decoded bodies itself (auto_decompress) and took a gzip body cut before its
    end as complete; the https path now decodes with decode.py too."""
    zeros = bytes(1 << 20)
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(gz.compress(zeros) for _ in range(256)) + gz.flush()      # 256 MiB in ~254 KiB

    async def handler(request: web.Request) -> web.Response:
        body = bomb if request.path == "/bomb" else _packed(31, end=False)
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})
    app = web.Application()
    app.router.add_post("/{what}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    t = Transport(Timeouts(1.0, 5.0, 5.0), http1=False)
    try:
        tracemalloc.start()
        try:
            with pytest.raises(UpstreamUnavailable, match="larger than"):
                await t.send(UpstreamRequest(f"http://127.0.0.1:{port}/bomb", {}, b"{}"))
            peak_bytes = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak_bytes < MAX_REPLY_BYTES + (16 << 20)
        with pytest.raises(UpstreamUnavailable, match="ends before its compressed stream"):
            await t.send(UpstreamRequest(f"http://127.0.0.1:{port}/cut", {}, b"{}"))
    finally:
        await t.close()
        await runner.cleanup()


def _all(decoder: BodyDecoder, body: bytes, step: int, max_bytes: int) -> bytes:
    out = b""
    for i in range(0, len(body), step):
        out += decoder.decode(body[i:i + step], max_bytes)
        while decoder.pending:
            out += decoder.decode(b"", max_bytes)
    return out + decoder.end()


@pytest.mark.parametrize("step, max_bytes", [(1, 7), (3, 1), (5, 64), (1 << 20, DECODE_SLICE_BYTES)])
def test_every_member_of_a_gzip_body_is_decoded_in_slices(step, max_bytes):
    """Before, decoding stopped at the end of the first member: the rest of the body was dropped."""
    parts = [b"hello " * 50, b"", b"world" * 70]
    body = b"".join(gzip.compress(p) for p in parts)
    assert _all(BodyDecoder.for_coding("gzip"), body, step, max_bytes) == b"".join(parts)
    assert _all(BodyDecoder.for_coding("gzip"), body + bytes(5), step, max_bytes) == b"".join(parts)   # padding
    for bad in (body + b"junk", body + gzip.compress(b"more")[:12], body + b"\x1f"):
        with pytest.raises(UpstreamUnavailable):
            _all(BodyDecoder.for_coding("gzip"), bad, step, max_bytes)


def test_codings_in_a_list_or_a_repeated_header():
    assert BodyDecoder.for_coding("identity, gzip") is not None and BodyDecoder.for_coding("identity, ") is None
    assert codings_of(CIMultiDict([("Content-Encoding", "identity"), ("Content-Encoding", "br")])) == "identity, br"
    for coding in ("identity, br", "gzip, gzip", "gzip, br", "zstd"):
        with pytest.raises(UpstreamUnavailable, match="unsupported Content-Encoding"):
            BodyDecoder.for_coding(coding)

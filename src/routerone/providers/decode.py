"""Content-Encoding of upstream bodies, for both upstream clients (http1.py, transport.py): gzip and
deflate (zlib, or raw deflate as some servers send it; the first byte tells, as aiohttp does).

Decoded in slices of at most DECODE_SLICE_BYTES, the compressed rest kept (`pending`) until asked
for: a gzip bomb (256 KiB -> 256 MiB) never decodes at once, and a caller can stop between slices.
A body that ends before its compressed stream does (a connection closed, a chunked terminator or
Content-Length that came early) is an upstream failure (`end`), as a body cut short is: what was
decoded is a prefix that may parse (a stream cut after its finish chunk, a reply cut at a flush
point), and taking it as complete would relay and bill a truncated answer. aiohttp's own decoder
accepts such a gzip body, so its client is run with `auto_decompress=False` and this decoder."""
from __future__ import annotations

import zlib

from ..errors import UpstreamUnavailable

__all__ = ["BodyDecoder", "ACCEPT_ENCODING", "DECODE_SLICE_BYTES"]

ACCEPT_ENCODING = "gzip, deflate"     # what BodyDecoder decodes (aiohttp's default when brotli is absent)
DECODE_SLICE_BYTES = 1 << 20          # decoded at most this much at a time


def _failed(why: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"The upstream connection failed mid-stream ({why})")


class BodyDecoder:
    """`decode(data)` the compressed bytes as they arrive (at most `max_bytes` out; while `pending`,
    `decode(b"")` gives the next slice; `keep(data)` holds them undecoded), then `end()` at the
    body's end, with nothing pending."""

    __slots__ = ("_z", "_sniff", "_fed", "_tail", "_full")

    def __init__(self, coding: str) -> None:
        self._z = zlib.decompressobj(47)          # gzip or zlib, told apart by the header
        self._sniff = coding == "deflate"         # maybe raw deflate: the first byte tells
        self._fed = False                         # compressed bytes have come
        self._tail = b""                          # compressed bytes not decoded yet
        self._full = False                        # the last slice filled max_bytes: zlib may hold more

    @classmethod
    def for_coding(cls, content_encoding: str) -> "BodyDecoder | None":
        """The decoder for a Content-Encoding header (None: not encoded); another coding is an upstream failure."""
        coding = content_encoding.strip().lower()
        if coding in ("gzip", "x-gzip", "deflate"):
            return cls(coding)
        if coding in ("", "identity"):
            return None
        raise _failed(f"unsupported Content-Encoding {coding[:40]!r}")

    @property
    def pending(self) -> bool:
        """Decoded bytes may be waiting: `decode(b"")` before reading more."""
        return self._full or bool(self._tail)

    def keep(self, data: bytes) -> None:
        """Compressed bytes to decode later, not now (the receiver is full): `pending` then."""
        if data:
            self._fed = True
            self._tail += data

    def decode(self, data: bytes, max_bytes: int = DECODE_SLICE_BYTES) -> bytes:
        if data:
            self._fed = True
            if self._tail:
                data = self._tail + data
        else:
            data = self._tail
        if self._sniff and data:
            self._sniff = False
            if data[0] & 0x0F != 8:               # not a zlib header: raw deflate
                self._z = zlib.decompressobj(-15)
        try:
            out = self._z.decompress(data, max_bytes)
        except zlib.error:
            raise _failed("a body that does not decode") from None
        self._tail = self._z.unconsumed_tail
        self._full = len(out) == max_bytes
        return out

    def end(self) -> bytes:
        """At the body's end, with nothing `pending`: what zlib still held; an upstream failure if
        the compressed stream has not ended (an empty body is fine, as aiohttp has it)."""
        try:
            tail = self._z.flush()
        except zlib.error:
            raise _failed("a body that does not decode") from None
        if self._fed and not self._z.eof:
            raise _failed("a compressed body that ends before its compressed stream does")
        return tail

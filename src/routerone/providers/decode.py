"""Content-Encoding of upstream bodies, for both upstream clients (http1.py, transport.py): gzip and
deflate (zlib, or raw deflate as some servers send it; the first byte tells, as aiohttp does).

Decoded in slices of at most DECODE_SLICE_BYTES, the compressed rest kept (`pending`) until asked
for: a gzip bomb (256 KiB -> 256 MiB) never decodes at once, and a caller can stop between slices.
A body that ends before its compressed stream does (a connection closed, a chunked terminator or
Content-Length that came early) is an upstream failure (`end`), as a body cut short is: what was
decoded is a prefix that may parse (a stream cut after its finish chunk, a reply cut at a flush
point), and taking it as complete would relay and bill a truncated answer. aiohttp's own decoder
accepts such a gzip body, so its client is run with `auto_decompress=False` and this decoder.

A gzip body may hold several members one after another (RFC 1952 2.2; `cat a.gz b.gz`): each is
decoded in turn, under the same slices and caps (before, decoding stopped at the end of the first:
a reply silently cut). After the last member, zero bytes (padding) are ignored, as Python's gzip
module does; other bytes there are an upstream failure, not silently dropped."""
from __future__ import annotations

import zlib

from ..errors import UpstreamUnavailable

__all__ = ["BodyDecoder", "ACCEPT_ENCODING", "DECODE_SLICE_BYTES", "codings_of"]

ACCEPT_ENCODING = "gzip, deflate"     # what BodyDecoder decodes (aiohttp's default when brotli is absent)
DECODE_SLICE_BYTES = 1 << 20          # decoded at most this much at a time
_GZIP_MAGIC = b"\x1f\x8b"


def codings_of(headers) -> str:
    """Every Content-Encoding of a response head, as one list (a header sent twice: both count, as
    RFC 9110 5.3 has it; reading the first only took `identity` + `br` as not encoded)."""
    return ", ".join(headers.getall("Content-Encoding", ()))


def _failed(why: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"The upstream connection failed mid-stream ({why})")


class BodyDecoder:
    """`decode(data)` the compressed bytes as they arrive (at most `max_bytes` out; while `pending`,
    `decode(b"")` gives the next slice; `keep(data)` holds them undecoded), then `end()` at the
    body's end, with nothing pending."""

    __slots__ = ("_z", "_sniff", "_fed", "_tail", "_full", "_between")

    def __init__(self, coding: str) -> None:
        self._z: "zlib._Decompress | None" = zlib.decompressobj(47)   # gzip or zlib, told apart by the header
        self._sniff = coding == "deflate"         # maybe raw deflate: the first byte tells
        self._fed = False                         # compressed bytes have come
        self._tail = b""                          # compressed bytes not decoded yet
        self._full = False                        # the last slice filled max_bytes: zlib may hold more
        self._between = b""                       # _z None: a member has ended; the bytes after it, so far

    @classmethod
    def for_coding(cls, content_encoding: str) -> "BodyDecoder | None":
        """The decoder for a Content-Encoding header's value (None: not encoded; `codings_of` joins a
        header sent more than once); any other coding, or more than one, is an upstream failure."""
        codings = [c for c in (part.strip().lower() for part in content_encoding.split(",")) if c not in ("", "identity")]
        if not codings:
            return None
        if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
            return cls(codings[0])
        shown = content_encoding.strip()[:40]
        raise UpstreamUnavailable(f"The upstream replied with an unsupported Content-Encoding {shown!r} "
                                  f"(Router One decodes gzip and deflate)")

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
        out = b""
        while len(out) < max_bytes:
            if self._z is None:                   # between gzip members
                data, self._between = self._between + data, b""
                if data[:2] == _GZIP_MAGIC:
                    self._z = zlib.decompressobj(31)
                elif data in (b"", _GZIP_MAGIC[:1]):   # the next member's first byte, or nothing yet
                    self._between, data = data, b""
                    break
                elif not data.strip(b"\0"):      # padding after the last member
                    data = b""
                    break
                else:
                    raise _failed("a body with bytes after its compressed stream")
            try:
                out += self._z.decompress(data, max_bytes - len(out))
            except zlib.error:
                raise _failed("a body that does not decode") from None
            if not self._z.eof:
                data = self._z.unconsumed_tail
                break
            # a member ended: another may follow (all the input after its end is in unused_data)
            data, self._between, self._z = b"", self._z.unused_data, None
        self._tail = data
        self._full = len(out) == max_bytes
        return out

    def end(self) -> bytes:
        """At the body's end, with nothing `pending`: what zlib still held; an upstream failure if
        the compressed stream has not ended (an empty body is fine, as aiohttp has it)."""
        if self._z is None:                       # every member ended
            if self._between:                     # b"\x1f": a member that never came
                raise _failed("a compressed body that ends before its compressed stream does")
            return b""
        try:
            tail = self._z.flush()
        except zlib.error:
            raise _failed("a body that does not decode") from None
        if self._fed and not self._z.eof:
            raise _failed("a compressed body that ends before its compressed stream does")
        return tail

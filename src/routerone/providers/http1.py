"""A lean HTTP/1.1 client for plain-http upstreams (vLLM, Ollama, a sidecar, the benchmarks' fake):
one asyncio protocol per pooled keep-alive connection (this module; the pool is http1_pool.py, the
caller's side of a response http1_stream.py), responses parsed by `httptools` (llhttp).

Why not aiohttp's client here: a streamed reply costs it a `ClientRequest`, a `StreamReader` that
re-feeds its parser on every read, and two `data_received` calls per upstream read; at 1,000
concurrent streams through one worker that was most of the per-stream CPU (bench/results/
streams-ttft.md, session 7). https upstreams still go through aiohttp (transport.py).

The upstream's bytes are untrusted: header block, chunk framing and a body that ends early are
checked by llhttp, buffered body bytes are bounded (reading pauses above BUFFER_PAUSE_BYTES until
the caller reads), the head by the bytes read while in it, and every fault is an
`UpstreamUnavailable` (or `UpstreamTimeout`), never another exception. Nothing after a complete
response is taken, neither as its body nor as the next request's response. `Accept-Encoding:
identity` is asked for; a gzip or deflate body is decoded anyway (decode.py; one that ends before
its compressed stream does fails), a slice at a time: once the receiver is full (a pump's, or
BUFFER_PAUSE_BYTES unread) the compressed rest is held, reading paused, and decoded as the receiver
takes it, so a bomb costs a slice of memory; a read whole fails past MAX_REPLY_BYTES.
"""
from __future__ import annotations

import asyncio
from collections import deque

import httptools
from multidict import CIMultiDict

from ..errors import UpstreamUnavailable
from .decode import BodyDecoder, codings_of
from .idle import MAX_REPLY_BYTES

__all__ = ["BUFFER_PAUSE_BYTES", "MAX_HEAD_BYTES", "MAX_REPLY_BYTES", "LINGER_S"]

BUFFER_PAUSE_BYTES = 1 << 20      # body bytes the caller has not read yet: above this, reading pauses
MAX_HEAD_BYTES = 64 * 1024        # status line and headers
YIELD_AFTER_BYTES = 16 * 1024     # a pumped stream reads at most about this much per turn of the event loop
LINGER_S = 1.0                    # a body the caller stopped reading just before its end: wait this long for it


def _failed(why: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"The upstream connection failed mid-stream ({why})")


class _Conn(asyncio.Protocol):
    """One connection, one request at a time. The parser's callbacks fill the response state."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since_s = 0.0
        self.read_since_yield = 0        # body bytes pumped since reading last paused for the loop's others
        self.yielding = False            # reading paused until the loop's next turn (_maybe_yield)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.head_bytes = 0
        self.in_head = True              # the final response's head has not ended yet
        self.head_fed_bytes = 0          # bytes of the reads that came while in the head
        self.head_done: asyncio.Future | None = None
        self.body: deque[bytes] = deque()
        self.body_bytes = 0
        self.complete = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future | None = None
        self.sink: tuple | None = None     # while pumping: (on_data, write, done, future, stream)
        self.pushed: list[bytes] = []       # what this read's pieces gave, written at its end
        self.pushed_event = False           # one of this read's pieces brought more than keep-alives
        self.linger: tuple | None = None   # the caller is done, the body's end is awaited: (pool, key, timer)
        self.paused = False
        self.decoder: BodyDecoder | None = None
        self.decoded_bytes = 0           # what the current read's compressed body decoded to
        self.decode_held = False         # the receiver is full: the compressed rest waits in `decoder`
        self.end_held = False            # ... and the body's end came meanwhile
        self.close_delimited = False
        self.closed_unanswered = False   # the connection ended before any byte of the response came
        self.keep_alive = False          # as the response head said (llhttp forgets it once the body ends)
        self.skip_interim = False

    # --- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.complete or self.end_held or self.error is not None or self.head_done is None:
            self._fail(_failed("bytes outside a response"))      # unasked-for bytes: never reuse
            return
        self.decoded_bytes = 0
        if self.in_head:                 # httptools keeps a header value until it ends: bound the head here
            self.head_fed_bytes += len(data)
        try:
            self.parser.feed_data(data)
            if self.in_head and self.head_fed_bytes > MAX_HEAD_BYTES:
                raise _failed(f"response head over {MAX_HEAD_BYTES} bytes")
            if self.sink is not None:
                self._flush(None)
                self._maybe_yield(len(data))
        except httptools.HttpParserUpgrade:
            self._fail(_failed("protocol upgrade"))
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, UpstreamUnavailable):     # raised by a callback below
                self._fail(exc.__context__)
            else:
                self._fail(_failed(f"malformed HTTP: {type(exc).__name__}"))
        except UpstreamUnavailable as exc:     # raised by a callback below
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete or self.end_held or self.error is not None or self.head_done is None:
            return
        if self.close_delimited and self.head_done.done():
            if self.decode_held:
                self.end_held = True
                return
            try:
                self._end_body()                                   # EOF ends such a body
            except UpstreamUnavailable as exc:                     # (a compressed one, maybe early)
                self._fail(exc)
        else:
            self.closed_unanswered = self.head_fed_bytes == 0      # (the pool may send it again)
            self._fail(_failed("connection closed"))

    # --- httptools callbacks
    def on_message_begin(self) -> None:
        if self.complete or self.end_held:   # llhttp parses on, into a second response in the same read: never ours
            raise _failed("bytes after the response")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_HEAD_BYTES:
            raise _failed(f"response head over {MAX_HEAD_BYTES} bytes")
        self.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_status(self, status: bytes) -> None:
        self.head_bytes += len(status)

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:                      # an interim response: the real one follows
            self.skip_interim, self.headers, self.head_bytes = True, CIMultiDict(), 0
            return
        self.status, self.in_head = status, False
        self.keep_alive = self.parser.should_keep_alive()
        h = self.headers
        self.decoder = BodyDecoder.for_coding(codings_of(h))
        self.close_delimited = "Content-Length" not in h and "chunked" not in h.get("Transfer-Encoding", "").lower()
        if not self.head_done.done():
            self.head_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        decoder = self.decoder
        if decoder is None:
            self._on_plain(body)
            return
        if self.decode_held:
            decoder.keep(body)
            return
        pumping = self.sink is not None
        while True:         # in slices: a gzip bomb's read (256 KiB -> 256 MiB) never decodes at once
            self._decoded(decoder.decode(body))
            body = b""
            if not decoder.pending:
                return
            if pumping and self.sink is not None:
                self._flush(None)            # each slice goes out before the next is decoded
            if self.sink is None and (pumping or self.body_bytes >= BUFFER_PAUSE_BYTES):
                self.decode_held = True      # the receiver is full, the pump ended, or the caller has
                self._pause()                # not read: the compressed rest waits (decode_held_slice)
                return

    def _decoded(self, out: bytes) -> None:
        if out:
            self.decoded_bytes += len(out)
            if self.decoded_bytes > MAX_REPLY_BYTES or self.body_bytes + len(out) > MAX_REPLY_BYTES:
                self.body.clear()              # the reply is failed: nobody reads these
                raise _failed(f"a compressed body that decodes to over {MAX_REPLY_BYTES} bytes")
            self._on_plain(out)

    def decode_held_slice(self) -> None:
        """One slice of the compressed body held while the receiver was full, into `body` (the
        stream takes it as any piece read); then the body's end, if it came meanwhile. Reading
        stays paused until all is decoded. A fault fails the connection."""
        try:
            self.decoded_bytes = 0
            self._decoded(self.decoder.decode(b""))
            if not self.decoder.pending:
                self.decode_held = False
                if self.end_held:
                    self.end_held = False
                    self._end_body()
        except UpstreamUnavailable as exc:
            self._fail(exc)

    def _on_plain(self, body: bytes) -> None:
        if self.sink is not None:
            self._push(body)
            return
        if self.linger is not None:        # more than the body's end after the caller was done
            self._fail(_failed("bytes after the caller was done"))
            return
        self.body.append(body)
        self.body_bytes += len(body)
        if self.body_bytes > BUFFER_PAUSE_BYTES and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.skip_interim:
            self.skip_interim = False
            return
        if self.decode_held:
            self.end_held = True         # the end, once what is held is decoded (decode_held_slice)
            return
        self._end_body()

    def _push(self, body: bytes) -> None:
        """Pumping: the bytes go through the caller's `on_data`; what that gives goes out by its
        `write` once per upstream read (`_flush`), here in the read callback (no task wake-up per
        piece). Whatever stops the pump resolves its future."""
        try:
            stream = self.sink[4]
            stream._kept_alive = False
            out = self.sink[0](body)                 # may say the piece was only keep-alives
            if not stream._kept_alive:
                self.pushed_event = True
            if out:
                self.pushed.append(out)
            if self.sink[2]():
                self._flush("end")
        except Exception as exc:     # noqa: BLE001 - never into the parser: the pump raises it
            self._flush(exc)

    def _flush(self, why) -> None:
        """Write what the pieces of this read gave. `why`: None (the pump goes on unless the
        receiver is full), "end", "wake" (the pump looks at the state) or an exception to raise."""
        on_data, write, done, fut, stream = self.sink
        pushed = self.pushed
        if fut.done():                 # the pump was cancelled (the stream is being torn down)
            self.sink = None
            pushed.clear()
            return
        stream._kept_alive, self.pushed_event = not self.pushed_event, False
        stream._read_seen(self.loop.time())            # the idle clock restarts, unless only keep-alives came
        full = False
        if pushed:
            out = pushed[0] if len(pushed) == 1 else b"".join(pushed)
            pushed.clear()
            full = not write(out)
        if why is None and not full:
            return
        self.sink = None
        if isinstance(why, BaseException):
            self._pause()
            fut.set_exception(why)
            return
        if full:
            self._pause()
        fut.set_result(why or "full")

    def _maybe_yield(self, n_bytes: int) -> None:
        """A pumped stream that has read YIELD_AFTER_BYTES since it last let the loop run others
        pauses reading until the loop's next turn: the loop (libuv reads a socket that has data up
        to 32 times in a row) would otherwise relay a fast upstream's megabytes in one go while every
        other client waits (one stream of 20 MB at full speed: 0.76 s)."""
        self.read_since_yield += n_bytes
        if self.read_since_yield < YIELD_AFTER_BYTES or self.paused or self.yielding or self.transport is None:
            return
        self.read_since_yield = 0
        self.yielding = True
        self.transport.pause_reading()
        self.loop.call_soon(self._end_yield)

    def _end_yield(self) -> None:
        self.yielding = False
        if not self.paused and not self.closed and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    # --- state changes
    def _end_body(self) -> None:
        """The body has ended; raises (before anything is taken as complete) when it is a compressed
        body whose compressed stream had not ended."""
        if self.decoder is not None:
            tail = self.decoder.end()
            if tail:
                self.body.append(tail)
        self.complete = True
        self._wake()
        if self.linger is not None and self.error is None and self.keep_alive and not self.close_delimited:
            pool, key, timer = self.linger
            self.linger = None
            timer.cancel()
            pool.lingering.discard(self)
            pool.release(key, self)

    def _fail(self, exc: Exception) -> None:
        if self.error is None and not self.complete:
            self.error = exc
        if self.head_done is not None and not self.head_done.done():
            self.head_done.set_exception(self.error or exc)
            self.head_done.exception()               # retrieved: no "never retrieved" warning
        self._wake()
        self.close()

    def _wake(self) -> None:
        if self.sink is not None:
            self._flush("wake")                  # the pump looks at the state itself
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self.linger is not None:
            self.linger[2].cancel()
            self.linger[0].lingering.discard(self)
            self.linger = None
        if self.transport is not None:
            self.transport.close()

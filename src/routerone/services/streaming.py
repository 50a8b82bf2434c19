"""Streamed chat completions: hold until the first content token (so earlier failures fail over
invisibly), then relay upstream chunks as OpenAI SSE, settle, and end with usage and [DONE].

A failure after the first token ends the stream with a chunk whose `finish_reason` is "error"
(as OpenRouter does) followed by an `{"error": ...}` event (on /v1/responses, the usage billed in
between), never a silent clean end. A client that goes away does not stop billing: the upstream is
drained (bounded) to its usage, then settled.

Memory per stream is bounded whatever its length: the relayed text is not kept, only counted as it
passes (tokens.TokenCounter keeps at most ~100k characters), and the request log's copy of the
completion (only with `log_content`) keeps its first LOG_TEXT_CAP characters. Each chunk's checks
and the counting are in stream_chunks.py.

A settle that cannot be written at the end (database unreachable) does not cut the connection: the
stream ends like a failed one (a `finish_reason: "error"` chunk, the usage chunk if asked for, and
an error event saying the charge is pending), and Billing keeps the hold and writes the charge it
announced in usage.cost when the database is back (see services/billing.py, "pending").
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Protocol

import orjson

from ..errors import RouterOneError, ServiceUnavailable, UpstreamError, UpstreamUnavailable
from ..providers.adapters import adapter_for
from ..providers.base import StreamTranslator, UpstreamRequest
from ..providers.guarded import StreamNumbering, spec_envelope
from ..providers.sse import SSEDecoder
from ..providers.transport import UpstreamStream
from ..routing.base import Attempt
from ..tokens import load_tokenizer, tokenizer_loaded
from ..wire.types import Usage
from .billing import usage_to_bill
from .call import Call, Reply
from .stream_chunks import (RelayedText, has_content, kept_output_chars, output_too_long, spec_chunk,
                            unreadable_chunk)

if TYPE_CHECKING:
    from .chat import ChatService

__all__ = ["open_stream", "ChatStream", "ClientSink"]

DONE = b"data: [DONE]\n\n"
CLIENT_CLOSED_STATUS = 499   # nginx's "client closed request", for usage records and metrics


class ClientSink(Protocol):
    """Where a pushed stream's bytes go (the HTTP layer's client connection)."""

    def write(self, data: bytes) -> bool:
        """Send now; False when the client takes no more for now (or is gone)."""

    async def wait_writable(self) -> bool:
        """Until the client takes bytes again (True) or is gone (False); raises TimeoutError when
        it stops reading for longer than the write timeout."""


@dataclass(slots=True)
class _Opened:
    upstream: UpstreamStream
    decoder: SSEDecoder
    translator: StreamTranslator
    held: list[dict]
    t0: float
    ttft_ms: float | None


def _note_keepalives(upstream: UpstreamStream, data: bytes, decoder: SSEDecoder, events: list) -> None:
    """A read that completed no event but keep-alives (SSE comments, blank lines, `ping` events)
    does not reset the idle timeout, nor does one that brought only part of an event (a line
    dripped a byte at a time); the keep-alives' bytes are bounded too (transport.UpstreamStream)."""
    if not any(ev.event != "ping" for ev in events):
        upstream.kept_alive(len(data) if decoder.between_events else 0)


def _build_stream(call: Call, attempt: Attempt) -> UpstreamRequest:
    return adapter_for(attempt.deployment.vendor.protocol).build_request(call.request_for(attempt),
                                                                         attempt.deployment, stream=True)


async def _send_stream(svc: "ChatService", call: Call, attempt: Attempt, up: UpstreamRequest) -> _Opened:
    dep = attempt.deployment
    adapter = adapter_for(dep.vendor.protocol)
    t0 = time.perf_counter()
    upstream = await svc.d.transport.open(up, provider=dep.vendor.name)
    if upstream.status >= 400:
        try:
            body = await upstream.read_all()
        finally:
            upstream.close()
        raise adapter.map_error(upstream.status, upstream.headers, body, dep)
    opened = _Opened(upstream, SSEDecoder(), adapter.stream_translator(call.req, dep), [], t0, None)
    hold_s = svc.d.settings.stream_hold_ms / 1000 - (time.perf_counter() - t0)
    try:
        # a cancelled read loses no bytes, so the hold's deadline can simply cancel it
        async with asyncio.timeout(max(0.0, hold_s)):
            while not has_content(opened.held, dep.vendor.name) and not opened.translator.done:
                data = await upstream.read()
                if not data:
                    raise UpstreamUnavailable(f"{dep.vendor.name}: stream ended before any content",
                                              provider=dep.vendor.name)
                events = opened.decoder.feed(data)
                _note_keepalives(upstream, data, opened.decoder, events)
                for ev in events:
                    opened.held.extend(opened.translator.feed(ev))
    except TimeoutError:
        pass                       # hold budget spent: commit to this upstream as it is
    except BaseException:
        upstream.close()
        raise
    try:
        for c in opened.held:      # one that cannot be written back (nested too deep): fail over now
            orjson.dumps(c)
    except TypeError:
        upstream.close()
        raise unreadable_chunk(dep.vendor.name) from None
    if has_content(opened.held, dep.vendor.name):
        opened.ttft_ms = (time.perf_counter() - call.started) * 1000
    elif opened.translator.done:     # `data: [DONE]` (or a usage chunk) and nothing else: an empty 200 was relayed
        upstream.close()
        raise UpstreamUnavailable(f"{dep.vendor.name}: stream ended before any content", provider=dep.vendor.name)
    return opened


async def open_stream(svc: "ChatService", call: Call) -> Reply:
    attempt, opened = await svc.run_attempts(call, _build_stream, lambda c, a, up: _send_stream(svc, c, a, up))
    headers = call.headers(attempt)
    headers["x-routerone-overhead-ms"] = f"{(opened.t0 - call.started) * 1000:.3f}"
    return Reply(200, headers, stream=ChatStream(svc, call, attempt, opened))


class ChatStream:
    def __init__(self, svc: "ChatService", call: Call, attempt: Attempt, opened: _Opened) -> None:
        self.svc, self.call, self.attempt, self.o = svc, call, attempt, opened
        self.created = int(time.time())
        self.stream_id = f"chatcmpl-{call.request_id}"
        # what every chunk says about itself, whatever the upstream said (one dict.update per chunk)
        self._stamp = {"id": self.stream_id, "object": "chat.completion.chunk", "created": self.created,
                       "model": attempt.model.id}
        rl = svc.d.request_log
        self._text = RelayedText(keep_log=rl is not None and rl.content)   # counted as it passes (bounded)
        self._relayed = self._text.add
        # /v1/responses keeps the whole output (its done events, response.completed and the stored
        # response carry it): an upstream streaming on far past what the request allows is ended
        self._allowed_tokens = call.req.max_tokens or attempt.model.output_cap
        self._max_chars = kept_output_chars(self._allowed_tokens) if call.req.protocol == "responses" else None
        self._finished = False
        self._said = False              # a chunk of the read being framed said something (spec_chunk)
        self._numbering = StreamNumbering()   # choices and tool calls numbered 0, 1, ... as OpenAI does
        self._settled = False
        self.ended = False              # true while the last bytes are being handed out
        self._sink: ClientSink | None = None
        self._feed_data = self._data_only = None
        self._partial: list[bytes] = []
        self._gen = self._run()

    @property
    def has_held_chunks(self) -> bool:
        """Chunks read during the hold are waiting: the first iteration yields them at once."""
        return bool(self.o.held)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen

    def abandon(self) -> None:
        """The client went away: keep reading upstream (bounded) so the generated tokens are billed."""
        self.svc.spawn(self._drain(self.svc.d.settings.abandoned_stream_drain_s))

    async def _drain(self, limit_s: float) -> None:
        async def consume() -> None:
            async for _ in self._gen:
                pass
        try:
            await asyncio.wait_for(consume(), limit_s)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - whatever happened, settle below
            pass
        finally:
            await self.close()

    def _frame(self, chunk: dict, own: bool = False) -> bytes:
        """The chunk as an SSE event, its text counted. A chunk of the wrong shape (choices, a delta,
        tool calls or a function that are not what the protocol says; content, arguments or a
        finish_reason that are not text; a choice or tool call index that is not an integer, an id
        or a name that is not text; one nested too deep to be written) is an upstream failure: the
        stream ends with an error and is settled. What a server may leave out or name its own way
        is put as OpenAI's protocol has it: choices and tool calls numbered 0, 1, ... in the order
        they come (`StreamNumbering`; not Router One's `own` chunks), a tool call's function ({}),
        a missing delta ({}), a role other than
        assistant, logprobs that are not an object (null), a finish_reason of its own
        (`spec_finish_reason`), a tool call type other than "function", a system_fingerprint or
        service_tier of the wrong type or value (`spec_envelope`)."""
        chunk.update(self._stamp)     # keys the upstream sent keep their place, as with item assignment
        if "system_fingerprint" in chunk or "service_tier" in chunk:
            spec_envelope(chunk)
        try:
            finished, said = spec_chunk(chunk, None if own else self._numbering, self._relayed)
            if finished:
                self._finished = True
            if self._max_chars is not None and self._text.chars > self._max_chars and not own:
                raise output_too_long(self.attempt.deployment.vendor.name, self._allowed_tokens)
            if said:
                self._said = True
            return b"data: " + orjson.dumps(chunk) + b"\n\n"     # TypeError: nested too deep to write
        except (AttributeError, TypeError):
            raise unreadable_chunk(self.attempt.deployment.vendor.name) from None

    def push_to(self, sink: "ClientSink") -> None:
        """Before the first iteration: relay the body by pushing each upstream piece, translated and
        framed, straight to `sink` from the upstream's read callback (no task wake-up per chunk),
        where the upstream connection allows it; the iteration then yields only the held chunks and
        the last bytes. Without it (or on a connection that cannot push) every read is yielded."""
        self._sink = sink

    def _frames_of(self, data: bytes) -> bytes:
        """What one upstream read becomes for the client: its events translated, framed and joined
        (b"" at the end of the body: what the decoder still held)."""
        out: list[bytes] = []
        whole_events = False             # the decoder's path: this read ended on an event boundary, with events
        quiet = False                    # ... and each was empty by its protocol (translator.quiet)
        frame, translator = self._frame, self.o.translator
        # whole one-line data events (how OpenAI-protocol upstreams send) go to the translator as
        # bytes; anything else takes the full WHATWG decoder
        payloads = self._data_only(data) if self._data_only is not None and data else None
        self._said = False
        try:
            if payloads is not None:
                feed_data = self._feed_data
                for p in payloads:
                    for c in feed_data(p):
                        out.append(frame(c))
            else:
                decoder = self.o.decoder
                events = decoder.feed(data) if data else decoder.close()
                if data:
                    _note_keepalives(self.o.upstream, data, decoder, events)
                    whole_events = decoder.between_events and any(ev.event != "ping" for ev in events)
                quiet = True
                for ev in events:
                    for c in translator.feed(ev):
                        out.append(frame(c))
                    quiet = quiet and translator.quiet
        except UpstreamError:
            self._partial = out          # the chunks before the fault still go out, before the error
            raise
        if not self._said and data and (payloads is not None or whole_events) \
                and (self._feed_data is not None or quiet):
            # Whole events that gave the client nothing are keep-alives, or such an upstream would
            # hold the stream and its hold open for ever. OpenAI protocol: judged on the chunks
            # (`{"choices": []}`, or choices whose delta says nothing: `{"delta": {}}`; relayed all
            # the same). Anthropic and Gemini: events their translator calls empty (`quiet`: a delta
            # of empty text, a chunk with no parts), not all that relay nothing (a signature delta
            # or redacted thinking relays nothing either, after minutes of real work).
            self.o.upstream.kept_alive(len(data))
        if not out:
            return b""
        if self.o.ttft_ms is None:
            self.o.ttft_ms = (time.perf_counter() - self.call.started) * 1000
        return out[0] if len(out) == 1 else b"".join(out)

    def _is_done(self) -> bool:
        return self.o.translator.done

    async def _push(self) -> None:
        """Pump the upstream into the sink until the upstream is done or has ended, or the client
        is gone (then the reads go on, yielded, so that the relay sees it and abandons the stream)."""
        sink, upstream = self._sink, self.o.upstream
        while True:
            verdict = await upstream.pump(self._frames_of, sink.write, self._is_done)
            if verdict != "full":
                return
            if not await sink.wait_writable():   # the client is gone
                self._sink = None
                return

    async def _run(self) -> AsyncIterator[bytes]:
        """One write per upstream read: the frames that read produced, joined."""
        o, error = self.o, None
        translator, frames_of = o.translator, self._frames_of
        feed_data = getattr(translator, "feed_data", None)
        self._feed_data = feed_data
        self._data_only = o.decoder.data_only if feed_data is not None else None
        out: list[bytes] = []
        try:
            for c in o.held:
                out.append(self._frame(c))
            if self._sink is not None and getattr(o.upstream, "pump", None) is not None and not translator.done:
                if out:              # the held chunks go out first (with the headers), through the relay
                    yield b"".join(out)
                    out = []
                await self._push()
            read = o.upstream.read
            while not translator.done:
                if out:
                    yield out[0] if len(out) == 1 else b"".join(out)
                    out = []
                data = await read()
                framed = frames_of(data)
                if framed:
                    out.append(framed)
                if not data:
                    break
            if not (o.translator.done or self._finished):
                raise UpstreamUnavailable("The upstream stream ended unexpectedly before it finished",
                                          provider=self.attempt.deployment.vendor.name)
        except UpstreamError as exc:
            error = exc
            out += self._partial
        finally:
            o.upstream.close()
        usage, cost, pending = await self._settle(error)
        if error is None and pending:
            error = ServiceUnavailable(
                f"The reply is complete, but its charge ({cost / 1_000_000:.6f} USD) could not be recorded: "
                "Router One cannot reach its database. It will be recorded when the database is back; "
                "there is no need to retry the request.", code="settle_pending")
        if error is not None:
            out.append(self._frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "error", "logprobs": None}]}, own=True))
            # what the failed stream was billed: for a pending charge (its cost is announced), and on
            # /v1/responses always (response.failed carries the usage; chat streams keep their shape)
            if self.call.req.include_usage and (pending or self.call.req.protocol == "responses"):
                out.append(self._frame({"choices": [], "usage": {**usage.to_openai(), "cost": cost / 1_000_000}}, own=True))
            out.append(b"data: " + error.body() + b"\n\n")
            self.ended = True
            yield b"".join(out)
            return
        if self.call.req.include_usage:
            u = {**usage.to_openai(), "cost": cost / 1_000_000}
            out.append(self._frame({"choices": [], "usage": u}, own=True))
        out.append(DONE)
        self.ended = True
        yield b"".join(out)

    async def _tokenizer_loaded(self) -> None:
        """Before total() counts relayed text with the tokenizer: its first load (~1 s) never on
        the event loop (before the settled mark: a cancellation meanwhile leaves the settle to close())."""
        if not tokenizer_loaded() and self._text.counter.pending_chars:
            await asyncio.to_thread(load_tokenizer)

    async def _settle(self, error: RouterOneError | None, *,
                      client_closed: bool = False) -> tuple[Usage, int, bool]:
        """(usage, charge, pending): pending when the charge could not be written yet."""
        if self._settled:
            return Usage(), 0, False
        counted = False

        async def own_count() -> Usage:
            nonlocal counted
            counted = True
            await self._tokenizer_loaded()
            # the prompt as Router One counts it (Call.counted_prompt_tokens), not the reservation's bound
            return Usage(await self.call.counted_prompt_tokens(), self._text.counter.total(), estimated=True)
        if error is not None or client_closed:
            await self._tokenizer_loaded()      # what was relayed is counted below whatever was reported
        usage = await usage_to_bill(self.o.translator.usage, prompt_tokens=self.call.prompt_tokens,
                                    has_output=lambda: not self._text.counter.empty, count=own_count)
        if self._settled:            # settled meanwhile (close(), while the tokenizer loaded)
            return Usage(), 0, False
        self._settled = True
        billing = self.svc.d.billing
        if not counted and (error is not None or client_closed):
            # the upstream's final count never came (Anthropic's message_start says 1): bill at
            # least what was relayed
            usage.completion_tokens = max(usage.completion_tokens, self._text.counter.total())
        usage = billing.check_usage(self.call.request_id, usage)
        duration_ms = (time.perf_counter() - self.o.t0) * 1000
        health = self.svc.d.health
        dep_id = self.attempt.deployment.id
        if error is not None:
            health.record_failure(dep_id)
        elif not client_closed:
            health.record_success(dep_id, ttft_ms=self.o.ttft_ms, duration_ms=duration_ms,
                                  completion_tokens=usage.completion_tokens)
        status, code = (error.status, error.code) if error else (CLIENT_CLOSED_STATUS, "client_closed") \
            if client_closed else (200, None)
        record = self.svc.usage_record(self.call, self.attempt, usage, status=status, error_type=code,
                                       ttft_ms=self.o.ttft_ms)
        s = await billing.settle(self.call.hold, self.attempt.model.price, usage, record)
        await self.svc.finish(self.call, self.attempt, usage, s.charged_micros, status=status,
                              error_type=error.metric_code if error else code,
                              ttft_ms=self.o.ttft_ms, record=record,
                              completion_text=self._text.logged())
        return usage, s.charged_micros, s.pending

    async def close(self) -> None:
        """Called by the HTTP layer after the last byte (or on shutdown): never leave a hold open.
        A stream cut short here was given up by the client (or by shutdown), not by the upstream:
        it is billed for what was generated and not counted against the deployment's health."""
        if not self._settled:
            await self._gen.aclose()
            self.o.upstream.close()      # idempotent; a stream never iterated has not closed it
            if not self._settled:
                await self._settle(None, client_closed=True)

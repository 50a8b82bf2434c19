"""Keep-alives do not hold a stream open for ever. An upstream that, after some content, sends only
SSE comments (`: OPENROUTER PROCESSING`, as OpenRouter does while it waits) or Anthropic `ping`
events reset the idle timer with every one: the stream, its connection and the caller's balance
hold stayed open as long as the upstream liked. Now the time since the last real event counts,
keep-alives or not: past `idle_timeout_s` the stream ends with an error event and is settled for
what was relayed. Keep-alives inside that bound still keep a slow stream alive; a flood of them
(over 1 MiB between two events) ends the stream at once.

Real gateway on a real socket, official `openai` and `anthropic` SDKs; only the upstreams are faked.
Directive in the prompt: [[ka:MODE]]."""
from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import anthropic
import openai
import orjson
import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import OUT_MICROS, SMALL, settled_rows, write_money_catalog  # noqa: E402

from routerone.settings import ProviderSettings, Settings  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402
from routerone.testing.threaded import ThreadedServer  # noqa: E402

IDLE_S = 1.0
ANTHROPIC_MODEL = "claude-3-5-haiku-20241022"
GEMINI_MODEL = "gemini-2.5-flash"
_MODE = re.compile(r"\[\[ka:(\w+)\]\]")


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"


# deltas that give the client nothing: none, a role again, empty content or a null one
EMPTY_CHOICES = {"delta_empty": {}, "delta_role": {"role": "assistant"}, "delta_blank": {"content": ""},
                 "delta_null": {"content": None, "tool_calls": None}}


def _anthropic(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **data}) + b"\n\n"


# Anthropic events that say nothing, sent for ever after some text (`ping` itself: the messages test)
EMPTY_ANTHROPIC = {
    "anthropic_blank_text": _anthropic("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": ""}}),
    "anthropic_ping_data_only": b'data: {"type": "ping"}\n\n',          # a ping without its `event:` line
    "anthropic_empty_event": b"event: message\ndata: {}\n\n",
    "anthropic_message_delta_empty": _anthropic("message_delta", {"delta": {}}),
}
_GEMINI_USAGE = {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6}


def _gemini(candidates: list | None, usage: dict | None = _GEMINI_USAGE) -> bytes:
    event: dict = {"modelVersion": GEMINI_MODEL, "responseId": "r1"}
    if candidates is not None:
        event["candidates"] = candidates
    if usage is not None:
        event["usageMetadata"] = usage
    return b"data: " + orjson.dumps(event) + b"\r\n\r\n"


# Gemini events that say nothing, sent for ever after some text
EMPTY_GEMINI = {
    "gemini_no_parts": _gemini([{"content": {"role": "model", "parts": []}, "index": 0}]),
    "gemini_blank_text": _gemini([{"content": {"role": "model", "parts": [{"text": ""}]}, "index": 0}]),
    "gemini_no_content": _gemini([{"index": 0}]),
    "gemini_no_candidates": _gemini(None),
    "gemini_bare": _gemini(None, None),
}


class KeepAliveUpstream(ThreadedServer):
    """`forever`: content, then a keep-alive every 50 ms for up to 20 s. `slow`: content, keep-alives
    for 0.6 s (within the idle timeout), more content, keep-alives again for 0.6 s, the end."""

    def __init__(self) -> None:
        super().__init__(self._app)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1beta/models/{action}", self._gemini)
        return app

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        modes = _MODE.findall((await request.read()).decode())
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_gemini([{"content": {"role": "model", "parts": [{"text": "hello"}]}, "index": 0}]))
        if modes and modes[-1] in EMPTY_GEMINI:
            await self._keepalives(resp, EMPTY_GEMINI[modes[-1]], 20)
            return resp
        for n, word in enumerate((" there", " friend"), start=2):      # real events, slower than the idle timeout
            await asyncio.sleep(0.6)
            usage = {"promptTokenCount": 5, "candidatesTokenCount": n, "totalTokenCount": 5 + n}
            await resp.write(_gemini([{"content": {"role": "model", "parts": [{"text": word}]}, "index": 0}], usage))
        await resp.write(_gemini([{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP",
                                   "index": 0}], {"promptTokenCount": 5, "candidatesTokenCount": 3,
                                                  "totalTokenCount": 8}))
        return resp

    @staticmethod
    async def _keepalives(resp: web.StreamResponse, beat: bytes, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                await resp.write(beat)
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass                     # the gateway gave up on us, as it should

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        mode = _MODE.findall((await request.read()).decode())[-1]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        if mode == "flood":
            resp.enable_compression(web.ContentCoding.gzip)
        await resp.prepare(request)
        await resp.write(_chunk({"role": "assistant", "content": "hello "}))
        beat = b": OPENROUTER PROCESSING\n\n"
        if mode == "forever":
            await self._keepalives(resp, beat, 20)
            return resp
        if mode == "empty":          # events that give the client nothing, for up to 20 s
            await self._keepalives(resp, b'data: {"id":"c","object":"chat.completion.chunk","choices":[]}\n\n', 20)
            return resp
        if mode == "audio":          # 2 MiB of audio deltas over 1.5 s (no text): real output, then the end
            for _ in range(32):
                await resp.write(_chunk({"audio": {"id": "audio_1", "data": "A" * 65536}}))
                await asyncio.sleep(0.05)
            await resp.write(_chunk({}, "stop") + b"data: [DONE]\n\n")
            return resp
        if mode in EMPTY_CHOICES:    # a choice whose delta says nothing, for up to 20 s
            await self._keepalives(resp, _chunk(EMPTY_CHOICES[mode]), 20)
            return resp
        if mode == "drip":           # an event that never ends: a byte every 100 ms, for up to 20 s
            await self._keepalives(resp, b"x", 20)
            return resp
        if mode == "flood":          # 64 MiB of blank lines, gzip-compressed (~64 KB on the wire)
            try:
                for _ in range(64):
                    await resp.write(b"\n" * (1 << 20))
            except ConnectionError:
                pass
            return resp
        for word in ("there ", "friend"):
            await self._keepalives(resp, beat, 0.6)
            await resp.write(_chunk({"content": word}))
        await resp.write(_chunk({}, "stop"))
        await resp.write(b"data: " + orjson.dumps({"id": "c", "choices": [], "usage": {
            "prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}) + b"\n\ndata: [DONE]\n\n")
        return resp

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_anthropic("message_start", {"message": {
            "id": "msg_k", "type": "message", "role": "assistant", "model": ANTHROPIC_MODEL, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}}))
        await resp.write(_anthropic("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
        await resp.write(_anthropic("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "hello"}}))
        modes = _MODE.findall(body.decode())
        await self._keepalives(resp, EMPTY_ANTHROPIC[modes[-1]] if modes else _anthropic("ping", {}), 20)
        return resp


@pytest.fixture(scope="module", params=[True, False], ids=["http1", "aiohttp"])
def gw(request, tmp_path_factory):
    """Against both upstream clients: the lean HTTP/1.1 one (plain-http upstreams, pushed streams)
    and aiohttp's (https upstreams; `upstream_http1 = false`)."""
    tmp = tmp_path_factory.mktemp("keepalives")
    with KeepAliveUpstream() as up:
        settings = Settings(database_url=f"sqlite:///{tmp / 'r1.db'}", demo="off", max_retries=0,
                            usage_flush_interval_s=0.05, idle_timeout_s=IDLE_S, stream_hold_ms=200,
                            upstream_http1=request.param,
                            catalog_path=str(write_money_catalog(tmp / "catalog.toml")),
                            providers={"openai": ProviderSettings(api_key="sk-up-0123456789", base_url=up.url + "/v1"),
                                       "anthropic": ProviderSettings(api_key="sk-ant-0123456789", base_url=up.url),
                                       "gemini": ProviderSettings(api_key="gem-up-0123456789",
                                                                  base_url=up.url + "/v1beta")})
        with Gateway(settings) as gw:
            yield gw



def test_a_stream_of_keepalives_only_ends_after_the_idle_timeout_and_is_settled(gw):
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    t0 = time.monotonic()
    text = ""
    with pytest.raises(openai.APIError) as ei:
        for chunk in client.chat.completions.create(model=SMALL, stream=True, max_tokens=50,
                                                    messages=[{"role": "user", "content": "hi [[ka:forever]]"}]):
            text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    elapsed_s = time.monotonic() - t0
    assert text == "hello "
    assert "stalled" in str(ei.value) and "keep-alives do not count" in str(ei.value)
    assert IDLE_S <= elapsed_s < IDLE_S + 4, elapsed_s
    row = settled_rows(gw, account_id, 1)[0]
    assert row.status == 504 and row.completion_tokens >= 1 and row.cost_micros == row.completion_tokens * OUT_MICROS


def test_chunks_without_choices_sent_for_ever_stall_like_keepalives(gw):
    """An OpenAI-protocol upstream that, after some content, sends `{"choices": []}` every 50 ms:
    each was a real event, so the stream, its connection and the hold stayed open as long as the
    upstream liked. Events that give the client nothing count as keep-alives now."""
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    t0 = time.monotonic()
    with pytest.raises(openai.APIError) as ei:
        list(client.chat.completions.create(model=SMALL, stream=True, max_tokens=50,
                                            messages=[{"role": "user", "content": "hi [[ka:empty]]"}]))
    assert "stalled" in str(ei.value) and time.monotonic() - t0 < IDLE_S + 4, (str(ei.value), time.monotonic() - t0)
    row = settled_rows(gw, account_id, 1)[0]
    assert row.status == 504 and row.completion_tokens >= 1


@pytest.mark.parametrize("mode", sorted(EMPTY_CHOICES))
def test_choices_whose_delta_says_nothing_sent_for_ever_stall_like_keepalives(gw, mode):
    """As `{"choices": []}`: `{"choices": [{"delta": {}}]}` every 50 ms after some content was relayed
    (a delta that says nothing) and counted as activity, so the stream and its hold stayed open for
    as long as the upstream liked (20 s here with a 1 s idle timeout)."""
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    t0 = time.monotonic()
    with pytest.raises(openai.APIError) as ei:
        list(client.chat.completions.create(model=SMALL, stream=True, max_tokens=50,
                                            messages=[{"role": "user", "content": f"hi [[ka:{mode}]]"}]))
    assert "stalled" in str(ei.value) and time.monotonic() - t0 < IDLE_S + 4, (str(ei.value), time.monotonic() - t0)
    row = settled_rows(gw, account_id, 1)[0]
    assert row.status == 504 and row.completion_tokens >= 1


@pytest.mark.parametrize("mode", sorted(EMPTY_ANTHROPIC) + sorted(EMPTY_GEMINI))
def test_anthropic_and_gemini_events_that_say_nothing_sent_for_ever_stall_like_keepalives(gw, mode):
    """As the OpenAI protocol's empty deltas: an Anthropic `content_block_delta` with empty text, a
    ping without its `event:` line, an empty event or an empty `message_delta`, a Gemini chunk with no
    parts, empty text, no content or no candidates, every 50 ms after some text, each counted as
    activity: the stream and its hold stayed open until stream_timeout_s (20 s here, idle 1 s)."""
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    model = ANTHROPIC_MODEL if mode.startswith("anthropic") else GEMINI_MODEL
    t0 = time.monotonic()
    text = ""
    with pytest.raises(openai.APIError) as ei:
        for chunk in client.chat.completions.create(model=model, stream=True, max_tokens=50,
                                                    messages=[{"role": "user", "content": f"hi [[ka:{mode}]]"}]):
            text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    assert "stalled" in str(ei.value) and time.monotonic() - t0 < IDLE_S + 4, (str(ei.value), time.monotonic() - t0)
    assert text == "hello"
    row = settled_rows(gw, account_id, 1)[0]
    assert row.status == 504 and row.completion_tokens >= 1


def test_a_slow_gemini_stream_of_real_events_is_not_cut(gw):
    """Gemini events that carry text (each later than the one before, within the idle timeout) and
    its last chunk (empty text, a finishReason and the final usage) are activity: the stream ends."""
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    chunks = list(client.chat.completions.create(model=GEMINI_MODEL, stream=True, max_tokens=50,
                                                 messages=[{"role": "user", "content": "hi"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello there friend"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert settled_rows(gw, account_id, 1)[0].status == 200


def test_a_delta_without_text_that_says_something_is_activity(gw):
    """Audio deltas (no text, 2 MiB over longer than the idle timeout) are output: the stream runs to
    its end (as keep-alives it would have been cut at 1 MiB)."""
    key, _ = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    chunks = list(client.chat.completions.create(model=SMALL, stream=True, max_tokens=50,
                                                 messages=[{"role": "user", "content": "hi [[ka:audio]]"}]))
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.audio) == 32
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_an_event_dripped_a_byte_at_a_time_stalls_like_silence(gw):
    """Any byte reset the idle timer: an event line that never ends, a byte every 50 ms, held the
    stream open for as long as the upstream went on."""
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    t0 = time.monotonic()
    with pytest.raises(openai.APIError) as ei:
        list(client.chat.completions.create(model=SMALL, stream=True, max_tokens=50,
                                            messages=[{"role": "user", "content": "hi [[ka:drip]]"}]))
    assert "stalled" in str(ei.value) and time.monotonic() - t0 < IDLE_S + 4, (str(ei.value), time.monotonic() - t0)
    assert settled_rows(gw, account_id, 1)[0].status == 504


def test_keepalives_within_the_idle_timeout_keep_a_slow_stream_alive(gw):
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    chunks = list(client.chat.completions.create(model=SMALL, stream=True, max_tokens=50,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "hi [[ka:slow]]"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello there friend"
    assert chunks[-1].usage.completion_tokens == 3
    assert settled_rows(gw, account_id, 1)[0].status == 200


def test_anthropic_pings_alone_do_not_hold_a_messages_stream_open(gw):
    key, account_id = gw.new_key()
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    t0 = time.monotonic()
    events = []
    with pytest.raises(anthropic.APIError) as ei:
        with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=50,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            for ev in stream:
                events.append(ev.type)
    assert "stalled" in str(ei.value)
    assert time.monotonic() - t0 < IDLE_S + 4
    assert "content_block_delta" in events and "message_stop" not in events
    row = settled_rows(gw, account_id, 1)[0]
    assert row.status == 504 and row.completion_tokens >= 1


def test_a_flood_of_blank_lines_ends_the_stream_at_once(gw):
    """64 MiB of blank lines (a 64 KB gzip reply) kept the gateway's event loop busy decoding them for
    ~20 s, every other request waiting, the client seeing nothing; now over 1 MiB of keep-alives
    between two events ends the stream."""
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=60)
    t0 = time.monotonic()
    with pytest.raises(openai.APIError) as ei:
        list(client.chat.completions.create(model=SMALL, stream=True, max_tokens=50,
                                            messages=[{"role": "user", "content": "hi [[ka:flood]]"}]))
    assert "keep-alives" in str(ei.value) and time.monotonic() - t0 < 5, (str(ei.value), time.monotonic() - t0)
    row = settled_rows(gw, account_id, 1)[0]
    assert row.status == 502 and row.completion_tokens >= 1

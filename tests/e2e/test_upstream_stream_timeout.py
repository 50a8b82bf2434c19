"""Streams have an overall limit, `stream_timeout_s` (gateway-wide and per provider). An upstream
that trickles real content just under `idle_timeout_s` never stalled: the stream, its connection
and the caller's balance hold stayed open as long as the upstream went on. Past `stream_timeout_s`
the stream now ends as other mid-stream failures do (a `finish_reason: "error"` chunk and an error
event on chat; Anthropic's `error` event on /v1/messages; `response.failed` on /v1/responses) and
what was relayed is billed.

Real gateway on a real socket, official `openai` and `anthropic` SDKs; only the upstreams are faked:
each sends a word every 100 ms for up to 10 s (well within the 1 s idle timeout)."""
from __future__ import annotations

import asyncio
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
STREAM_S = 1.5             # gateway-wide
ANTHROPIC_STREAM_S = 3.0   # the anthropic provider's own
ANTHROPIC_MODEL = "claude-3-5-haiku-20241022"
TRICKLE_S = 0.1


def _chunk(delta: dict) -> bytes:
    return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}) + b"\n\n"


def _anthropic(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **data}) + b"\n\n"


class TricklingUpstream(ThreadedServer):
    """OpenAI and Anthropic protocols: a word every TRICKLE_S, for up to 10 s, never an end."""

    def __init__(self) -> None:
        super().__init__(self._app)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._messages)
        return app

    @staticmethod
    async def _trickle(resp: web.StreamResponse, event: bytes) -> None:
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                await resp.write(event)
                await asyncio.sleep(TRICKLE_S)
        except ConnectionError:
            pass                     # the gateway gave up on us, as it should

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_chunk({"role": "assistant", "content": ""}))
        await self._trickle(resp, _chunk({"content": "word "}))
        return resp

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_anthropic("message_start", {"message": {
            "id": "msg_t", "type": "message", "role": "assistant", "model": ANTHROPIC_MODEL, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}}))
        await resp.write(_anthropic("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
        await self._trickle(resp, _anthropic("content_block_delta",
                                             {"index": 0, "delta": {"type": "text_delta", "text": "word "}}))
        return resp


@pytest.fixture(scope="module", params=[True, False], ids=["http1", "aiohttp"])
def gw(request, tmp_path_factory):
    """Against both upstream clients: the lean HTTP/1.1 one (pushed streams) and aiohttp's."""
    tmp = tmp_path_factory.mktemp("stream_timeout")
    with TricklingUpstream() as up:
        settings = Settings(database_url=f"sqlite:///{tmp / 'r1.db'}", demo="off", max_retries=0,
                            usage_flush_interval_s=0.05, idle_timeout_s=IDLE_S, stream_timeout_s=STREAM_S,
                            stream_hold_ms=200, upstream_http1=request.param,
                            catalog_path=str(write_money_catalog(tmp / "catalog.toml")),
                            providers={"openai": ProviderSettings(api_key="sk-up-0123456789", base_url=up.url + "/v1"),
                                       "anthropic": ProviderSettings(api_key="sk-ant-0123456789", base_url=up.url,
                                                                     stream_timeout_s=ANTHROPIC_STREAM_S)})
        with Gateway(settings) as gw:
            yield gw



def _assert_billed_for_relayed(gw: Gateway, account_id: int, words: int, *, catalog_priced: bool = True) -> None:
    row = settled_rows(gw, account_id, 1)[0]
    assert row.status == 504 and row.error_type == "upstream_timeout", (row.status, row.error_type)
    assert row.completion_tokens >= words and row.cost_micros > 0
    if catalog_priced:
        assert row.cost_micros == row.completion_tokens * OUT_MICROS


def test_a_trickling_chat_stream_ends_at_the_stream_timeout_and_is_billed(gw):
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    t0 = time.monotonic()
    text, finishes = "", []
    with pytest.raises(openai.APIError) as ei:
        for chunk in client.chat.completions.create(model=SMALL, stream=True, max_tokens=100,
                                                    messages=[{"role": "user", "content": "hi"}]):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finishes.append(chunk.choices[0].finish_reason)
    elapsed_s = time.monotonic() - t0
    assert STREAM_S <= elapsed_s < STREAM_S + 3, (elapsed_s, str(ei.value))
    assert "stream_timeout_s" in str(ei.value), str(ei.value)
    assert finishes[-1] == "error"
    words = text.count("word ")
    assert words >= 3
    _assert_billed_for_relayed(gw, account_id, words)


def test_a_trickling_responses_stream_ends_with_response_failed(gw):
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    t0 = time.monotonic()
    events = list(client.responses.create(model=SMALL, input="hi", stream=True, max_output_tokens=100))
    assert STREAM_S <= time.monotonic() - t0 < STREAM_S + 3
    types = [e.type for e in events]
    assert "response.output_text.delta" in types and types[-1] == "response.failed", types[-3:]
    assert "response.completed" not in types
    failed = events[-1].response
    assert "stream_timeout_s" in failed.error.message
    _assert_billed_for_relayed(gw, account_id, 3)


def test_a_trickling_messages_stream_ends_with_an_error_event_at_the_providers_own_limit(gw):
    """/v1/messages on an Anthropic upstream whose provider sets its own, longer `stream_timeout_s`."""
    key, account_id = gw.new_key()
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    t0 = time.monotonic()
    events = []
    with pytest.raises(anthropic.APIError) as ei:
        with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=100,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            for ev in stream:
                events.append(ev.type)
    elapsed_s = time.monotonic() - t0
    assert ANTHROPIC_STREAM_S <= elapsed_s < ANTHROPIC_STREAM_S + 3, elapsed_s
    assert "stream_timeout_s" in str(ei.value)
    assert "content_block_delta" in events and "message_stop" not in events
    _assert_billed_for_relayed(gw, account_id, 3, catalog_priced=False)     # Anthropic's list price

"""An Anthropic upstream that sends readable events of the wrong kind, through /v1/messages (where
Router One relays an Anthropic upstream's own events and body: pass-through) and the chat API:
a `usage` that is not an object, an event `type` that is not a name (a number, a line break),
`event: ping` with `data: {}`, negative or absurd counts, a stream that stops without its final
count. Before: a 500 written into the open stream (or a 500 reply) after the charge, usage sent to
the client that was not what was billed, the relayed output billed as 1 token. Now: the client
gets a well-formed reply whose usage is what was charged, and the books are exact.

Real gateway on a real socket, official `anthropic` and `openai` SDKs; only the upstream is faked.
Directive in the prompt: [[case:NAME]], NAME a key of STREAMS / REPLIES."""
from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import settled_rows  # noqa: E402
from routerone.settings import ProviderSettings, Settings  # noqa: E402
from routerone.tokens import count_message_tokens, count_text_tokens  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402
from routerone.testing.threaded import ThreadedServer  # noqa: E402

MODEL = "claude-3-5-haiku-20241022"
_CASE = re.compile(r"\[\[case:(\w+)\]\]")
TEXT = "hello there my friend"


def _start(usage=None) -> tuple[str, dict]:
    return ("message_start", {"type": "message_start", "message": {
        "id": "msg_h", "type": "message", "role": "assistant", "model": MODEL, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": usage or {"input_tokens": 12, "output_tokens": 1}}})


BLOCK = [("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
         ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": TEXT}}),
         ("content_block_stop", {"type": "content_block_stop", "index": 0})]
STOP = ("message_stop", {"type": "message_stop"})


def _block(index: int) -> list[tuple[str, dict]]:
    return [(event, {**data, "index": index}) for event, data in BLOCK]


def _delta(usage) -> tuple[str, dict]:
    return ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                              "usage": usage})


STREAMS = {   # the upstream's events, as (event name, data); a data of None is sent as `{}`
    "usage_list": [_start(), *BLOCK, _delta([1, 2]), STOP],
    "usage_string": [_start(), *BLOCK, _delta("lots"), STOP],
    "type_number": [_start(), *BLOCK, ("x", {"type": 5}), _delta({"output_tokens": 6}), STOP],
    "type_newline": [_start(), *BLOCK, ("x", {"type": "message_stop\n\nevent: message_delta"}),
                     _delta({"output_tokens": 6}), STOP],
    "ping_no_type": [_start(), ("ping", None), *BLOCK, _delta({"output_tokens": 6}), STOP],
    "negative": [_start({"input_tokens": -12, "output_tokens": 1}), *BLOCK, _delta({"output_tokens": -50}), STOP],
    "absurd": [_start({"input_tokens": 10 ** 30, "output_tokens": 1}), *BLOCK, _delta({"output_tokens": 2 ** 70}), STOP],
    "no_final_count": [_start(), *BLOCK, STOP],
    # a block numbered 10**9, or 1 as the first: relayed as sent, the anthropic SDK's stream helper raised
    # IndexError (it files a delta at content[index]; Anthropic numbers a message's blocks 0, 1, ...)
    "index_huge": [_start(), *_block(10 ** 9), _delta({"output_tokens": 6}), STOP],
    "index_from_1": [_start(), *_block(1), _delta({"output_tokens": 6}), STOP],
    # a delta to a block never started: no block for a client to put it in
    "index_unstarted": [_start(), *BLOCK, ("content_block_delta", {"type": "content_block_delta", "index": 7,
                                                                   "delta": {"type": "text_delta", "text": "x"}}),
                        _delta({"output_tokens": 6}), STOP],
    # an event nested 300 deep (orjson reads 1024 levels, writes 255): a 500 inside the relayed stream
    "deep": [_start(), *BLOCK, ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                         "delta": {"type": "text_delta", "text": "x"}, "x": "@@deep@@"}),
             _delta({"output_tokens": 6}), STOP],
}
DEEP = ("[" * 300 + "]" * 300).encode()
REPLIES = {   # non-streamed: `usage` of the message
    "usage_list": [1, 2], "usage_string": "lots", "negative": {"input_tokens": -12, "output_tokens": -50},
    "absurd": {"input_tokens": 10 ** 30, "output_tokens": 2 ** 70},
}


class AnthropicUpstream(ThreadedServer):
    def __init__(self) -> None:
        super().__init__(self._app)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        return app

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        name = _CASE.findall(raw.decode())[-1]
        if not body.get("stream"):
            msg = {"id": "msg_h", "type": "message", "role": "assistant", "model": MODEL,
                   "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": REPLIES.get(name, {"input_tokens": 12, "output_tokens": 6})}
            if name == "deep":
                msg["container"] = "@@deep@@"
            return web.Response(body=json.dumps(msg).encode().replace(b'"@@deep@@"', DEEP),  # json: ints beyond 64 bits
                                content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event, data in STREAMS[name]:
            if event == "content_block_delta" and name in ("deep", "index_unstarted"):
                await asyncio.sleep(0.2)     # after the hold: mid-stream
            await resp.write(f"event: {event}\ndata: {json.dumps(data or {})}\n\n".encode().replace(b'"@@deep@@"', DEEP))
        return resp


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile_anthropic")
    with AnthropicUpstream() as up:
        settings = Settings(database_url=f"sqlite:///{tmp / 'r1.db'}", demo="off", max_retries=0,
                            usage_flush_interval_s=0.05,
                            providers={"anthropic": ProviderSettings(api_key="sk-ant-up-0123456789", base_url=up.url)})
        with Gateway(settings) as gw:
            yield gw


def _ask(name: str) -> list[dict]:
    return [{"role": "user", "content": f"hi [[case:{name}]]"}]


@pytest.mark.parametrize("name", ["usage_list", "usage_string", "type_number", "type_newline", "ping_no_type",
                                  "negative", "absurd", "index_huge", "index_from_1"])
def test_a_messages_stream_relayed_from_anthropic_is_well_formed_and_says_what_was_billed(gw, name):
    key, account_id = gw.new_key()
    with httpx2.Client(timeout=30) as http:
        raw = http.post(gw.url + "/v1/messages", headers={"x-api-key": key},
                        json={"model": MODEL, "stream": True, "max_tokens": 50, "messages": _ask(name)})
    assert raw.status_code == 200 and "500 Internal" not in raw.text, raw.text[-300:]
    names = re.findall(r"^event: (.*)$", raw.text, re.M)
    assert names[-2:] == ["message_delta", "message_stop"] and all(re.fullmatch(r"[a-z_]+", n) for n in names), names
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    with client.messages.stream(model=MODEL, max_tokens=50, messages=_ask(name)) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == TEXT
    assert {e["index"] for e in map(json.loads, re.findall(r"^data: (.*)$", raw.text, re.M)) if "index" in e} <= {0}
    rows = settled_rows(gw, account_id, 2)
    assert all(r.status == 200 and 0 <= r.completion_tokens <= 1000 for r in rows), rows
    assert rows[0].completion_tokens == rows[1].completion_tokens == final.usage.output_tokens
    last = json.loads(re.findall(r"^event: message_delta\ndata: (.*)$", raw.text, re.M)[-1])
    assert last["usage"]["output_tokens"] == rows[0].completion_tokens
    assert final.usage.input_tokens == last["usage"]["input_tokens"] == rows[0].prompt_tokens
    assert last["usage"]["cost"] == rows[0].cost_micros / 1_000_000
    # message_start's counts (before anything is billed) are relayed only when they are plausible:
    # 10**30 or -12 there made the SDK warn and a typed client's int field overflow or go negative
    start = json.loads(re.findall(r"^event: message_start\ndata: (.*)$", raw.text, re.M)[0])["message"]["usage"]
    assert all(isinstance(v, int) and 0 <= v <= 10 ** 9 for k, v in start.items() if k.endswith("_tokens")), start


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_a_messages_reply_relayed_from_anthropic_says_what_was_billed(gw, name):
    """usage a list or a string was a 500 after the charge; negative or absurd counts were relayed as sent."""
    key, account_id = gw.new_key()
    msg = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30).messages.create(
        model=MODEL, max_tokens=50, messages=_ask(name))
    assert msg.content[0].text == TEXT
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200 and 0 <= row.prompt_tokens < 1000 and 0 <= row.completion_tokens <= 1000, row
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (row.prompt_tokens, row.completion_tokens)
    assert msg.usage.model_extra["cost"] == row.cost_micros / 1_000_000


@pytest.mark.parametrize("name", ["no_final_count", "usage_list"])
def test_a_stream_whose_final_count_never_came_is_billed_for_what_it_relayed(gw, name):
    """message_start says output_tokens 1; when no message_delta brings the real count (none at all,
    or a usage that is not an object), the relayed text was billed as that 1 token."""
    key, account_id = gw.new_key()
    flagged = gw.runtime.chat.d.billing.usage_flagged
    chunks = list(openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30).chat.completions.create(
        model=MODEL, stream=True, max_tokens=50, messages=_ask(name), stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    usage = chunks[-1].usage
    assert usage.completion_tokens >= 4, usage       # "hello there my friend", counted
    assert gw.runtime.chat.d.billing.usage_flagged > flagged
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200 and row.completion_tokens == usage.completion_tokens


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("name", ["negative"])
def test_implausible_anthropic_counts_are_billed_for_what_router_one_counted(gw, name, stream):
    """input_tokens -12 / output_tokens -50 billed 0 although text was relayed; now Router One's own
    counts of the prompt and of the text relayed, through the chat API (streamed and not) and
    /v1/messages alike. ("absurd", 10**30 / 2**70, already came out this way before session 7.)"""
    key, account_id = gw.new_key()
    ask = _ask(name)
    own = (count_message_tokens(ask[0]["content"], 1),   # the prompt counted, not the hold's bytes bound
            count_text_tokens(TEXT))
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    if stream:
        chunks = list(client.chat.completions.create(model=MODEL, stream=True, max_tokens=50, messages=ask,
                                                     stream_options={"include_usage": True}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
        usage = chunks[-1].usage
    else:
        usage = client.chat.completions.create(model=MODEL, max_tokens=50, messages=ask).usage
    assert (usage.prompt_tokens, usage.completion_tokens) == own
    msg = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30).messages.create(
        model=MODEL, max_tokens=50, messages=ask, stream=stream)
    if stream:
        events = list(msg)
        out_tokens = [e.usage.output_tokens for e in events if e.type == "message_delta"][-1]
    else:
        out_tokens = msg.usage.output_tokens
    assert out_tokens == own[1]
    rows = settled_rows(gw, account_id, 2)
    assert all(r.status == 200 and r.completion_tokens == own[1] and r.cost_micros > 0 for r in rows), rows
    assert rows[0].cost_micros == rows[1].cost_micros
    assert round(usage.model_extra["cost"] * 1_000_000) == rows[0].cost_micros


def test_a_messages_reply_or_event_nested_too_deep_to_relay_is_an_error_not_a_500(gw):
    """An Anthropic upstream's message (or stream event) with a field nested 300 deep, relayed as it came
    on /v1/messages: orjson reads it but cannot write it back, which was a 500 after the charge (and a
    500 written into the open stream). Now a 502 not charged, or the stream's error event, billed for
    the text relayed before it."""
    key, account_id = gw.new_key()
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    with pytest.raises(anthropic.APIStatusError) as ei:
        client.messages.create(model=MODEL, max_tokens=50, messages=_ask("deep"))
    assert ei.value.status_code == 502 and ei.value.body["error"]["type"] == "api_error"
    with httpx2.Client(timeout=30) as http:
        raw = http.post(gw.url + "/v1/messages", headers={"x-api-key": key},
                        json={"model": MODEL, "stream": True, "max_tokens": 50, "messages": _ask("deep")})
    assert raw.status_code == 200 and "event: error" in raw.text and "message_stop" not in raw.text, raw.text[-300:]
    rows = sorted(settled_rows(gw, account_id, 2), key=lambda r: r.stream)
    assert [(r.status, r.stream) for r in rows] == [(502, False), (502, True)]
    assert rows[0].cost_micros == 0 and rows[1].completion_tokens >= 4, rows    # TEXT was relayed, and billed


def test_a_delta_to_a_block_never_started_ends_a_relayed_stream_with_an_error(gw):
    key, account_id = gw.new_key()
    with httpx2.Client(timeout=30) as http:
        raw = http.post(gw.url + "/v1/messages", headers={"x-api-key": key},
                        json={"model": MODEL, "stream": True, "max_tokens": 50, "messages": _ask("index_unstarted")})
    assert raw.status_code == 200 and "event: error" in raw.text and "message_stop" not in raw.text, raw.text[-300:]
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 502 and row.completion_tokens >= 4, row      # TEXT was relayed, and billed

"""A gzip or deflate body that ends before its compressed stream does (the connection closed, or the
chunked terminator or a Content-Length came early) is an upstream failure, not a complete answer.
Before, the client took what had been decoded: a reply cut at a flush point parsed as a whole, and a
stream cut after its finish chunk ended as a clean 200, without the upstream's usage (billed on an
estimate). The cut here is at a flush point, so what arrived decodes cleanly; only the end is missing.

Through the real gateway on a real socket with the official `openai` SDK (router retries off): a
502 `upstream_unavailable`, nothing charged, for a reply; for a stream, the text relayed, then the
error finish and error event, and a charge for what was relayed. Against both upstream clients."""
from __future__ import annotations

import re
import sys
import zlib
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import OUT_MICROS, SMALL  # noqa: E402
from raw_upstream import RawUpstream, completion_json, gateway_over, settled_row, sse_stream  # noqa: E402

from routerone.testing.harness import Gateway  # noqa: E402

_CUT = re.compile(r"\[\[cut:(\w+)-(\w+)-(\w+)\]\]")     # [[cut:KIND-FRAMING-CODING]]
_WBITS = {"gzip": 31, "deflate": 15, "rawdeflate": -15}


def _flushed(pieces: list[bytes], coding: str) -> list[bytes]:
    """Each piece compressed and sync-flushed (as a server streaming a compressed body writes it);
    the compressed stream's end (final block, gzip trailer) is never written."""
    z = zlib.compressobj(6, zlib.DEFLATED, _WBITS[coding])
    return [z.compress(p) + z.flush(zlib.Z_SYNC_FLUSH) for p in pieces]


def _answer(request: dict) -> list[bytes]:
    kind, framing, coding = _CUT.findall(request["messages"][-1]["content"])[-1]
    if kind == "json":
        body = b"".join(_flushed([completion_json("hello world", SMALL)], coding))
        ctype = b"application/json"
    else:                     # the whole stream but its usage chunk and [DONE]: cut after the finish chunk
        events = [e + b"\n\n" for e in sse_stream(["hello ", "world"], SMALL).split(b"\n\n") if e]
        body = b"".join(_flushed(events[:-2], coding))
        ctype = b"text/event-stream"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nContent-Encoding: " \
        + (b"deflate" if "deflate" in coding else b"gzip") + b"\r\n"
    if framing == "length":
        return [head + b"Content-Length: %d\r\n\r\n" % len(body) + body]
    if framing == "chunked":
        return [head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n", b"0\r\n\r\n"]
    return [head + b"Connection: close\r\n\r\n" + body]          # close-delimited: the server closes


@pytest.fixture(scope="module")
def up():
    server = RawUpstream(_answer)
    yield server
    server.stop()


@pytest.fixture(scope="module", params=[True, False], ids=["http1", "aiohttp"])
def gw(request, up, tmp_path_factory):
    with gateway_over(up, tmp_path_factory.mktemp("truncated"), request.param) as gw:
        yield gw


def _client(gw: Gateway) -> tuple[openai.OpenAI, int]:
    key, account_id = gw.new_key()
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30), account_id


@pytest.mark.parametrize("framing, coding", [("length", "gzip"), ("chunked", "gzip"), ("close", "gzip"),
                                             ("chunked", "deflate"), ("close", "rawdeflate")])
def test_a_reply_whose_compressed_stream_ends_early_is_a_502_and_not_charged(gw, up, framing, coding):
    up.mode = "close" if framing == "close" else "keep"
    client, account_id = _client(gw)
    with pytest.raises(openai.InternalServerError) as ei:
        client.chat.completions.create(model=SMALL, messages=[{"role": "user", "content": f"[[cut:json-{framing}-{coding}]]"}])
    assert ei.value.status_code == 502
    assert ei.value.body["code"] == "upstream_unavailable" and "compressed" in ei.value.body["message"]
    row = settled_row(gw, account_id)
    assert row.status == 502 and row.cost_micros == 0


@pytest.mark.parametrize("framing, coding", [("chunked", "gzip"), ("close", "gzip"), ("chunked", "deflate")])
def test_a_stream_whose_compressed_stream_ends_early_ends_with_an_error_event(gw, up, framing, coding):
    up.mode = "close" if framing == "close" else "keep"
    client, account_id = _client(gw)
    text = ""
    with pytest.raises(openai.APIError) as ei:
        for chunk in client.chat.completions.create(
                model=SMALL, stream=True, stream_options={"include_usage": True},
                messages=[{"role": "user", "content": f"[[cut:stream-{framing}-{coding}]]"}]):
            text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    assert text == "hello world"
    assert "compressed" in str(ei.value)
    row = settled_row(gw, account_id)
    assert row.status == 502 and row.completion_tokens >= 1
    assert row.cost_micros == row.completion_tokens * OUT_MICROS      # what was relayed, input free

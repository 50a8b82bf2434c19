"""A gzip bomb inside a pushed chat-completions stream: after some content, 128 MiB of blank lines
in ~128 KiB. On the lean client's pushed path, one upstream read was decoded up to the per-read
bound (64 MiB) before anything looked at it: the keep-alive bound (1 MiB between two events)
tripped at the second MiB, but decoding went on into the connection's buffer to 64 MiB. Now decoding
stops when the client side is full or the pump has stopped, the compressed rest kept.

Through the real gateway on a real socket with the official `openai` SDK: the content, then a
clean error event, in a few seconds, with the process's traced memory bounded; against both clients."""
from __future__ import annotations

import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import OUT_MICROS, SMALL  # noqa: E402
from raw_upstream import RawUpstream, gateway_over, settled_row, sse_stream  # noqa: E402

from routerone.tokens import load_tokenizer  # noqa: E402

BOMB_MIB = 128
PEAK_BOUND_BYTES = 24 << 20


def _bomb_reply() -> list[bytes]:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = [e + b"\n\n" for e in sse_stream(["hello "], SMALL).split(b"\n\n") if e][:2]   # role, content
    start = z.compress(b"".join(first)) + z.flush(zlib.Z_SYNC_FLUSH)
    lines = bytes(b"\n" * (1 << 20))
    bomb = b"".join(z.compress(lines) for _ in range(BOMB_MIB)) + z.flush()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n" \
           b"Transfer-Encoding: chunked\r\n\r\n"
    return [head + b"%x\r\n%b\r\n" % (len(start), start), b"%x\r\n%b\r\n0\r\n\r\n" % (len(bomb), bomb)]


@pytest.fixture(scope="module")
def up():
    reply = _bomb_reply()
    server = RawUpstream(lambda request: reply)
    server.mode = "close"
    yield server
    server.stop()


@pytest.fixture(scope="module", params=[True, False], ids=["http1", "aiohttp"])
def gw(request, up, tmp_path_factory):
    with gateway_over(up, tmp_path_factory.mktemp("bomb"), request.param) as gw:
        yield gw


def test_a_gzip_bomb_in_a_stream_ends_it_cleanly_with_memory_bounded(gw):
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    text = ""
    load_tokenizer()           # loaded on first use (the settle's token estimate): ~45 MB, not the bomb's
    t0 = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(openai.APIError) as ei:
            for chunk in client.chat.completions.create(model=SMALL, stream=True,
                                                        messages=[{"role": "user", "content": "hi"}]):
                text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert text == "hello " and "keep-alives" in str(ei.value)
    assert time.monotonic() - t0 < 10
    assert peak_bytes < PEAK_BOUND_BYTES, peak_bytes
    row = settled_row(gw, account_id)
    assert row.status == 502 and row.cost_micros == row.completion_tokens * OUT_MICROS

"""Content-Encoding of upstream replies, through the real gateway on a real socket with the official
`openai` SDK (router retries off), against both upstream clients (the lean HTTP/1.1 one and aiohttp's):

- a gzip body of several members (concatenated gzip streams, valid gzip: RFC 1952 2.2; a server that
  compresses each write on its own sends one): before, only its first member was read, the reply cut
  there (a 502 for a JSON reply cut mid-object, a stream ended without its usage or [DONE]). Now every
  member is decoded: the whole answer, billed on the upstream's usage.
- a Content-Encoding Router One does not decode (br, zstd, x-foo): a 502 upstream_error /
  upstream_unavailable naming the coding, not charged; the bytes are never parsed as JSON or SSE.
  Also when the header comes twice (`identity`, then `br`): only the first was read, and the br
  bytes were parsed as the reply.

Directive in the last user message: [[enc:KIND-FRAMING-CODING]]."""
from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import OUT_MICROS, SMALL  # noqa: E402
from raw_upstream import RawUpstream, completion_json, gateway_over, settled_row, sse_stream  # noqa: E402

from routerone.testing.harness import Gateway  # noqa: E402

_ENC = re.compile(r"\[\[enc:([\w]+)-(\w+)-([\w-]+)\]\]")
USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
WORDS = ["hello ", "there ", "from ", "several ", "members"]


def _members(pieces: list[bytes]) -> bytes:
    """Each piece its own gzip member, one after another."""
    return b"".join(gzip.compress(p) for p in pieces)


def _answer(request: dict) -> list[bytes]:
    kind, framing, coding = _ENC.findall(request["messages"][-1]["content"])[-1]
    if kind == "json":
        plain = completion_json("".join(WORDS), SMALL, USAGE)
        ctype = b"application/json"
        pieces = [plain[:len(plain) // 3], plain[len(plain) // 3:2 * len(plain) // 3], plain[2 * len(plain) // 3:]]
    else:
        plain = sse_stream(WORDS, SMALL, USAGE)
        ctype = b"text/event-stream"
        pieces = [e + b"\n\n" for e in plain.split(b"\n\n") if e]        # a member per event
    body = _members(pieces) if coding == "gzip" else plain
    codings = ["identity", coding.removeprefix("twice-")] if coding.startswith("twice-") else [coding]
    head = b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\n" \
        + b"".join(b"Content-Encoding: %s\r\n" % c.encode() for c in codings)
    if framing == "length":
        return [head + b"Content-Length: %d\r\n\r\n" % len(body) + body]
    return [head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n", b"0\r\n\r\n"]


@pytest.fixture(scope="module")
def up():
    server = RawUpstream(_answer)
    yield server
    server.stop()


@pytest.fixture(scope="module", params=[True, False], ids=["http1", "aiohttp"])
def gw(request, up, tmp_path_factory):
    with gateway_over(up, tmp_path_factory.mktemp("encoding"), request.param) as gw:
        yield gw


def _client(gw: Gateway) -> tuple[openai.OpenAI, int]:
    key, account_id = gw.new_key()
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30), account_id


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_gzip_reply_of_several_members_is_read_to_its_end(gw, framing):
    client, account_id = _client(gw)
    reply = client.chat.completions.create(model=SMALL, messages=[{"role": "user", "content": f"[[enc:json-{framing}-gzip]]"}])
    assert reply.choices[0].message.content == "".join(WORDS)
    row = settled_row(gw, account_id)
    assert (row.status, row.completion_tokens, row.cost_micros) == (200, 5, 5 * OUT_MICROS)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_gzip_stream_of_several_members_is_relayed_to_its_end(gw, framing):
    client, account_id = _client(gw)
    chunks = list(client.chat.completions.create(
        model=SMALL, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": f"[[enc:stream-{framing}-gzip]]"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(WORDS)
    assert chunks[-1].usage.completion_tokens == 5
    row = settled_row(gw, account_id)
    assert (row.status, row.completion_tokens, row.cost_micros) == (200, 5, 5 * OUT_MICROS)


@pytest.mark.parametrize("coding", ["br", "zstd", "x-foo", "twice-br", "twice-x-foo"])
@pytest.mark.parametrize("kind", ["json", "stream"])
def test_an_unknown_content_encoding_is_a_502_and_not_charged(gw, kind, coding):
    client, account_id = _client(gw)
    with pytest.raises(openai.APIStatusError) as ei:
        out = client.chat.completions.create(model=SMALL, stream=kind == "stream",
                                             messages=[{"role": "user", "content": f"[[enc:{kind}-length-{coding}]]"}])
        if kind == "stream":
            list(out)
    assert ei.value.status_code == 502
    assert ei.value.body["type"] == "upstream_error" and ei.value.body["code"] == "upstream_unavailable"
    assert coding.removeprefix("twice-") in ei.value.body["message"]
    row = settled_row(gw, account_id)
    assert (row.status, row.cost_micros) == (502, 0)

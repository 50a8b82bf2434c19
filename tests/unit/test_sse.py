"""`SSEDecoder`: WHATWG event-stream framing fed in arbitrary pieces."""
from __future__ import annotations

import pytest

from routerone.providers.base import SSEEvent
from routerone.providers.sse import SSEDecoder

STREAM = (b'data: {"a":1}\n\n'
          b": keep-alive comment\n\n"
          b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
          b"data: line one\ndata: line two\n\n"
          b"id: 7\nretry: 100\ndata:no-space\n\n"
          b'data: {"t":"h\xc3\xa9llo \xe2\x82\xac"}\n\n'
          b"data: [DONE]\n\n")
EXPECTED = [SSEEvent(None, '{"a":1}'), SSEEvent("message_start", '{"type":"message_start"}'),
            SSEEvent(None, "line one\nline two"), SSEEvent(None, "no-space"),
            SSEEvent(None, '{"t":"héllo €"}'), SSEEvent(None, "[DONE]")]


def decode(pieces) -> list[SSEEvent]:
    d = SSEDecoder()
    out = []
    for p in pieces:
        out += d.feed(p)
    return out + d.close()


def test_whole_stream_at_once():
    assert decode([STREAM]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_any_split_gives_the_same_events(size):
    """Including splits inside a multi-byte UTF-8 character and between \\r and \\n."""
    assert decode([STREAM[i:i + size] for i in range(0, len(STREAM), size)]) == EXPECTED


def test_crlf_line_endings():
    crlf = STREAM.replace(b"\n", b"\r\n")
    assert decode([crlf]) == EXPECTED
    assert decode([crlf[i:i + 1] for i in range(len(crlf))]) == EXPECTED


def test_events_come_out_as_soon_as_they_are_complete():
    d = SSEDecoder()
    assert d.feed(b"data: one\n") == []
    assert d.feed(b"\ndata: tw") == [SSEEvent(None, "one")]
    assert d.feed(b"o\n\n") == [SSEEvent(None, "two")]


def test_close_flushes_an_unterminated_last_event():
    d = SSEDecoder()
    assert d.feed(b"data: a\n\ndata: tail") == [SSEEvent(None, "a")]
    assert d.close() == [SSEEvent(None, "tail")]
    assert d.close() == []


def test_blank_lines_and_comments_alone_dispatch_nothing():
    assert decode([b"\n\n: c\n\n\n"]) == []


def test_event_name_does_not_leak_into_the_next_event():
    assert decode([b"event: ping\ndata: 1\n\ndata: 2\n\n"]) == [SSEEvent("ping", "1"), SSEEvent(None, "2")]


def test_field_without_colon():
    # "data" alone is a data field with an empty value; two of them join with a newline
    assert decode([b"data\ndata\n\n"]) == [SSEEvent(None, "\n")]


@pytest.mark.parametrize("raw, expected", [
    (b"data:\n\ndata: x\n\n", [SSEEvent(None, "x")]),
    (b"data: a\r\rdata: b\r\r", [SSEEvent(None, "a"), SSEEvent(None, "b")]),
    (b"\xef\xbb\xbfdata: a\n\n", [SSEEvent(None, "a")]),
], ids=["empty-data-not-dispatched", "bare-cr", "leading-bom"])
def test_whatwg_edge_cases(raw, expected):
    assert decode([raw]) == expected


# -- the fast path for OpenAI-protocol reads --------------------------------------------------

def _random_stream(rng) -> bytes:
    """Events of the shapes upstreams send, mostly plain one-line `data:` events."""
    parts = []
    for i in range(rng.randrange(1, 12)):
        shape = rng.random()
        if shape < 0.6:
            parts.append(b'data: {"i":%d,"t":"w\xc3\xa9"}\n\n' % i)
        elif shape < 0.7:
            parts.append(b"data: a\ndata: b%d\n\n" % i)
        elif shape < 0.8:
            parts.append(b": ping\n\n")
        elif shape < 0.9:
            parts.append(b"event: delta\ndata: x%d\n\n" % i)
        else:
            parts.append(b"data: crlf%d\r\n\r\n" % i)
    return (b"\xef\xbb\xbf" if rng.random() < 0.2 else b"") + b"".join(parts)


def _split(rng, data: bytes) -> list[bytes]:
    """Anywhere, or (as upstreams usually write) only where events end."""
    if rng.random() < 0.5:
        where = [i + 2 for i in range(len(data) - 2) if data[i:i + 2] == b"\n\n"][:-1]
    else:
        where = list(range(1, len(data)))
    cuts = sorted(rng.sample(where, min(len(where), rng.randrange(0, 6))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def test_data_only_fast_path_yields_exactly_what_feed_yields():
    """Whatever the bytes and however they are split, taking `data_only` when it answers and `feed`
    when it returns None gives the same event data as `feed` alone (event names aside, which the
    fast path's callers ignore), and the fast path is actually taken for plain reads."""
    import random
    rng = random.Random(1234)
    fast_hits = 0
    for _ in range(2000):
        pieces = _split(rng, _random_stream(rng))
        d = SSEDecoder()
        got: list[str] = []
        for p in pieces:
            payloads = d.data_only(p)
            if payloads is None:
                got += [e.data for e in d.feed(p)]
            else:
                fast_hits += 1
                got += [pl.decode() for pl in payloads]
        got += [e.data for e in d.close()]
        assert got == [e.data for e in decode(pieces)], pieces
    assert fast_hits > 500


@pytest.mark.parametrize("chunk", [b'data: {"a":1}\n\n', b'data: {"a":1}\n\ndata: [DONE]\n\n'])
def test_data_only_waits_for_the_stream_start_and_refuses_partial_events(chunk):
    d = SSEDecoder()
    assert d.data_only(chunk) is None            # before the first feed (a BOM may come first)
    d.feed(b'data: {"x":0}\n\n')
    assert d.data_only(chunk) == [p[6:] for p in chunk.split(b"\n\n") if p]
    assert d.data_only(b'data: {"a":') is None   # half an event: the caller feeds it
    assert d.data_only(b"data: a\r\n\r\n") is None
    d.feed(b'data: {"a":')
    assert d.data_only(b'1}\n\n') is None        # an event is pending

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

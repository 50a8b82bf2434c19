"""What a hostile provider can send, as bytes: spec-valid replies of the three upstream protocols
Router One speaks (OpenAI-compatible, Anthropic, Gemini), streamed and not, and MUTATIONS of them
drawn with a fixed seed (`cases(seed)`), for test_upstream_fuzz.py.

A case is the raw HTTP/1.1 response the upstream writes (`pieces`: each its own write; a float is a
pause), so every layer is reached: the status line and headers, the framing (Content-Length,
chunked, close-delimited), the content coding, the SSE framing and the JSON in it. Mutations:
- of one JSON value of a valid reply (or of one stream event): deleted, null, of another type,
  numbers that are huge, negative, fractional, NaN, 1e309, strings of 1 MB, invalid UTF-8, NUL and
  control characters, duplicate keys;
- of the SSE framing: split at byte boundaries, every byte its own write, no final event, garbage
  `data:` lines, unknown events, a 20 MB event, a stall after some events;
- of HTTP: odd statuses (1xx, 3xx, 418, 499, 5xx, 600) with odd bodies, Retry-After of nan / -1 /
  1e309 / a far date, content-encoding lies, wrong content types, lying lengths.
"""
from __future__ import annotations

import gzip
import random
import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

import orjson

__all__ = ["Case", "cases", "PROTOCOLS", "UPSTREAM_KEYS", "ANT_MODEL", "GEM_MODEL", "OAI_UPSTREAM_MODEL"]

ANT_MODEL, GEM_MODEL, OAI_UPSTREAM_MODEL = "claude-3-5-haiku-20241022", "gemini-2.5-flash", "fake-small"
PROTOCOLS = ("openai", "anthropic", "gemini")
UPSTREAM_KEYS = {"openai": "sk-fuzz-openai-KEY-0123456789", "anthropic": "sk-ant-fuzz-KEY-0123456789",
                 "gemini": "gem-fuzz-KEY-0123456789"}
TEXT = "héllo wörld ✓ "           # multibyte characters, so that byte splits fall inside them too


@dataclass
class Case:
    name: str
    protocol: str                 # which upstream protocol answers
    stream: bool                  # whether the client (and so the upstream) request streams
    pieces: list                  # raw response: bytes written one by one, floats are pauses
    pause_s: float = 0.005        # between two pieces
    close: bool = False           # the upstream closes the connection after the reply
    slow: bool = False            # a stall or a huge body: expected to take up to the timeouts
    surfaces: tuple[str, ...] = ()   # filled in by `cases`
    client: str = "http1"         # Router One's upstream client: http1 (plain http) or aiohttp (https's)


# -- raw JSON values ----------------------------------------------------------------------------

_RAW = re.compile(rb'"@@raw(\d+)@@"')


class Raw:
    """A value written as these bytes, not as JSON (NaN, 1e309, invalid UTF-8, a raw NUL...)."""
    table: list[bytes] = []

    def __init__(self, data: bytes) -> None:
        self.data = data

    def marker(self) -> str:
        Raw.table.append(self.data)
        return f"@@raw{len(Raw.table) - 1}@@"


def dumps(obj) -> bytes:
    """orjson.dumps with Raw values (already turned into markers) written as their bytes."""
    return _RAW.sub(lambda m: Raw.table[int(m.group(1))], orjson.dumps(obj))


# -- valid replies ------------------------------------------------------------------------------

def openai_reply(tools: bool = False) -> dict:
    message = {"role": "assistant", "content": TEXT, "refusal": None}
    if tools:
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"city": "Paris"}'}}]}
    return {"id": "chatcmpl-f", "object": "chat.completion", "created": 1, "model": OAI_UPSTREAM_MODEL,
            "system_fingerprint": "fp", "choices": [{"index": 0, "message": message, "logprobs": None,
                                                    "finish_reason": "tool_calls" if tools else "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14,
                      "prompt_tokens_details": {"cached_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0}}}


def openai_events(tools: bool = False) -> list[dict]:
    def chunk(delta: dict, finish=None) -> dict:
        return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": OAI_UPSTREAM_MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if tools:
        body = [chunk({"role": "assistant", "content": None, "tool_calls": [
                    {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": ""}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}]}),
                chunk({}, "tool_calls")]
    else:
        body = [chunk({"role": "assistant", "content": ""}), chunk({"content": TEXT}), chunk({"content": TEXT}),
                chunk({}, "stop")]
    return body + [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": OAI_UPSTREAM_MODEL,
                    "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}}]


_ANT_USAGE = {"cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "cache_creation": None,
              "inference_geo": None, "output_tokens_details": None, "server_tool_use": None, "service_tier": "standard"}


def anthropic_reply(tools: bool = False) -> dict:
    content = [{"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"city": "Paris"},
                "caller": {"type": "direct"}}] if tools else [{"type": "text", "text": TEXT, "citations": None}]
    return {"id": "msg_f", "type": "message", "role": "assistant", "model": ANT_MODEL, "content": content,
            "stop_reason": "tool_use" if tools else "end_turn", "stop_sequence": None, "stop_details": None, "container": None,
            "usage": {"input_tokens": 9, "output_tokens": 5, **_ANT_USAGE}}


def anthropic_events(tools: bool = False) -> list[dict]:
    """Events as their data (the `type` names the event)."""
    start = {"type": "message_start", "message": {
        "id": "msg_f", "type": "message", "role": "assistant", "model": ANT_MODEL, "content": [],
        "stop_reason": None, "stop_sequence": None, "stop_details": None, "container": None,
        "usage": {"input_tokens": 9, "output_tokens": 1, **_ANT_USAGE}}}
    if tools:
        block = [{"type": "content_block_start", "index": 0,
                  "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {},
                                    "caller": {"type": "direct"}}},
                 {"type": "content_block_delta", "index": 0,
                  "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'}}]
    else:
        block = [{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "", "citations": None}},
                 {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": TEXT}},
                 {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": TEXT}}]
    return [start, {"type": "ping"}, *block, {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "tool_use" if tools else "end_turn",
                                                "stop_sequence": None, "stop_details": None, "container": None},
             "usage": {"input_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                       "output_tokens": 5, "output_tokens_details": None, "server_tool_use": None}},
            {"type": "message_stop"}]


def gemini_reply(tools: bool = False) -> dict:
    part = {"functionCall": {"name": "get", "args": {"city": "Paris"}}} if tools else {"text": TEXT}
    return {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0,
                            "safetyRatings": []}],
            "promptFeedback": {"safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 5, "totalTokenCount": 14,
                              "cachedContentTokenCount": 0, "thoughtsTokenCount": 0},
            "modelVersion": GEM_MODEL, "responseId": "resp_f"}


def gemini_events(tools: bool = False) -> list[dict]:
    def ev(parts, finish=None, usage=None) -> dict:
        cand = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            cand["finishReason"] = finish
        out = {"candidates": [cand], "modelVersion": GEM_MODEL, "responseId": "resp_f"}
        if usage:
            out["usageMetadata"] = usage
        return out
    usage = {"promptTokenCount": 9, "candidatesTokenCount": 5, "totalTokenCount": 14}
    if tools:
        return [ev([{"functionCall": {"name": "get", "args": {"city": "Paris"}}}], "STOP", usage)]
    return [ev([{"text": TEXT}], usage={"promptTokenCount": 9, "candidatesTokenCount": 1}),
            ev([{"text": TEXT}]), ev([{"text": ""}], "STOP", usage)]


VALID: dict[str, tuple[Callable[[bool], dict], Callable[[bool], list[dict]]]] = {
    "openai": (openai_reply, openai_events), "anthropic": (anthropic_reply, anthropic_events),
    "gemini": (gemini_reply, gemini_events)}


# -- HTTP framing -------------------------------------------------------------------------------

def head(status: int = 200, ctype: str | None = "application/json", extra: bytes = b"",
         length: int | None = None, chunked: bool = False, reason: bytes = b"X") -> bytes:
    out = b"HTTP/1.1 %d %s\r\n" % (status, reason)
    if ctype is not None:
        out += b"Content-Type: " + ctype.encode() + b"\r\n"
    out += extra
    if length is not None:
        out += b"Content-Length: %d\r\n" % length
    if chunked:
        out += b"Transfer-Encoding: chunked\r\n"
    return out + b"\r\n"


def whole(body: bytes, status: int = 200, ctype: str | None = "application/json", extra: bytes = b"") -> list:
    return [head(status, ctype, extra, length=len(body)) + body]


def sse_body(protocol: str, events: list) -> bytes:
    """Events (dicts, or bytes already framed) as the protocol frames them."""
    out = b""
    for ev in events:
        if isinstance(ev, bytes):
            out += ev
        elif protocol == "anthropic":
            name = ev.get("type") if isinstance(ev.get("type"), str) else "x"
            out += b"event: " + name.encode("utf-8", "replace") + b"\ndata: " + dumps(ev) + b"\n\n"
        elif protocol == "gemini":
            out += b"data: " + dumps(ev) + b"\r\n\r\n"
        else:
            out += b"data: " + dumps(ev) + b"\n\n"
    if protocol == "openai":
        out += b"data: [DONE]\n\n"
    return out


def chunk_frames(pieces: list[bytes], terminator: bool = True) -> list:
    """An SSE response head, then each piece as one HTTP chunk (its own write)."""
    out: list = [head(ctype="text/event-stream", chunked=True)]
    out += [b"%x\r\n" % len(p) + p + b"\r\n" for p in pieces if p]
    if terminator:
        out.append(b"0\r\n\r\n")
    return out


def valid_pieces(protocol: str, stream: bool, tools: bool = False) -> list:
    reply, events = VALID[protocol]
    if stream:
        return chunk_frames([sse_body(protocol, events(tools))])
    return whole(dumps(reply(tools)))


# -- JSON mutations -----------------------------------------------------------------------------

MB = "x" * (1 << 20)
WRONG_TYPES = [None, 5, -1, 1.5, "x", "", True, [], [1], {}, {"a": 1}]
NUMBERS = [-1, -10**12, 0.5, 1e308, Raw(b"18446744073709551616"), Raw(b"1" + b"0" * 30), 2**63 - 1, "12", True, -0.0, 1e-320,
           Raw(b"1e309"), Raw(b"NaN"), Raw(b"-Infinity"), Raw(b"1" * 400)]
STRINGS = ["", "\x00", "a\x00b", "\x01\x1b[31m\x7f", "\u2028\u2029", MB, "\r\n\r\ndata: [DONE]\r\n\r\n",
           "<script>alert(1)</script>", Raw(b'"\\ud800"'), Raw(b'"\xff\xfe"'), Raw(b'"\xed\xa0\x80"'),
           Raw(b'"a\x00b"'), Raw(b'"\x01\n"'), Raw(b'"\xe2\x9c"')]


def paths(obj, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path to a value inside `obj` (not the root itself)."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield prefix + (k,)
        yield from paths(v, prefix + (k,))


def _get(obj, path: tuple):
    for k in path:
        obj = obj[k]
    return obj


def mutated(obj, path: tuple, op: str, value=None):
    """A deep copy of `obj` whose value at `path` is deleted ("del"), replaced ("set"), or has a
    duplicate key before it ("dup": the same key with `value` first, the valid value last)."""
    copy = orjson.loads(orjson.dumps(obj))
    parent, key = _get(copy, path[:-1]), path[-1]
    if op == "del":
        if isinstance(parent, list):
            parent.pop(key)
        else:
            del parent[key]
    elif op == "set":
        parent[key] = value.marker() if isinstance(value, Raw) else value
    return copy


def json_ops(obj, rng: random.Random) -> list[tuple[str, tuple, str, object]]:
    """(label, path, op, value) for every path: delete, null, two other types; numbers at numeric
    paths and strings at string paths."""
    out = []
    for p in paths(obj):
        v = _get(obj, p)
        label = ".".join(map(str, p))
        out.append((f"{label}:del", p, "del", None))
        wrong = [w for w in WRONG_TYPES if type(w) is not type(v)]
        for w in [None] + rng.sample(wrong, 2):
            out.append((f"{label}={w!r:.20}", p, "set", w))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out += [(f"{label}={n.data.decode()[:20] if isinstance(n, Raw) else repr(n)[:20]}", p, "set", n)
                    for n in NUMBERS]
        if isinstance(v, str):
            out += [(f"{label}=str{i}", p, "set", s) for i, s in enumerate(STRINGS)]
    return out


def _dup_key(body: bytes, key: bytes, first: bytes) -> bytes:
    """`"key": first,` inserted before the first `"key":` of the body (a duplicate key)."""
    i = body.find(b'"' + key + b'":')
    return body if i < 0 else body[:i] + b'"' + key + b'":' + first + b"," + body[i:]


# -- the cases ----------------------------------------------------------------------------------

def _reply_mutations(protocol: str, rng: random.Random, n: int) -> list[Case]:
    reply = VALID[protocol][0]
    out = []
    for tools in (False, True):
        ops = json_ops(reply(tools), rng)
        for label, p, op, value in rng.sample(ops, n // 2):
            out.append(Case(f"{protocol}/json/{'tools/' if tools else ''}{label}", protocol, False,
                            whole(dumps(mutated(reply(tools), p, op, value)))))
    return out


def _stream_mutations(protocol: str, rng: random.Random, n: int) -> list[Case]:
    events_of = VALID[protocol][1]
    out = []
    for tools in (False, True):
        events = events_of(tools)
        ops = [(i, op) for i, ev in enumerate(events) for op in json_ops(ev, rng)]
        for i, (label, p, op, value) in rng.sample(ops, n // 2):
            evs = list(events)
            evs[i] = mutated(events[i], p, op, value)
            out.append(Case(f"{protocol}/sse/{'tools/' if tools else ''}ev{i}.{label}", protocol, True,
                            chunk_frames([sse_body(protocol, evs)])))
    return out


def _string_bombs(protocol: str) -> list[Case]:
    """Duplicate keys and invalid JSON text (raw NUL, bytes that are not UTF-8) at the text."""
    body = dumps(VALID[protocol][0](False))
    stream = sse_body(protocol, VALID[protocol][1](False))
    text = TEXT.encode()
    usage_key = {"openai": b"usage", "anthropic": b"usage", "gemini": b"usageMetadata"}[protocol]
    absurd = {"openai": b'{"prompt_tokens": 1e308, "completion_tokens": 99999999999999999999}',
              "anthropic": b'{"input_tokens": 1e308, "output_tokens": 99999999999999999999}',
              "gemini": b'{"promptTokenCount": 1e308, "candidatesTokenCount": 99999999999999999999}'}[protocol]
    out = []
    for label, old, new in [("raw-nul", text, b"a\x00b"), ("not-utf8", text, b"\xff\xfeabc"),
                            ("cut-utf8", text, b"abc\xe2\x9c"), ("surrogate", text, b"\xed\xa0\x80"),
                            ("escaped-nul", text, b"a\\u0000b\\u001b")]:
        out.append(Case(f"{protocol}/json/text-{label}", protocol, False, whole(body.replace(old, new, 1))))
        out.append(Case(f"{protocol}/sse/text-{label}", protocol, True,
                        chunk_frames([stream.replace(old, new)])))
    out.append(Case(f"{protocol}/json/dup-usage", protocol, False, whole(_dup_key(body, usage_key, absurd))))
    out.append(Case(f"{protocol}/json/dup-usage-after", protocol, False,
                    whole(body[:-1] + b',"' + usage_key + b'":' + absurd + b"}")))
    out.append(Case(f"{protocol}/sse/dup-usage", protocol, True,
                    chunk_frames([_dup_key(stream, usage_key, absurd)])))
    for label, data in [("empty", b""), ("null", b"null"), ("array", b"[1,2]"), ("string", b'"hi"'),
                        ("bom", b"\xef\xbb\xbf" + body), ("trailing", body + b"garbage"), ("html", b"<html>oops</html>"),
                        ("deep", b"[" * 5000 + b"]" * 5000)]:
        out.append(Case(f"{protocol}/json/body-{label}", protocol, False, whole(data)))
    return out


def _framing(protocol: str, rng: random.Random) -> list[Case]:
    events = VALID[protocol][1](False)
    body = sse_body(protocol, events)
    framed = b"".join(chunk_frames([body]))
    out = []
    # the whole HTTP response split in two at byte k (head, chunk sizes, SSE lines, UTF-8 characters)
    for k in sorted(rng.sample(range(1, len(framed)), 6)):
        out.append(Case(f"{protocol}/split-at-{k}", protocol, True, [framed[:k], framed[k:]]))
    # ... and every byte its own write
    out.append(Case(f"{protocol}/every-byte", protocol, True, [framed[i:i + 1] for i in range(len(framed))],
                    pause_s=0.0005))
    # every SSE byte its own HTTP chunk
    out.append(Case(f"{protocol}/every-byte-chunk", protocol, True,
                    chunk_frames([body[i:i + 1] for i in range(len(body))]), pause_s=0.0005))
    last = {"openai": b"data: [DONE]\n\n", "anthropic": b"event: message_stop", "gemini": None}[protocol]
    cut = body[:body.rfind(last)] if last else sse_body(protocol, events[:-1])
    out.append(Case(f"{protocol}/no-final-event", protocol, True, chunk_frames([cut])))
    out.append(Case(f"{protocol}/no-final-event-reset", protocol, True, chunk_frames([cut], terminator=False),
                    close=True))
    out.append(Case(f"{protocol}/cut-mid-event", protocol, True, chunk_frames([body[:len(body) // 2]],
                                                                            terminator=False), close=True))
    out.append(Case(f"{protocol}/empty-stream", protocol, True, chunk_frames([])))
    out.append(Case(f"{protocol}/cr-only", protocol, True, chunk_frames([body.replace(b"\r\n", b"\n")
                                                                        .replace(b"\n", b"\r")])))
    garbage = [b"data: {not json\n\n", b"data: \n\n", b"data: null\n\n", b"data: 5\n\n", b'data: "x"\n\n',
               b"data: [1]\n\n", b"data:\xff\xfe\n\n", b'data: {"a":1}\n\n', b"event: weird\ndata: {}\n\n",
               b": comment\n\n", b"id: 7\nretry: x\n\n", b"nonsense line\n\n", b"\n\n\n\n",
               b"data: " + b"{" * 100_000 + b"\n\n", b'data: {"type": "error"}\n\n', b"event: error\ndata: null\n\n",
               b"data: " + b'{"x":"' + b"y" * (2 << 20) + b'"}\n\n']
    for i, g in enumerate(garbage):
        at = rng.randrange(1, len(events))          # after the first event, before the last
        evs = events[:at] + [g] + events[at:]
        out.append(Case(f"{protocol}/garbage{i}-at-{at}", protocol, True, chunk_frames([sse_body(protocol, evs)])))
        out.append(Case(f"{protocol}/garbage{i}-first", protocol, True,
                        chunk_frames([sse_body(protocol, [g] + events)])))
    at = next(i for i, ev in enumerate(events) if TEXT.encode() in orjson.dumps(ev))
    big = sse_body(protocol, [events[at]]).removesuffix(b"data: [DONE]\n\n").replace(TEXT.encode(), b"z" * (20 << 20), 1)
    out.append(Case(f"{protocol}/event-20mb", protocol, True,
                    chunk_frames([sse_body(protocol, events[:at]).removesuffix(b"data: [DONE]\n\n"), big,
                                  sse_body(protocol, events[at + 1:])]), slow=True))
    # stalls: before the head, after the head, after two events
    out.append(Case(f"{protocol}/stall-before-head", protocol, True, [3600.0], slow=True))
    out.append(Case(f"{protocol}/stall-after-head", protocol, True, [head(ctype="text/event-stream", chunked=True),
                                                                     3600.0], slow=True))
    two = sse_body(protocol, events[:2]).removesuffix(b"data: [DONE]\n\n")
    out.append(Case(f"{protocol}/stall-after-2", protocol, True, chunk_frames([two], terminator=False) + [3600.0],
                    slow=True))
    out.append(Case(f"{protocol}/json/stall-mid-body", protocol, False,
                    [head(length=len(dumps(VALID[protocol][0](False))))
                     + dumps(VALID[protocol][0](False))[:20], 3600.0], slow=True))
    # keep-alives only (comments / pings), forever
    ka = b"event: ping\ndata: {\"type\": \"ping\"}\n\n" if protocol == "anthropic" else b": keep-alive\n\n"
    out.append(Case(f"{protocol}/keepalives-only", protocol, True,
                    [head(ctype="text/event-stream", chunked=True)] + [b"%x\r\n" % len(ka) + ka + b"\r\n", 0.3] * 20,
                    slow=True))
    return out


def _error_bodies(protocol: str) -> list[bytes]:
    key = UPSTREAM_KEYS[protocol].encode()
    return [b"", b"<html><body>Bad Gateway</body></html>", b"null", b"[]", b'{"error": null}', b'{"error": 5}',
            b'{"error": "plain ' + key + b'"}',
            b'{"error": {"message": {"x": 1}, "type": [], "code": 5, "status": 7, "details": "x"}}',
            b'{"error": {"message": "echo: Bearer ' + key + b' x-api-key: ' + key + b'", "code": "bad"}}',
            b'{"error": {"message": "nul\\u0000ctl\\u001b[31m", "code": "a\\u0000b"}}',
            b'{"error": {"message": "' + b"m" * (1 << 20) + b'"}}',
            b'{"error": {"message": "\xff\xfe not utf8"}}',
            b'{"type": "error", "error": {"type": 5, "message": null}}',
            b'{"error": {"code": "x", "status": 5, "message": "gemini-ish", "details": [{"@type": 5}]}}']


def _http(protocol: str, rng: random.Random) -> list[Case]:
    out = []
    bodies = _error_bodies(protocol)
    for status in (400, 401, 403, 404, 408, 409, 413, 418, 422, 429, 499, 500, 501, 502, 503, 504, 520, 529, 599):
        for j in rng.sample(range(len(bodies)), 2):
            stream = rng.random() < 0.5
            out.append(Case(f"{protocol}/status-{status}-body{j}", protocol, stream, whole(bodies[j], status)))
    # key echoed in an error, each status class once
    for status in (400, 429, 503):
        out.append(Case(f"{protocol}/status-{status}-echo-key", protocol, False, whole(bodies[8], status)))
    odd = [("100-only", [b"HTTP/1.1 100 Continue\r\n\r\n"], True),
           ("100-then-200", [b"HTTP/1.1 100 Continue\r\n\r\n"] + valid_pieces(protocol, False), False),
           ("101", [head(101, None, b"Upgrade: websocket\r\nConnection: Upgrade\r\n")], True),
           ("102-only", [b"HTTP/1.1 102 Processing\r\n\r\n"], True),
           ("204", [head(204, None)], False), ("205", [head(205, None, length=0)], False),
           ("304", [head(304, None)], False),
           ("301", whole(b"moved", 301, "text/plain", b"Location: http://127.0.0.1:1/evil\r\n"), False),
           ("307", whole(b"", 307, None, b"Location: /v1/elsewhere\r\n"), False),
           ("600", whole(b'{"error": {"message": "six hundred"}}', 600), False),
           ("999", whole(b"{}", 999), False),
           ("status-text", [b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n"], True),
           ("http10", [b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"
                       + dumps(VALID[protocol][0](False))], True),
           ("garbage-head", [b"SSH-2.0-OpenSSH_9.6\r\n"], True),
           ("not-http", [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"], True),
           ("huge-header", [head(extra=b"X-Big: " + b"h" * (1 << 20) + b"\r\n", length=2) + b"{}"], True),
           ("many-headers", [head(extra=b"".join(b"X-%d: v\r\n" % i for i in range(20_000)), length=2) + b"{}"], True)]
    for label, pieces, close in odd:
        for stream in (False, True):
            out.append(Case(f"{protocol}/{label}{'/stream' if stream else ''}", protocol, stream, pieces, close=close))
    body = dumps(VALID[protocol][0](False))
    for value in (b"nan", b"-1", b"1e309", b"inf", b"Fri, 31 Dec 9999 23:59:59 GMT", b"Mon, 01 Jan 0001 00:00:00 GMT",
                  b"99999999999999999999999", b"", b"1, 2", b"\x00"):
        for status in rng.sample((429, 503, 529), 1):
            name = b"Retry-After-Ms" if rng.random() < 0.3 else b"Retry-After"
            out.append(Case(f"{protocol}/{status}-retry-after-{value[:12].decode('latin-1')!r}", protocol,
                            rng.random() < 0.5, whole(b'{"error": {"message": "slow down"}}', status,
                                                      extra=name + b": " + value + b"\r\n")))
    gz = gzip.compress(body)
    lies = [("gzip-plain", whole(body, extra=b"Content-Encoding: gzip\r\n")),
            ("gzip-truncated", whole(gz[:len(gz) // 2], extra=b"Content-Encoding: gzip\r\n")),
            ("br-plain", whole(body, extra=b"Content-Encoding: br\r\n")),
            ("zstd-plain", whole(body, extra=b"Content-Encoding: zstd\r\n")),
            ("unknown-coding", whole(body, extra=b"Content-Encoding: x-fuzz\r\n")),
            ("gzip-twice-once", whole(gz, extra=b"Content-Encoding: gzip, gzip\r\n")),
            ("deflate-garbage", whole(b"\x78\x9c garbage", extra=b"Content-Encoding: deflate\r\n")),
            ("html-ctype", whole(body, ctype="text/html")),
            ("no-ctype", whole(body, ctype=None)),
            ("sse-for-json", chunk_frames([sse_body(protocol, VALID[protocol][1](False))])),
            ("length-too-long", [head(length=len(body) + 100) + body], True),
            ("length-too-short", [head(length=len(body) // 2) + body]),
            ("length-garbage", [head(extra=b"Content-Length: abc\r\n") + body], True),
            ("length-negative", [head(extra=b"Content-Length: -5\r\n") + body], True),
            ("length-and-chunked", [head(length=5, chunked=True) + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"]),
            ("chunk-size-garbage", [head(chunked=True) + b"zz\r\n" + body + b"\r\n0\r\n\r\n"], True)]
    for label, pieces, *close in lies:
        out.append(Case(f"{protocol}/json/{label}", protocol, False, pieces, close=bool(close)))
    sse = sse_body(protocol, VALID[protocol][1](False))
    sgz = gzip.compress(sse)
    for label, pieces in [("gzip-plain", [head(ctype="text/event-stream", extra=b"Content-Encoding: gzip\r\n",
                                              chunked=True), b"%x\r\n" % len(sse) + sse + b"\r\n0\r\n\r\n"]),
                          ("gzip-truncated", [head(ctype="text/event-stream", extra=b"Content-Encoding: gzip\r\n",
                                                  chunked=True), b"%x\r\n" % (len(sgz) // 2) + sgz[:len(sgz) // 2]
                                              + b"\r\n0\r\n\r\n"]),
                          ("json-for-sse", whole(body)),
                          ("json-ctype-sse-body", whole(sse, ctype="application/json")),
                          ("plain-ctype", whole(sse, ctype="text/plain")),
                          ("close-delimited", [head(ctype="text/event-stream") + sse])]:
        out.append(Case(f"{protocol}/sse/{label}", protocol, True, pieces, close=label == "close-delimited"))
    return out


def _oddities(protocol: str) -> list[Case]:
    """Streams whose every event is valid, in an order or number the protocol does not have."""
    evs = VALID[protocol][1](False)
    tools = VALID[protocol][1](True)
    seqs: dict[str, list] = {"twice": evs + evs, "reversed": evs[::-1], "last-first": evs[-1:] + evs[:-1],
                             "text-and-tools": evs[:-1] + tools, "only-last": evs[-1:]}
    if protocol == "anthropic":
        start, ping, b_start, d1, d2, b_stop, m_delta, m_stop = evs
        renamed = sse_body(protocol, evs).replace(b"event: content_block_delta", b"event: message_stop")
        seqs.update({
            "delta-unstarted-block": [start, {**d1, "index": 5}, b_stop, m_delta, m_stop],
            "stop-unstarted-block": [start, b_start, d1, {**b_stop, "index": 9}, m_delta, m_stop],
            "block-restarted": [start, b_start, d1, b_start, d2, b_stop, m_delta, m_stop],
            "two-message-deltas": [start, b_start, d1, b_stop, m_delta, {**m_delta, "usage": {"output_tokens": 900}},
                                   m_stop],
            "error-mid-stream": [start, b_start, d1, {"type": "error", "error": {"type": "overloaded_error",
                                                                                   "message": "busy"}}],
            "error-odd": [start, b_start, d1, {"type": "error", "error": ["x"]}],
            "event-name-lies": [renamed]})
    elif protocol == "gemini":
        seqs.update({
            "blocked-garbage": [{"promptFeedback": {"blockReason": 5}}],
            "feedback-string": [{**evs[0], "promptFeedback": "blocked"}] + evs[1:],
            "index-collision": [{**evs[0], "candidates": evs[0]["candidates"] * 2}] + evs[1:],
            "finish-unknown": evs[:-1] + [{**evs[-1], "candidates": [{**evs[-1]["candidates"][0],
                                                                      "finishReason": "EXPLODED"}]}],
            "usage-shrinks": evs[:-1] + [{**evs[-1], "usageMetadata": {"promptTokenCount": 1,
                                                                      "candidatesTokenCount": 0}}],
            "error-mid-stream": evs[:1] + [{"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}]})
    else:
        choice1 = {**evs[1], "choices": [{**evs[1]["choices"][0], "index": 1}]}
        seqs.update({
            "second-choice": evs[:2] + [choice1] + evs[2:],
            "usage-every-chunk": [{**e, "usage": {"prompt_tokens": 9, "completion_tokens": i}} for i, e in enumerate(evs)],
            "error-mid-stream": evs[:2] + [{"error": {"message": "busy", "type": "server_error", "code": 5}}],
            "error-string": evs[:2] + [{"error": "busy"}],
            "two-finishes": evs[:-1] + [evs[-2]] + evs[-1:]})
    return [Case(f"{protocol}/odd-{name}", protocol, True, chunk_frames([sse_body(protocol, seq)]))
            for name, seq in seqs.items()]


SURFACES = ("chat", "messages", "responses")


def cases(seed: int, per_protocol_json: int = 24) -> list[Case]:
    """Every case once, each on one client surface (rotating; the quick SSE framing cases on all
    three: each surface ends a stream its own way), in a fixed order; the framing and HTTP cases
    alternate between Router One's two upstream clients."""
    rng = random.Random(seed)
    Raw.table = []
    out: list[Case] = []
    wire = 0
    everywhere: set[int] = set()      # the SSE framing cases that are quick: on every surface
    for protocol in PROTOCOLS:
        out += _reply_mutations(protocol, rng, per_protocol_json)
        out += _stream_mutations(protocol, rng, per_protocol_json)
        out += _string_bombs(protocol)
        framing = _framing(protocol, rng) + _oddities(protocol)
        everywhere |= {id(c) for c in framing if not c.slow}
        for case in framing + _http(protocol, rng):   # bytes each client reads its own way
            case.client = ("http1", "aiohttp")[wire % 2]
            wire += 1
            out.append(case)
    for i, case in enumerate(out):
        case.surfaces = SURFACES if id(case) in everywhere else (SURFACES[i % 3],)
    return out

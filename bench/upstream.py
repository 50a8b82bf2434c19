"""A lean, fast fake OpenAI upstream for benchmarks: raw asyncio protocol on uvloop, its own process.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length or chunked request bodies) to answer
`POST /v1/chat/completions` the way OpenAI does, JSON or SSE, so the gateway in front of it is what
gets measured, not the fake. No tokenizer: prompt tokens are estimated as bytes/4.

Directives in the last user message shape the reply (every gateway forwards messages untouched):
    [[words:N]]   reply with N content tokens (default --reply-tokens)
    [[pace:MS]]   wait MS milliseconds between stream chunks (a paced stream, to catch buffering)
With `stream_options.include_usage` the stream ends with a usage chunk, as OpenAI's does.

    python bench/upstream.py --port 9101
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import time

import orjson

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

_DIRECTIVE = re.compile(r"\[\[(\w+):(\d+)\]\]")
_WORDS = ("Hello", "!", " This", " is", " a", " reply", " from", " the", " fake", " upstream", ".",
          " Ask", " me", " anything", " else", ".")
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}


class Options:
    reply_tokens = 16


def _directives(body: dict) -> dict[str, int]:
    for m in reversed(body.get("messages") or ()):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                c = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            if isinstance(c, str) and "[[" in c:
                return {k: int(v) for k, v in _DIRECTIVE.findall(c)}
            return {}
    return {}


def _prompt_tokens(body: dict, raw_len: int) -> int:
    return max(1, raw_len // 4)


def _response_head(status: int, content_type: bytes, length: int | None) -> bytes:
    head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"OK")),
            b"Content-Type: " + content_type + b"\r\n"]
    if length is None:
        head.append(b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n")
    else:
        head.append(b"Content-Length: %d\r\n" % length)
    head.append(b"Connection: keep-alive\r\n\r\n")
    return b"".join(head)


def _json(status: int, obj) -> bytes:
    body = orjson.dumps(obj)
    return _response_head(status, b"application/json", len(body)) + body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class UpstreamProtocol(asyncio.Protocol):
    __slots__ = ("transport", "buf", "busy", "queue", "closed")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False          # a streamed response is being written
        self.queue: list[tuple[bytes, bytes, bytes]] = []
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            req = self._parse()
            if req is None:
                return
            if self.busy:
                self.queue.append(req)
            else:
                self._handle(*req)

    def _parse(self) -> tuple[bytes, bytes, bytes] | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end])
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        method, path = parts[0], parts[1] if len(parts) > 1 else b"/"
        length, chunked = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        start = end + 4
        if not chunked:
            if len(buf) < start + length:
                return None
            body = bytes(buf[start:start + length])
            del buf[:start + length]
            return method, path, body
        body, pos = bytearray(), start
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return None
            size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
            if size == 0:
                tail = buf.find(b"\r\n\r\n", nl)
                if tail < 0:
                    return None
                del buf[:tail + 4]
                return method, path, bytes(body)
            if len(buf) < nl + 2 + size + 2:
                return None
            body += buf[nl + 2:nl + 2 + size]
            pos = nl + 2 + size + 2

    def _handle(self, method: bytes, path: bytes, body: bytes) -> None:
        path = path.split(b"?")[0]
        t = self.transport
        if path.endswith(b"/chat/completions") and method == b"POST":
            try:
                req = orjson.loads(body)
            except orjson.JSONDecodeError:
                t.write(_json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error",
                                              "param": None, "code": "invalid_json"}}))
                return
            self._chat(req, len(body))
        elif path.endswith(b"/models") and method == b"GET":
            t.write(_json(200, {"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "bench"}]}))
        elif path in (b"/health", b"/healthz"):
            t.write(_json(200, {"status": "ok"}))
        else:
            t.write(_json(404, {"error": {"message": "not found", "type": "invalid_request_error",
                                          "param": None, "code": "not_found"}}))

    def _chat(self, req: dict, raw_len: int) -> None:
        d = _directives(req)
        limit = req.get("max_completion_tokens") or req.get("max_tokens")
        n = d.get("words", Options.reply_tokens)
        finish = "stop"
        if limit and int(limit) < n:
            n, finish = int(limit), "length"
        words = [_WORDS[i % len(_WORDS)] for i in range(n)]
        usage = {"prompt_tokens": _prompt_tokens(req, raw_len), "completion_tokens": n}
        usage["total_tokens"] = usage["prompt_tokens"] + n
        cid = "chatcmpl-bench%016x" % (id(words) ^ time.monotonic_ns())
        model = req.get("model", "gpt-4o-mini")
        created = int(time.time())
        if not req.get("stream"):
            self.transport.write(_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(words),
                                                     "refusal": None},
                             "finish_reason": finish, "logprobs": None}],
                "usage": usage, "system_fingerprint": None}))
            return
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        pace_ms = d.get("pace", 0)
        frames = self._frames(cid, created, model, words, finish, usage if include_usage else None)
        if not pace_ms:
            t = self.transport
            t.write(_response_head(200, b"text/event-stream", None))
            for f in frames:           # one write per event, as a real upstream sends tokens
                t.write(f)
            return
        self.busy = True
        asyncio.get_running_loop().create_task(self._paced(frames, n, pace_ms / 1000))

    @staticmethod
    def _frames(cid, created, model, words, finish, usage) -> list[bytes]:
        def event(delta: dict, finish_reason=None) -> bytes:
            c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                 "system_fingerprint": None,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
            return _chunk(b"data: " + orjson.dumps(c) + b"\n\n")
        out = [event({"role": "assistant", "content": ""})]
        out += [event({"content": w}) for w in words]
        out.append(event({}, finish))
        if usage is not None:
            u = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [], "usage": usage}
            out.append(_chunk(b"data: " + orjson.dumps(u) + b"\n\n"))
        out.append(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        return out

    async def _paced(self, frames: list[bytes], n: int, pace_s: float) -> None:
        t = self.transport
        t.write(_response_head(200, b"text/event-stream", None))
        t.write(frames[0])                       # role chunk at once, then one token per pace
        for f in frames[1:1 + n]:
            await asyncio.sleep(pace_s)
            if self.closed:
                return
            t.write(f)
        t.write(b"".join(frames[1 + n:]))        # finish, usage, [DONE]
        self.busy = False
        while self.queue and not self.busy and not self.closed:
            self._handle(*self.queue.pop(0))


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"bench upstream listening on http://{host}:{port}/v1 (pid {os.getpid()})", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9101)
    ap.add_argument("--reply-tokens", type=int, default=16)
    a = ap.parse_args()
    Options.reply_tokens = a.reply_tokens
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main(a.host, a.port))

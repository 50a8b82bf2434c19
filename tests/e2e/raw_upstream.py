"""A raw HTTP/1.1 upstream for the upstream-client end-to-end tests: each reply is bytes a test
writes (`answer(request_json) -> list of pieces`, each its own write), and what the server does with
the connection afterwards is the test's choice (`mode`). Runs its own event loop in a thread, so the
gateway under test reaches it over a real socket. Plus a gateway in front of it (`gateway_over`,
either upstream client, router retries off) and its usage rows (`usage_rows`, `settled_row`)."""
from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import orjson
from money_procs import write_money_catalog

from routerone.settings import ProviderSettings, Settings
from routerone.store.base import UsageQuery
from routerone.testing.harness import Gateway

__all__ = ["RawUpstream", "completion_json", "sse_stream", "json_reply", "chunked", "gateway_over",
           "gateway_over_protocols", "usage_rows", "settled_row", "scripted_upstream"]

USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def completion_json(text: str, model: str, usage: dict = USAGE) -> bytes:
    return orjson.dumps({"id": "chatcmpl-r", "object": "chat.completion", "created": 1, "model": model,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                      "finish_reason": "stop", "logprobs": None}], "usage": usage})


def sse_stream(words: list[str], model: str, usage: dict = USAGE) -> bytes:
    """An OpenAI chat-completions SSE body: a role chunk, one chunk per word, the finish, the usage, [DONE]."""
    def chunk(delta: dict, finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
                                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"
    events = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": w}) for w in words]
    events.append(chunk({}, "stop"))
    events.append(b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                                            "model": model, "choices": [], "usage": usage}) + b"\n\n")
    return b"".join(events) + b"data: [DONE]\n\n"


def json_reply(body: bytes, extra_headers: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra_headers
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def chunked(body: bytes, extra_headers: bytes = b"", terminator: bool = True) -> bytes:
    """An SSE response head and `body` as one chunk (and the last chunk, unless `terminator` is False)."""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + extra_headers
            + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n"
            + (b"0\r\n\r\n" if terminator else b""))


def _get(head: bytes) -> dict:
    """A request without a body (discovery's `GET /v1/models`): its method, path and headers."""
    line, *fields = head.decode("latin-1").split("\r\n")
    method, path = line.split(" ")[:2]
    return {"method": method, "path": path,
            "headers": {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields if f)}}


class RawUpstream:
    """`mode` says what follows a reply on its connection:
    "keep":  kept open for the next request;
    "close": closed at once (the server closes after each response);
    "drop":  kept open, but the next request on it is read and the connection closed unanswered (a
             keep-alive timeout that fired as the request crossed it: the FIN was on its way);
    "reset": kept open, but the next request on it is answered with a TCP reset (the server had
             closed the socket; the request's bytes arriving there make the kernel reset it).
    `answer(request)` gives a reply's pieces (each its own write, `pause_s` apart; a float piece is a
    pause of that many seconds instead); `request` is the JSON body, or for a request without one (a
    GET) {"method", "path", "headers"}. `path` is the latest request's path (and query)."""

    def __init__(self, answer: Callable[[dict], list[bytes]]) -> None:
        self.answer = answer
        self.mode = "keep"
        self.connections = 0
        self.answered = 0
        self.received = 0             # requests read whole (counted before any answer is written)
        self.unanswered = 0           # requests on a connection the server had given up
        self.pause_s = 0.005          # between two written pieces
        self.path = ""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="raw-upstream")
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = False
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)     # a GET has none
                if served and self.mode in ("drop", "reset"):
                    self.unanswered += 1
                    if self.mode == "reset":     # SO_LINGER 0: close() sends a reset, not a FIN
                        sock = writer.get_extra_info("socket")
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        writer.transport.abort()
                        return
                    await reader.readexactly(length)
                    break
                request = orjson.loads(await reader.readexactly(length)) if length else _get(head)
                self.received += 1
                self.path = head.split(b" ", 2)[1].decode("latin-1")
                for piece in self.answer(request):
                    if isinstance(piece, float):
                        await asyncio.sleep(piece)
                        continue
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(self.pause_s)
                self.answered += 1
                served = True
                if self.mode == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


@contextmanager
def scripted_upstream(reply: bytes | list[bytes] | None = None) -> Iterator[dict]:
    """A RawUpstream that answers `state["reply"]` (one reply, or a list of chunks: a test sets it)
    and records each request in `state["requests"]`; `state["server"]` is the server."""
    state: dict = {"reply": reply, "requests": []}

    def answer(request: dict) -> list[bytes]:
        state["requests"].append(request)
        out = state["reply"]
        return out if isinstance(out, list) else [out]
    state["server"] = server = RawUpstream(answer)
    try:
        yield state
    finally:
        server.stop()


@contextmanager
def gateway_over(up: RawUpstream, tmp: Path, http1: bool, **overrides) -> Iterator[Gateway]:
    """A gateway whose provider "openai" is `up` (the money catalog's models), through the lean
    HTTP/1.1 client or aiohttp's (`upstream_http1`), router retries off; `overrides`: other settings."""
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'r1.db'}", demo="off", max_retries=0, usage_flush_interval_s=0.05,
        upstream_http1=http1, catalog_path=str(write_money_catalog(tmp / "catalog.toml")),
        providers={"openai": ProviderSettings(api_key="sk-raw-0123456789", base_url=up.base_url)}, **overrides)
    with Gateway(settings) as gw:
        yield gw


@contextmanager
def gateway_over_protocols(up: RawUpstream, tmp: Path, keys: dict[str, str], **overrides) -> Iterator[Gateway]:
    """A gateway whose providers "openai" (the money catalog's models), "anthropic" and "gemini" (the
    built-in catalog's) all are `up` (requests to /v1/chat/completions, /v1/messages and
    /v1beta/models/...; `up.path` tells them apart), with `keys` ({provider: api_key}), router retries
    off unless `overrides` say otherwise."""
    root = up.base_url.removesuffix("/v1")
    base = dict(database_url=f"sqlite:///{tmp / 'r1.db'}", demo="off", max_retries=0, usage_flush_interval_s=0.05,
                catalog_path=str(write_money_catalog(tmp / "catalog.toml")),
                providers={"openai": ProviderSettings(api_key=keys["openai"], base_url=root + "/v1"),
                           "anthropic": ProviderSettings(api_key=keys["anthropic"], base_url=root),
                           "gemini": ProviderSettings(api_key=keys["gemini"], base_url=root + "/v1beta")})
    base.update(overrides)
    with Gateway(Settings(**base)) as gw:
        yield gw


def usage_rows(gw: Gateway, account_id: int, expected: int = 1) -> list:
    """The account's usage rows, once `expected` are written (or 10 s have passed)."""
    store = gw.runtime.chat.d.billing.store
    deadline = time.monotonic() + 10
    while True:
        rows = gw.call(store.query_usage(UsageQuery(account_id=account_id, limit=100))).records
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def settled_row(gw: Gateway, account_id: int):
    """The account's one usage row, its hold closed and its cost what the balance lost (of 10 USD)."""
    [row] = usage_rows(gw, account_id)
    acc = gw.account(account_id)
    assert acc["reserved_micros"] == 0, "the hold was left open"
    assert 10_000_000 - acc["balance_micros"] == row.cost_micros
    return row

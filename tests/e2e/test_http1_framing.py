"""A plain-http upstream (vLLM, Ollama, a sidecar: the lean HTTP/1.1 client, providers/http1.py)
whose replies are framed in hostile or sloppy ways, written byte for byte by a raw socket server.
Through the real gateway on a real socket with the official `openai` SDK: a complete reply is
served and billed once, whatever follows it on the connection; that never reaches another request."""
from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import openai
import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import SMALL, write_money_catalog  # noqa: E402

from routerone.settings import ProviderSettings, Settings  # noqa: E402
from routerone.store.base import UsageQuery  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402

USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def _completion(text: str) -> bytes:
    return orjson.dumps({"id": "chatcmpl-r", "object": "chat.completion", "created": 1, "model": SMALL,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                      "finish_reason": "stop", "logprobs": None}], "usage": USAGE})


def _reply(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body


class RawUpstream:
    """Answers each request on a connection with the next of `script` (raw bytes), in one write;
    keeps the connection open. Runs its own event loop in a thread."""

    def __init__(self) -> None:
        self.script: list[bytes] = []
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="raw-upstream")
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                writer.write(self.script.pop(0))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def raw():
    up = RawUpstream()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(raw, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http1framing")
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'r1.db'}", demo="off", max_retries=0, usage_flush_interval_s=0.05,
        catalog_path=str(write_money_catalog(tmp / "catalog.toml")),
        providers={"openai": ProviderSettings(api_key="sk-raw-0123456789", base_url=f"http://127.0.0.1:{raw.port}/v1")})
    with Gateway(settings) as gw:
        yield gw


def _rows(gw: Gateway, account_id: int, expected: int) -> list:
    store = gw.runtime.chat.d.billing.store
    deadline = time.monotonic() + 10
    while True:
        rows = gw.call(store.query_usage(UsageQuery(account_id=account_id, limit=100))).records
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_a_second_response_behind_a_complete_reply_is_not_part_of_it_nor_of_the_next_request(gw, raw):
    """The upstream writes its reply and, in the same segment, the start of another response. Before,
    the client parsed on: that response's body was appended to the JSON (a 502 for a complete
    reply) and the rest of it waited in the pooled connection for the next request."""
    raw.script[:] = [_reply(_completion("first")) + b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n{\"smuggled",
                     _reply(_completion("second"))]
    before = raw.connections
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "hi"}]
    assert client.chat.completions.create(model=SMALL, messages=messages).choices[0].message.content == "first"
    assert client.chat.completions.create(model=SMALL, messages=messages).choices[0].message.content == "second"
    assert raw.connections - before == 2              # the first connection was not pooled
    rows = _rows(gw, account_id, 2)
    assert [r.status for r in rows] == [200, 200] and all(r.cost_micros > 0 for r in rows)
    assert gw.account(account_id)["reserved_micros"] == 0

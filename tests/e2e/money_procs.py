"""Helpers for the issue-11 money tests: a scriptable OpenAI-compatible upstream that misbehaves on
purpose (huge streams, NUL in error codes, absurd usage), a TCP proxy that can make PostgreSQL
unreachable and reachable again, and a catalog with a small- and a large-context model.

Directives in the last user message:
    [[big:N]]        stream N characters of content (deltas of [[delta:D]] characters, default 4096)
    [[cut:1]]        ...then drop the connection (no finish_reason, no usage)
    [[pace:MS]]      sleep MS milliseconds between stream events
    [[sleep:MS]]     sleep MS milliseconds before answering
    [[usage:N]]      report N completion tokens (negative with [[neg:1]])
    [[errnul:S]]     answer HTTP status S with an error whose code holds a NUL and control characters
    [[badusage:1]]   report usage with a string, a 1e300 float and a details field that is not an object
    [[nousage:1]]    end the stream normally but without a usage chunk (the gateway must count)
"""
from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path

import orjson
from aiohttp import web

from routerone.store.base import UsageQuery
from routerone.testing.threaded import ThreadedServer

__all__ = ["MisbehavingUpstream", "write_money_catalog", "SMALL", "BIG", "OUT_MICROS"]

SMALL, BIG = "r1-small-ctx", "r1-big-ctx"
OUT_MICROS = 10          # micro-dollars per output token on both models; input is free
_DIRECTIVE = re.compile(r"\[\[(\w+):(-?\d+)\]\]")
_TEXT = "hello world "


def write_money_catalog(path: Path) -> Path:
    path.write_text(f"""
[[model]]
id = "{SMALL}"
provider = "openai"
upstream = "fake-small"
context_window = 128000
max_output = 100
input_usd_per_mtok = "0"
output_usd_per_mtok = "{OUT_MICROS}"
quality = 0.9

[[model]]
id = "{BIG}"
provider = "openai"
upstream = "fake-big"
context_window = 1048576
max_output = 100
input_usd_per_mtok = "0"
output_usd_per_mtok = "{OUT_MICROS}"
quality = 0.5
""")
    return path


def _directives(body: dict) -> dict[str, int]:
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
            return {k: int(v) for k, v in _DIRECTIVE.findall(m["content"][-400:])}
    return {}


class MisbehavingUpstream(ThreadedServer):
    def __init__(self) -> None:
        self.calls = 0
        super().__init__(self._app)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        body = orjson.loads(await request.read())
        d = _directives(body)
        model = body.get("model", "fake")
        if d.get("sleep"):
            await asyncio.sleep(d["sleep"] / 1000)
        if "errnul" in d:
            err = {"error": {"message": "bad\x00thing", "type": "invalid_request_error",
                             "code": "bad\x00code\x1b[2J" + "z" * 3000}}
            return web.json_response(err, status=d["errnul"])
        n_out = int(body.get("max_tokens") or 5)
        completion = d.get("usage", n_out) * (-1 if d.get("neg") else 1)
        usage = {"prompt_tokens": 7, "completion_tokens": completion, "total_tokens": 7 + completion}
        if d.get("badusage"):
            usage = {"prompt_tokens": "lots", "completion_tokens": 1e300, "total_tokens": None,
                     "prompt_tokens_details": "cached"}
        cid = f"chatcmpl-{uuid.uuid4().hex[:8]}"
        if not body.get("stream"):
            return web.json_response({
                "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok " * n_out},
                             "finish_reason": "length", "logprobs": None}], "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        def event(delta: dict, finish: str | None = None, **extra) -> bytes:
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
            return b"data: " + orjson.dumps(chunk) + b"\n\n"
        await resp.write(event({"role": "assistant", "content": ""}))
        total = d.get("big", 0)
        size = d.get("delta", 4096)
        pace = d.get("pace", 0) / 1000
        piece = (_TEXT * (size // len(_TEXT) + 1))[:size]
        sent = 0
        try:
            if total:
                while sent < total:
                    part = piece[:total - sent]
                    await resp.write(event({"content": part}))
                    sent += len(part)
                    if pace:
                        await asyncio.sleep(pace)
            else:
                for _ in range(n_out):
                    await resp.write(event({"content": "ok "}))
                    if pace:
                        await asyncio.sleep(pace)
            if d.get("cut"):
                request.transport.close()   # no finish, no usage: the gateway must count what it relayed
                return resp
            await resp.write(event({}, "length" if not total else "stop"))
            if d.get("nousage"):
                await resp.write(b"data: [DONE]\n\n")
                return resp
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
                     "usage": usage}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n" + b"data: [DONE]\n\n")
        except (ConnectionResetError, RuntimeError):
            pass
        return resp


def settled_rows(gw, account_id: int, expected: int, *, funded_micros: int = 10_000_000) -> list:
    """The account's usage rows once `expected` are written (10 s at most); the hold closed, and
    the ledger's charges = the rows' costs = what left the balance (funded with `funded_micros`)."""
    store = gw.runtime.chat.d.billing.store
    deadline = time.monotonic() + 10
    while True:
        rows = gw.call(store.query_usage(UsageQuery(account_id=account_id, limit=100))).records
        if len(rows) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(rows) == expected, f"{len(rows)} usage rows for {expected} requests"
    acc = gw.account(account_id)
    assert acc["reserved_micros"] == 0, "a hold was left open"
    charged = sum(-e.amount_micros for e in gw.call(store.ledger(account_id, 100)) if e.kind == "charge")
    assert charged == sum(r.cost_micros for r in rows) == funded_micros - acc["balance_micros"]
    return rows

"""An upstream that closes its keep-alive connections (uvicorn, under vLLM, after 5 s idle) must not
cost a request: a pooled connection the server has closed is not handed out, and a request that
fails on a reused connection before any byte of a response came is sent again, once, on a fresh one.
Before, the request written into a connection whose FIN (or reset) was on its way failed with 502.

Through the real gateway on a real socket with the official `openai` SDK, router retries off, many
requests in a row, each answered 200 and billed exactly once; against both upstream clients."""
from __future__ import annotations

import sys
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import OUT_MICROS, SMALL  # noqa: E402
from raw_upstream import (USAGE, RawUpstream, chunked, completion_json, gateway_over, json_reply,  # noqa: E402
                          sse_stream, usage_rows)

REQUESTS = 8


def _answer(request: dict) -> list[bytes]:
    if request.get("stream"):
        return [chunked(sse_stream(["hello ", "world"], SMALL))]
    return [json_reply(completion_json("hello world", SMALL))]


@pytest.fixture(scope="module")
def up():
    server = RawUpstream(_answer)
    yield server
    server.stop()


@pytest.fixture(scope="module", params=[True, False], ids=["http1", "aiohttp"])
def gw(request, up, tmp_path_factory):
    with gateway_over(up, tmp_path_factory.mktemp("stale"), request.param) as gw:
        yield gw


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("mode", ["close", "drop", "reset"])
def test_requests_on_connections_the_upstream_closed_are_all_answered_and_billed_once(gw, up, mode, stream):
    up.mode = "keep"
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model=SMALL, messages=messages)      # a pooled connection to begin with
    up.mode, unanswered = mode, up.unanswered
    for _ in range(REQUESTS):
        if stream:
            chunks = list(client.chat.completions.create(model=SMALL, messages=messages, stream=True,
                                                         stream_options={"include_usage": True}))
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello world"
            assert chunks[-1].usage.completion_tokens == USAGE["completion_tokens"]
        else:
            reply = client.chat.completions.create(model=SMALL, messages=messages)
            assert reply.choices[0].message.content == "hello world"
    if mode != "close":
        assert up.unanswered - unanswered >= REQUESTS - 1     # the race was there to lose, each time
    rows = usage_rows(gw, account_id, REQUESTS + 1)
    assert len(rows) == REQUESTS + 1
    assert all(r.status == 200 and r.completion_tokens == USAGE["completion_tokens"] for r in rows)
    assert all(r.cost_micros == USAGE["completion_tokens"] * OUT_MICROS for r in rows)
    acc = gw.account(account_id)
    assert acc["reserved_micros"] == 0
    assert 10_000_000 - acc["balance_micros"] == sum(r.cost_micros for r in rows)

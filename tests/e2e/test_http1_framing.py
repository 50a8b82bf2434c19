"""A plain-http upstream (vLLM, Ollama, a sidecar: the lean HTTP/1.1 client, providers/http1.py)
whose replies are framed in hostile or sloppy ways, written byte for byte by a raw socket server.
Through the real gateway on a real socket with the official `openai` SDK: a complete reply is
served and billed once, whatever follows it on the connection; that never reaches another request."""
from __future__ import annotations

import sys
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import SMALL  # noqa: E402
from raw_upstream import RawUpstream, completion_json, gateway_over, json_reply, usage_rows  # noqa: E402


def _completion(text: str) -> bytes:
    return completion_json(text, SMALL)


@pytest.fixture(scope="module")
def raw():
    """Answers each request on a connection with the next of `raw.script` (raw bytes), in one write;
    keeps the connection open."""
    script: list[bytes] = []
    up = RawUpstream(lambda request: [script.pop(0)])
    up.script = script
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(raw, tmp_path_factory):
    with gateway_over(raw, tmp_path_factory.mktemp("http1framing"), True) as gw:
        yield gw


def test_a_second_response_behind_a_complete_reply_is_not_part_of_it_nor_of_the_next_request(gw, raw):
    """The upstream writes its reply and, in the same segment, the start of another response. Before,
    the client parsed on: that response's body was appended to the JSON (a 502 for a complete
    reply) and the rest of it waited in the pooled connection for the next request."""
    raw.script[:] = [json_reply(_completion("first")) + b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n{\"smuggled",
                     json_reply(_completion("second"))]
    before = raw.connections
    key, account_id = gw.new_key()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "hi"}]
    assert client.chat.completions.create(model=SMALL, messages=messages).choices[0].message.content == "first"
    assert client.chat.completions.create(model=SMALL, messages=messages).choices[0].message.content == "second"
    assert raw.connections - before == 2              # the first connection was not pooled
    rows = usage_rows(gw, account_id, 2)
    assert [r.status for r in rows] == [200, 200] and all(r.cost_micros > 0 for r in rows)
    assert gw.account(account_id)["reserved_micros"] == 0

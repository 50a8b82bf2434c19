"""Huge and expensive client requests against the event loop (session 10).

Router One is one asyncio loop per worker: a request whose handling holds the loop stalls every
other client. Each case sends one expensive request to a real gateway process while another
client (stall_probe.py, its own process) sends small requests back to back, and checks: the other
client was never kept waiting long (`StallProbe.max_gap_ms`), the expensive request got the right
answer (a reply, or the documented error), and the money is right (billed when served, the hold
released either way). Measured before the fixes (worst gap of the other client): a 20 MB chat
prompt 1,100 ms, /v1/messages 690 ms, /v1/responses 570 ms, /v1/messages/count_tokens 610 ms, an
embeddings input of 20 MB 585 ms, 300 token-id arrays of 8,000 ids 510 ms; after, each under
100 ms on an idle machine. The bar here is STALL_BAR_MS (room for a loaded CI machine: these tests
run beside others on 2 cores), still a fraction of every "before"; a gap over it is compared with
the machine's own noise in the same run (`assert_no_stall`). The last two cases: in a fresh
gateway the tokenizer's first load (~1 s) ran on the event loop from a stream's settle and from the
count of a reply without usage (another client waited ~0.8 s).
"""
from __future__ import annotations

import json
import socket
import subprocess
import time
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import FakeUpstream  # noqa: E402
from stall_procs import StallGateway, StallProbe, post_raw, stall_gateway  # noqa: E402

pytestmark = pytest.mark.slow

STALL_BAR_MS = 250.0
MB = 1024 * 1024
BODY_BYTES = 20 * MB - 64 * 1024      # just under max_body_bytes (20 MiB)


def words(n_chars: int) -> str:
    w = "lorem ipsum dolor sit amet "
    return (w * (n_chars // len(w) + 1))[:n_chars]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def gw(tmp_path_factory, upstream: FakeUpstream) -> Iterator[StallGateway]:
    with stall_gateway(tmp_path_factory.mktemp("huge"), upstream, log_level="warning") as g:
        yield g


def expensive(gw: StallGateway, path: str, body: dict) -> tuple[int, dict, StallProbe]:
    """Send `body` while the probe runs: (status, reply, the probe: see `assert_no_stall`)."""
    raw = json.dumps(body).encode()
    assert len(raw) < 20 * MB
    with StallProbe(gw.url, gw.key) as probe:
        status, out = post_raw(gw.url, path, gw.key, raw, timeout_s=60)
    return status, json.loads(out), probe


def assert_no_stall(gw: StallGateway, probe: StallProbe) -> None:
    """The other client never waited STALL_BAR_MS more than this machine makes it wait anyway.
    Under STALL_BAR_MS: passed. Over it, the same probe runs again on the same gateway, in the same
    run, for as long (at least 1 s) with nothing else sent, and the bar is STALL_BAR_MS above that
    baseline. Why: at a load of 8-10 on 2 cores, scheduling alone kept the probe waiting 250 ms and
    more and the fixed bar flaked. It can still fail: a stall of the event loop adds to the noise
    (every "before" above is 0.5-1.1 s of CPU on the loop, which a loaded machine makes longer)."""
    if probe.max_gap_ms < STALL_BAR_MS:
        return
    with StallProbe(gw.url, gw.key, settle_s=0) as idle:
        time.sleep(max(probe.window_s, 1.0))
    assert probe.max_gap_ms < STALL_BAR_MS + idle.max_gap_ms, \
        f"another client waited {probe.max_gap_ms} ms (with nothing else sent: {idle.max_gap_ms} ms)"


def assert_settled(gw: StallGateway, before: dict, *, charged: bool) -> None:
    after = gw.account()
    assert after["available_micros"] == after["balance_micros"], "a hold was left behind"
    spent = before["balance_micros"] - after["balance_micros"]
    assert (spent > 0) if charged else (spent == 0), f"charged {spent} micro-dollars"


CHAT_PROMPT = {"model": "stall-chat", "max_tokens": 5,
               "messages": [{"role": "user", "content": words(BODY_BYTES)}]}


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", CHAT_PROMPT),
    ("/v1/chat/completions", {**CHAT_PROMPT, "model": "auto"}),
    ("/v1/messages", CHAT_PROMPT),
    ("/v1/responses", {"model": "stall-chat", "max_output_tokens": 16, "input": words(BODY_BYTES)}),
], ids=["chat", "chat-auto", "messages", "responses"])
def test_a_20mb_prompt_is_served_without_stalling_other_clients(gw: StallGateway, path: str, body: dict) -> None:
    """Counting the tokens of a 20 MB prompt (for the hold and the limits) took ~0.6 s on the
    event loop; /v1/messages and /v1/responses also parsed and translated the body there. With
    `model: "auto"`, hashing the opening for sticky conversations and featurising the prompt for
    the learned router took another 0.1-0.3 s there (Planner.prepare now runs off the loop)."""
    before = gw.account()
    status, reply, probe = expensive(gw, path, body)
    assert status == 200, reply
    assert reply["usage"].get("prompt_tokens", reply["usage"].get("input_tokens")) > 3_000_000
    assert_settled(gw, before, charged=True)
    assert_no_stall(gw, probe)


def test_a_short_request_continuing_a_20mb_response_does_not_stall_other_clients(gw: StallGateway) -> None:
    """Session 13: a `previous_response_id` brings the stored chain's items (here a 20 MB prompt)
    into a request of a few bytes. Its context was read, translated and its tokens counted on the
    event loop, as only the request's own size sent that work to a thread: each such short request
    stalled every other client (measured ~1 s), and could be repeated at will."""
    status, first, _ = expensive(gw, "/v1/responses", {"model": "stall-chat", "max_output_tokens": 16,
                                                       "input": words(BODY_BYTES)})
    assert status == 200, first
    before = gw.account()
    status, reply, probe = expensive(gw, "/v1/responses", {"model": "stall-chat", "max_output_tokens": 16,
                                                           "previous_response_id": first["id"], "input": "and?"})
    assert status == 200, reply
    assert reply["usage"]["input_tokens"] > 3_000_000
    assert_settled(gw, before, charged=True)
    assert_no_stall(gw, probe)


@pytest.mark.parametrize("path,body", [
    ("/v1/messages/count_tokens", {"model": "stall-chat", "messages": CHAT_PROMPT["messages"]}),
    ("/v1/responses/input_tokens", {"model": "stall-chat", "input": words(BODY_BYTES)}),
], ids=["messages", "responses"])
def test_count_tokens_of_a_20mb_prompt_does_not_stall_other_clients(gw: StallGateway, path: str, body: dict) -> None:
    before = gw.account()
    status, reply, probe = expensive(gw, path, body)
    assert status == 200 and reply["input_tokens"] > 3_000_000, reply
    assert_no_stall(gw, probe)
    assert_settled(gw, before, charged=False)


@pytest.mark.parametrize("body,status", [
    ({"model": "text-embedding-3-small", "input": words(BODY_BYTES)}, 400),
    ({"model": "text-embedding-3-small", "input": [[1] * 8000] * 300}, 200),
], ids=["one-20mb-string", "300-token-id-arrays"])
def test_huge_embeddings_inputs_do_not_stall_other_clients(gw: StallGateway, body: dict, status: int) -> None:
    """A 20 MB input item was counted on the event loop to find it too long (0.6 s); 2.4 million
    token ids were validated there one by one (0.3 s)."""
    before = gw.account()
    got, reply, probe = expensive(gw, "/v1/embeddings", body)
    assert got == status, reply
    if status == 400:
        assert reply["error"]["code"] == "context_length_exceeded" and reply["error"]["param"] == "input"
    else:
        assert len(reply["data"]) == 300
    assert_settled(gw, before, charged=status == 200)
    assert_no_stall(gw, probe)


# -- the tokenizer's first load (~1 s) never on the event loop -----------------------------------

@pytest.fixture
def paced_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(chunk_interval_ms=20) as up:
        yield up


def test_a_stream_cut_by_its_client_is_counted_without_stalling_other_clients(tmp_path, paced_upstream) -> None:
    """A fresh gateway (the tokenizer not loaded yet): a client opens a stream, reads a little and
    goes away. The stream's settle counts the relayed text (the upstream's own count never came),
    and that loaded the tokenizer on the event loop: every other client waited ~1 s."""
    with stall_gateway(tmp_path, paced_upstream, log_level="warning", abandoned_stream_drain_s=0.2) as g:
        body = json.dumps({"model": "stall-chat", "stream": True, "max_tokens": 1000,
                           "messages": [{"role": "user", "content": "hello"}]}).encode()
        before = g.account()
        with StallProbe(g.url, g.key, settle_s=2.5) as probe:
            s = socket.create_connection(("127.0.0.1", g.proc.port))
            s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {g.key}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            got = b""
            while got.count(b"data: ") < 10:
                got += s.recv(4096)
            s.close()
        deadline = time.monotonic() + 10
        while (acc := g.account())["reserved_micros"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert acc["reserved_micros"] == 0 and acc["balance_micros"] < before["balance_micros"]   # billed, released
        assert_no_stall(g, probe)


def test_a_reply_without_usage_is_counted_without_stalling_other_clients(tmp_path, upstream) -> None:
    """A fresh gateway, an upstream reply without `usage`: Router One counts the completion itself.
    A short completion did not look like it needed the tokenizer (tokens.needs_tokenizer is about
    long texts) and the count loaded it on the event loop: every other client waited ~1 s."""
    with stall_gateway(tmp_path, upstream, log_level="warning") as g:
        body = json.dumps({"model": "stall-chat", "max_tokens": 20,
                           "messages": [{"role": "user", "content": "hello [[nousage:1]]"}]}).encode()
        before = g.account()
        with StallProbe(g.url, g.key, settle_s=0.5) as probe:
            status, out = post_raw(g.url, "/v1/chat/completions", g.key, body)
        after = g.account()
        assert status == 200 and json.loads(out)["usage"]["completion_tokens"] == 20, out
        assert after["reserved_micros"] == 0 and after["balance_micros"] < before["balance_micros"]
        assert_no_stall(g, probe)


# -- a fast upstream stream vs the other clients ------------------------------------------------

_STREAM_READER = """
import http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=60)
conn.request("POST", "/v1/chat/completions", body=sys.argv[3].encode(),
             headers={"Authorization": "Bearer " + sys.argv[2], "Content-Type": "application/json"})
resp = conn.getresponse()
n = 0
while chunk := resp.read1(1 << 20):
    n += len(chunk)
print(resp.status, n)
"""


@pytest.fixture(scope="module")
def gw_aiohttp(tmp_path_factory, upstream: FakeUpstream) -> Iterator[StallGateway]:
    """The same gateway reading its upstream with aiohttp (what https upstreams use)."""
    with stall_gateway(tmp_path_factory.mktemp("huge-aiohttp"), upstream, log_level="warning",
                       upstream_http1=False) as g:
        yield g


@pytest.mark.parametrize("client", ["http1", "aiohttp"])
def test_a_fast_upstream_stream_does_not_starve_other_clients(request, client: str) -> None:
    """An upstream that sends its stream as fast as the network goes (the fake: 60k tokens, ~13 MB
    of SSE at once; a hostile or a cached upstream may): the event loop read and relayed it in long
    runs (libuv reads a socket with data up to 32 times in a row) and the other client waited
    0.4-0.8 s. Reading now pauses for a turn of the loop every YIELD_AFTER_BYTES, with either
    upstream client (aiohttp's reader hands over buffered bytes without ever suspending)."""
    gw: StallGateway = request.getfixturevalue("gw" if client == "http1" else "gw_aiohttp")
    status, _ = post_raw(gw.url, "/v1/chat/completions", gw.key, json.dumps(     # the tokenizer loaded first
        {"model": "stall-chat", "max_tokens": 5, "messages": [{"role": "user", "content": words(8000)}]}).encode())
    assert status == 200
    body = json.dumps({"model": "stall-chat", "stream": True, "max_tokens": 60_000,
                       "messages": [{"role": "user", "content": "go"}]})
    before = gw.account()
    with StallProbe(gw.url, gw.key) as probe:
        out = subprocess.run([sys.executable, "-c", _STREAM_READER, str(gw.proc.port), gw.key, body],
                             capture_output=True, text=True, timeout=60)
    status_text, n_bytes = out.stdout.split()
    assert status_text == "200" and int(n_bytes) > 10_000_000, out.stderr[-2000:]
    assert_settled(gw, before, charged=True)
    assert_no_stall(gw, probe)

"""What hostile or unlucky traffic leaves behind in a long-running gateway (session 16's bounds
audit): every per-process structure it can grow stays bounded. Real gateway, real sockets; only the
upstream is scripted."""
from __future__ import annotations

import socket
import time
import urllib.request

import orjson

import pytest
from prometheus_client.parser import text_string_to_metric_families

from raw_upstream import RawUpstream, gateway_over
from money_procs import SMALL
from routerone.store.base import UsageQuery

DISTINCT = 40


def _label_values(gw, family: str, label: str) -> set[str]:
    with urllib.request.urlopen(gw.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return {s.labels[label] for fam in text_string_to_metric_families(text) if fam.name == family
            for s in fam.samples if label in s.labels}


def _post(gw, key: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(gw.base_url + "/chat/completions", data=orjson.dumps(body), method="POST",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_upstream_error_codes_are_passed_on_but_never_become_metric_labels(tmp_path):
    """An upstream's 400 error `code` is passed on to the client (any short ASCII word), and it also
    became a label value of routerone_upstream_errors{code} and routerone_requests{error_type}: an
    upstream answering a distinct code per request (a request id in it, a hostile box) grew /metrics
    and the process by a series per request, without bound (2,000 codes: 6 KB -> 985 KB of /metrics)."""
    def answer(request: dict) -> list[bytes]:
        code = request["messages"][-1]["content"]
        body = orjson.dumps({"error": {"message": "no", "type": "invalid_request_error", "code": code}})
        return [b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % len(body) + body]
    up = RawUpstream(answer)
    try:
        with gateway_over(up, tmp_path, http1=True) as gw:
            key, _ = gw.new_key()
            for i in range(DISTINCT):
                status, body = _post(gw, key, {"model": SMALL, "messages": [{"role": "user", "content": f"bad_{i}"}]})
                assert status == 400 and body["error"]["code"] == f"bad_{i}", body     # still passed on
            codes = _label_values(gw, "routerone_upstream_errors", "code")
            error_types = _label_values(gw, "routerone_requests", "error_type")
    finally:
        up.stop()
    assert codes == {"upstream_invalid_request"}, sorted(codes)[:5]
    assert error_types == {"upstream_invalid_request"}, sorted(error_types)[:5]


LONG_CATALOG = """
[[model]]
id = "long-output"
provider = "openai"
upstream = "fake-model"
context_window = 1000000
max_output = 1000000
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
quality = 0.5
"""


@pytest.mark.parametrize("path, body", [
    ("/v1/messages", {"model": "long-output", "stream": True, "max_tokens": 400000,
                      "messages": [{"role": "user", "content": "go"}]}),
    ("/v1/responses", {"model": "long-output", "stream": True, "max_output_tokens": 400000, "input": "go"}),
])
def test_a_client_that_stops_reading_a_messages_or_responses_stream_is_cut_off_and_settled(gateway, tmp_path,
                                                                                             path, body):
    """As on /v1/chat/completions: a client that asks for a long stream and never reads it is cut off
    once a write has waited client_write_timeout_s, and what was relayed is settled. /v1/messages and
    /v1/responses wrote without a deadline: the write waited for ever, holding the connection, the
    upstream's and the caller's balance hold (the sweep extends a live hold)."""
    catalog = tmp_path / "long.toml"
    catalog.write_text(LONG_CATALOG)
    gw = gateway(client_write_timeout_s=1, catalog_path=str(catalog))
    key, account_id = gw.new_key()
    raw = orjson.dumps(body)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = gw.url.removeprefix("http://").split(":")
    s.connect((host, int(port)))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n".encode() + raw)
    try:
        s.recv(1024)                       # the head and a first event arrive; then the client stops reading
        deadline = time.monotonic() + 20
        acc = gw.account(account_id)
        while time.monotonic() < deadline and acc["reserved_micros"] != 0:
            time.sleep(0.25)
            acc = gw.account(account_id)
        assert acc["reserved_micros"] == 0, acc               # the hold is settled ...
        assert acc["balance_micros"] < 10_000_000             # ... with a charge for what was relayed
        store = gw.runtime.chat.d.billing.store
        deadline = time.monotonic() + 10
        while not (rows := gw.call(store.query_usage(UsageQuery(account_id=account_id, limit=10))).records) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [r.status for r in rows] == [499]              # cut short by the client, not finished
        s.settimeout(10)
        with pytest.raises(OSError):      # what was buffered, then the end of the connection
            while s.recv(1 << 20):
                pass
            raise ConnectionResetError("closed")
    finally:
        s.close()


def _established(port: int) -> int:
    """TCP connections in ESTABLISHED state whose local port is `port` (the upstream's side)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in list(f)[1:]:
                local, state = line.split()[1], line.split()[3]
                if int(local.rsplit(":", 1)[1], 16) == port and state == "01":
                    count += 1
    return count


def test_idle_upstream_connections_left_by_a_burst_are_closed(tmp_path, monkeypatch):
    """The lean HTTP/1.1 client's pool keeps a burst's connections for reuse and dropped one past
    POOL_IDLE_S only when a request reached it: it reuses the newest first, so after a burst of 40
    concurrent calls, steady one-at-a-time traffic (or none) left the other 39 open for ever on an
    upstream that keeps idle connections (Ollama, Go's server: no idle timeout), a file descriptor
    each on both sides. They are closed once idle for POOL_IDLE_S, with or without traffic."""
    from concurrent.futures import ThreadPoolExecutor

    from raw_upstream import completion_json, json_reply
    from routerone.providers import http1_pool
    monkeypatch.setattr(http1_pool, "POOL_IDLE_S", 1.0)
    up = RawUpstream(lambda request: [0.3, json_reply(completion_json("hi", SMALL))])
    try:
        with gateway_over(up, tmp_path, http1=True) as gw:
            key, _ = gw.new_key()
            body = {"model": SMALL, "messages": [{"role": "user", "content": "hi"}]}
            with ThreadPoolExecutor(40) as pool:
                statuses = list(pool.map(lambda _: _post(gw, key, body)[0], range(40)))
            assert statuses == [200] * 40
            assert _established(up.port) >= 30           # the burst's connections, pooled
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _established(up.port) > 1:
                assert _post(gw, key, body)[0] == 200    # steady traffic, one at a time
                time.sleep(0.2)
            assert _established(up.port) <= 1
            time.sleep(2.5)                              # and with no traffic at all
            assert _established(up.port) == 0
    finally:
        up.stop()


def test_a_responses_stream_far_past_the_output_allowed_is_ended_not_kept_whole(tmp_path):
    """A /v1/responses stream keeps the whole output (its done events, response.completed and the
    stored response repeat it), so an upstream that ignores max_tokens and streams on made the
    gateway keep all of it: 100M characters for a 100-token model took the process +1.1 GB and
    sent the client 500 MB. Past 32 characters a token of what the request allows (plus 1M) the
    stream now ends as response.failed, billed for what was relayed."""
    from money_procs import MisbehavingUpstream, write_money_catalog
    from routerone.settings import ProviderSettings, Settings
    from routerone.testing.harness import Gateway
    with MisbehavingUpstream() as up:
        settings = Settings(database_url=f"sqlite:///{tmp_path / 'r1.db'}", demo="off", max_retries=0,
                            usage_flush_interval_s=0.05, catalog_path=str(write_money_catalog(tmp_path / "c.toml")),
                            providers={"openai": ProviderSettings(api_key="sk-raw-0123456789", base_url=up.base_url)})
        with Gateway(settings) as gw:
            key, account_id = gw.new_key()
            raw = orjson.dumps({"model": SMALL, "stream": True, "store": False,
                                "input": [{"role": "user", "content": "go [[big:20000000]] [[delta:65536]]"}]})
            host, port = gw.url.removeprefix("http://").split(":")
            got = bytearray()
            with socket.create_connection((host, int(port)), timeout=60) as s:
                s.sendall(f"POST /v1/responses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\nConnection: close\r\n\r\n"
                          .encode() + raw)
                while chunk := s.recv(1 << 20):
                    got += chunk
                    assert len(got) < 64 << 20, "the whole output, kept and repeated"
            assert b"HTTP/1.1 200" in got[:20]
            assert b"event: response.failed" in got and b"far past the 100 output tokens" in got, got[-600:]
            assert len(got) < 8 << 20
            deadline = time.monotonic() + 10
            while gw.account(account_id)["reserved_micros"] and time.monotonic() < deadline:
                time.sleep(0.1)
            acc = gw.account(account_id)
            assert acc["reserved_micros"] == 0 and acc["balance_micros"] < 10_000_000

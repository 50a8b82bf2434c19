"""Nothing leaks (issue 11 item 11): a malformed request's header values (an API key) never reach the
logs, malformed requests cannot flood them, the Server header names no versions, a configured
admin_key is not echoed at first start, and the closed Redis policy says what it is (503
limiter_unavailable), not a 429 that looks like the caller's own limit."""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from openai_schema import validate_error
from routerone.http.guard import MalformedRequestFilter
from routerone.settings import Settings
from routerone.testing.harness import Gateway

SRC = str(Path(__file__).resolve().parents[2] / "src")
SECRET = "sk-ro-LEAKED-SECRET-0123456789abcdef0123"


def raw_request(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return out


def test_malformed_header_lines_are_logged_once_without_values(gw, caplog):
    caplog.set_level(logging.DEBUG)
    for f in logging.getLogger("aiohttp.server").filters:     # the rate limit is per process: start afresh
        if isinstance(f, MalformedRequestFilter):
            f._next_s, f.suppressed = 0.0, 0
    folded = (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n " + SECRET.encode()
              + b"\r\n\r\n")
    replies = [raw_request(gw.url, folded) for _ in range(20)]
    bad_line = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Key " + SECRET.encode() + b"\r\n\r\n"
    replies.append(raw_request(gw.url, bad_line))
    assert all(r.split(b" ", 2)[1] == b"400" for r in replies), replies[0][:200]
    text = "\n".join(r.getMessage() + str(r.exc_text or "") + str(r.exc_info or "") for r in caplog.records)
    assert SECRET not in text
    assert "Traceback" not in text
    server_lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert 1 <= len(server_lines) <= 2, [r.getMessage() for r in server_lines]     # rate-limited, not 21
    assert all(r.levelno <= logging.WARNING and r.exc_info is None for r in server_lines)


def test_a_malformed_request_is_answered_in_json_without_its_header_values(gw):
    """aiohttp answered these in text/plain, quoting the offending header line: an API key too."""
    import orjson
    bad = {
        "folded": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n " + SECRET.encode() + b"\r\n\r\n",
        "control character": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                             + SECRET.encode() + b"\x01\r\n\r\n",
        "over 16 KiB": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + SECRET.encode()
                       + b"x" * 20_000 + b"\r\n\r\n",
        "not HTTP": SECRET.encode() + b"\r\n\r\n",
    }
    for name, data in bad.items():
        reply = raw_request(gw.url, data)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.split(b" ", 2)[1] == b"400", (name, reply[:300])
        assert b"content-type: application/json" in head.lower(), (name, head)
        assert SECRET.encode() not in reply, name
        err = orjson.loads(body)
        validate_error(err)
        assert (err["error"]["type"], err["error"]["code"]) == ("invalid_request_error", "invalid_http"), name


def test_an_unknown_expect_is_a_json_417_and_its_body_is_never_read_as_a_request(gw, funded_key):
    """aiohttp answered `Expect: foo` itself (before any middleware) with a text/plain 417 quoting the
    header, and kept the connection: the unread body was then parsed as a second request, so a body
    holding a request got its own answer on the same connection (a proxy reusing the connection
    would hand that answer to someone else's request)."""
    import openai
    import orjson
    key, account_id = funded_key
    smuggled = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode() + b"\r\n\r\n"
    reply = raw_request(gw.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: " + SECRET.encode()
                        + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
                        + smuggled)
    assert reply.count(b"HTTP/1.1 ") == 1, reply[:600]          # one answer; the connection closed after it
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"417" and b"content-type: application/json" in head.lower(), head
    assert SECRET.encode() not in reply
    err = orjson.loads(body)
    validate_error(err)
    assert (err["error"]["type"], err["error"]["code"], err["error"]["param"]) == \
        ("invalid_request_error", "expectation_failed", "Expect")
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={"Expect": "something-else"})
        raise AssertionError("an unknown expectation was accepted")
    except openai.APIStatusError as exc:
        assert exc.status_code == 417 and exc.body["code"] == "expectation_failed"
    assert client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                          extra_headers={"Expect": "100-continue"}).choices[0].message.content
    assert gw.account(account_id)["reserved_micros"] == 0


def test_server_header_names_no_versions(gw):
    ok = httpx2.get(gw.url + "/healthz")
    assert ok.headers["server"] == "routerone"
    bad = raw_request(gw.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    head = bad.split(b"\r\n\r\n")[0].decode().lower()
    assert "server: routerone" in head and "python" not in head and "aiohttp" not in head


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_configured_admin_key_is_not_echoed_at_first_start(tmp_path):
    admin_key = "sk-ro-configured-admin-key-0123456789abcd"
    port = _free_port()
    conf = tmp_path / "r.toml"
    conf.write_text(f'admin_key = "{admin_key}"\nport = {port}\ndatabase_url = "sqlite:///{tmp_path}/r.db"\n')
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    env["PYTHONPATH"] = SRC
    proc = subprocess.Popen([sys.executable, "-m", "routerone", "--config", str(conf), "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                r = httpx2.get(f"http://127.0.0.1:{port}/v1/account",
                               headers={"Authorization": f"Bearer {admin_key}"}, timeout=2)
                if r.status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["data"]["is_admin"]     # the configured key works
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert admin_key not in out and admin_key not in err
    assert "configuration" in out                    # it says which key is the admin key
    assert "demo provider on" in err                 # and that the demo is on (no provider configured)


def test_closed_redis_policy_is_503_limiter_unavailable(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r.sqlite'}", demo="on", limiter="redis",
                        redis_url=f"redis://127.0.0.1:{_free_port()}/0", redis_failure_policy="closed",
                        default_rpm=100)
    with Gateway(settings) as gw:
        key, _ = gw.new_key()
        r = httpx2.post(gw.base_url + "/chat/completions", timeout=30, headers={"Authorization": f"Bearer {key}"},
                        json={"model": "demo-small", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 503, r.text
    validate_error(r.json())
    assert r.json()["error"]["code"] == "limiter_unavailable"
    assert int(r.headers["Retry-After"]) >= 1

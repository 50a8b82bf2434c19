"""Requests that used to be 500s (issue 11 item 10): wrong-typed fields deep in a message, and an
upstream's `Retry-After: nan | inf` (which also stopped failover). Real gateway, real sockets."""
from __future__ import annotations

import json
import urllib.request

import httpx2
import pytest

from openai_schema import validate_error
from routerone.testing import fake_openai
from routerone.testing.threaded import ThreadedServer

KEY = "sk-fake-upstream-faults-0123456789"


def post(gw, key: str, body: dict) -> httpx2.Response:
    return httpx2.post(gw.base_url + "/chat/completions", json=body, timeout=30,
                       headers={"Authorization": f"Bearer {key}"})


@pytest.mark.parametrize("message, param", [
    ({"role": "user", "content": "hi", "tool_calls": 5}, "messages[0].tool_calls"),
    ({"role": "user", "content": [{"type": []}]}, "messages[0].content[0].type"),
    ({"role": "user", "content": [{"type": {"a": 1}}]}, "messages[0].content[0].type"),
    ({"role": "system", "content": "x", "tool_calls": [7]}, "messages[0].tool_calls[0]"),
])
def test_wrong_types_are_400_naming_the_field(gw, message, param):
    key, _ = gw.new_key()
    r = post(gw, key, {"model": "gpt-4o", "messages": [message]})
    assert r.status_code == 400, r.text
    validate_error(r.json())
    assert r.json()["error"]["param"] == param


@pytest.fixture
def faulty_upstream():
    with ThreadedServer(lambda: fake_openai.make_app(api_key=KEY)) as up:
        yield up


def queue_faults(up, faults: list[dict]) -> None:
    req = urllib.request.Request(up.url + "/_control/faults", data=json.dumps({"faults": faults}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=10).read()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"])
@pytest.mark.parametrize("stream", [False, True])
def test_unusable_retry_after_is_ignored_and_failover_goes_on(gateway, faulty_upstream, value, stream):
    gw = gateway(providers={"openai": (faulty_upstream.url + "/v1", KEY)}, max_retries=1)
    key, _ = gw.new_key()
    queue_faults(faulty_upstream, [{"status": 429, "retry_after": value}])
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    r = post(gw, key, body)
    assert r.status_code == 200, r.text
    assert "429" in r.headers["x-routerone-fallbacks"]
    # with no retry left, the client gets the upstream's 429, without a Retry-After made of nonsense
    gw0 = gateway(providers={"openai": (faulty_upstream.url + "/v1", KEY)}, max_retries=0)
    key0, _ = gw0.new_key()
    queue_faults(faulty_upstream, [{"status": 429, "retry_after": value}])
    r = post(gw0, key0, body)
    assert r.status_code == 429, r.text
    validate_error(r.json())
    ra = r.headers.get("Retry-After")
    assert ra is None or (ra.isdigit() and 1 <= int(ra) <= 3600)

"""A 404 quotes the model or id the client asked for, shortened: a 100 KB model name was echoed
whole in the error body (and so in every log line or client that prints it)."""
from __future__ import annotations

import httpx2
import pytest

from routerone.testing import fake_openai
from routerone.testing.harness import Gateway
from routerone.testing.threaded import ThreadedServer

HUGE = "m" * 100_000          # a body field: no limit but the body's
LONG = "r" * 4_000            # a path segment: within aiohttp's request-line limit
SHORT_BODY_BYTES = 1_000


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("echo404")
    with ThreadedServer(fake_openai.make_app) as up:
        gateway = Gateway.for_upstreams(str(tmp / "r.db"), {"openai": (up.url + "/v1", "sk-a")}, max_retries=0)
        with gateway:
            key, _ = gateway.new_key()
            with httpx2.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {key}"},
                               timeout=30) as http:
                yield http


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/chat/completions", {"model": HUGE, "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/messages", {"model": HUGE, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/responses", {"model": HUGE, "input": "hi"}),
    ("POST", "/embeddings", {"model": HUGE, "input": "hi"}),
    ("POST", "/responses", {"model": "gpt-4o-mini", "input": "hi", "previous_response_id": "resp_" + HUGE}),
    ("GET", f"/responses/resp_{LONG}", None),
    ("GET", f"/responses/resp_{LONG}/input_items", None),
    ("DELETE", f"/responses/resp_{LONG}", None),
    ("GET", f"/models/{LONG}", None),
    ("GET", f"/no-such-route/{LONG}", None),
])
def test_a_404_echoes_a_shortened_model_or_id(gw, method, path, body):
    resp = gw.request(method, path, json=body)
    assert resp.status_code == 404, resp.text[:300]
    assert len(resp.content) < SHORT_BODY_BYTES, resp.text[:300]
    message = resp.json()["error"]["message"]
    assert "\u2026" in message, message       # shortened, visibly

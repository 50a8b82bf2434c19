"""A 404 (or 400) quotes the model, id, header or query value the client sent, shortened: a 100 KB
model name was echoed whole in the error body (and so in every log line or client that prints it)."""
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
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("echo404")
    with ThreadedServer(fake_openai.make_app) as up:
        gateway = Gateway.for_upstreams(str(tmp / "r.db"), {"openai": (up.url + "/v1", "sk-a")}, max_retries=0)
        with gateway:
            yield gateway


@pytest.fixture(scope="module")
def gw(served):
    key, _ = served.new_key()
    with httpx2.Client(base_url=served.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def admin(served):
    with httpx2.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.settings.admin_key}"},
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


def _shortened_400(resp) -> str:
    assert resp.status_code == 400, resp.text[:300]
    assert len(resp.content) < SHORT_BODY_BYTES, resp.text[:300]
    message = resp.json()["error"]["message"]
    assert "\u2026" in message, message
    return message


@pytest.mark.parametrize("path,body", [
    ("/chat/completions", {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}),
    ("/messages", {"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
    ("/responses", {"model": "auto", "input": "hi"}),
], ids=["chat", "messages", "responses"])
def test_an_unknown_strategy_header_is_echoed_shortened(gw, path, body):
    """`x-routerone-strategy: <8 KB>` (headers may be up to ~16 KiB) was quoted whole in its 400."""
    resp = gw.post(path, json=body, headers={"x-routerone-strategy": "s" * 8_000})
    assert "Unknown routing strategy" in _shortened_400(resp)


@pytest.mark.parametrize("query", [f"{LONG}=1", f"{LONG}=1&{LONG}=2"], ids=["unknown", "repeated"])
def test_an_admin_query_parameter_name_is_echoed_shortened(admin, query):
    """An unknown or repeated query parameter's name was quoted whole in the message and `param`."""
    resp = admin.get(f"/admin/keys?{query}")
    _shortened_400(resp)
    assert len(resp.json()["error"]["param"]) <= 201


def test_a_content_type_header_is_echoed_shortened(gw):
    """`Content-Type: application/<8 KB>` was quoted whole in its 400."""
    resp = gw.post("/chat/completions", content=b"{}", headers={"Content-Type": "application/" + "x" * 8_000})
    assert "Content-Type" in _shortened_400(resp)


def test_a_post_to_a_response_path_is_echoed_shortened(gw):
    """`POST /v1/responses/<4 KB>` (not supported: a 404) quoted the whole path."""
    resp = gw.post(f"/responses/resp_{LONG}", json={})
    assert resp.status_code == 404, resp.text[:300]
    assert len(resp.content) < SHORT_BODY_BYTES, resp.text[:300]
    assert "\u2026" in resp.json()["error"]["message"]

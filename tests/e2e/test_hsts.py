"""HSTS (session 13): reached over https through a front proxy (`X-Forwarded-Proto: https`, the rule
the console's Secure cookies already follow), every response (console, API, admin, errors, streams)
says `Strict-Transport-Security: max-age=31536000`; over plain http, none does."""
from __future__ import annotations

import json
from typing import Callable

import httpx2
import pytest

from routerone.testing.harness import ADMIN_KEY, Gateway

HSTS = "max-age=31536000"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _requests(key: str) -> list[tuple[str, str, dict, bytes | None]]:
    user = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return [
        ("GET", "/console/login", {}, None),
        ("GET", "/console/static/console.css", {}, None),
        ("GET", "/", {}, None),                                              # the redirect to /console
        ("GET", "/v1/models", user, None),
        ("POST", "/v1/chat/completions", user, json.dumps(CHAT).encode()),
        ("POST", "/v1/chat/completions", user, json.dumps({**CHAT, "stream": True}).encode()),
        ("GET", "/v1/models", {}, None),                                     # 401
        ("POST", "/v1/chat/completions", user, b"{not json"),                # 400
        ("GET", "/admin/audit", {"Authorization": f"Bearer {ADMIN_KEY}"}, None),
        ("GET", "/openapi.json", {}, None),
        ("GET", "/healthz", {}, None),
    ]


@pytest.fixture
def gw(gateway: Callable[..., Gateway]) -> Gateway:
    return gateway()


@pytest.mark.parametrize("proto", [None, "http", "HTTP"])
def test_no_hsts_over_plain_http(gw: Gateway, proto: str | None) -> None:
    key, _ = gw.new_key()
    extra = {"X-Forwarded-Proto": proto} if proto else {}
    with httpx2.Client(base_url=gw.url, timeout=30, follow_redirects=False) as http:
        for method, path, headers, body in _requests(key):
            r = http.request(method, path, headers={**headers, **extra}, content=body)
            assert r.status_code < 500 and "strict-transport-security" not in r.headers, (path, r.status_code)


@pytest.mark.parametrize("proto", ["https", "HTTPS"])
def test_hsts_on_every_response_over_https_through_the_proxy(gw: Gateway, proto: str) -> None:
    key, _ = gw.new_key()
    seen = set()
    with httpx2.Client(base_url=gw.url, timeout=30, follow_redirects=False) as http:
        for method, path, headers, body in _requests(key):
            r = http.request(method, path, headers={**headers, "X-Forwarded-Proto": proto}, content=body)
            assert r.headers.get("strict-transport-security") == HSTS, (path, r.status_code, dict(r.headers))
            assert r.headers.get_list("strict-transport-security") == [HSTS]
            seen.add(r.status_code)
    assert {200, 303, 400, 401} <= seen

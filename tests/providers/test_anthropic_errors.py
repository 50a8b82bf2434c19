"""Anthropic error bodies -> Router One's error tree (OpenAI-shaped), one fixture per status."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from routerone.errors import UpstreamError, UpstreamUnavailable
from routerone.providers.anthropic import AnthropicAdapter
from routerone.providers.base import Deployment, SSEEvent, Vendor

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
DEP = Deployment("claude-sonnet-4", Vendor(name="anthropic", protocol="anthropic",
                                           base_url="https://api.anthropic.com", auth="x-api-key"),
                 "claude-sonnet-4-20250514")
ERRORS = sorted(p.stem for p in FIXTURES.glob("*.json") if json.loads(p.read_text()).get("kind") == "error")


def test_every_documented_status_has_a_fixture() -> None:
    statuses = {json.loads((FIXTURES / f"{n}.json").read_text())["status"] for n in ERRORS}
    assert {400, 401, 403, 404, 413, 429, 500, 529} <= statuses


@pytest.mark.parametrize("name", ERRORS)
def test_error_fixture(name: str) -> None:
    fx = json.loads((FIXTURES / f"{name}.json").read_text())
    exp = fx["expect"]
    err = AnthropicAdapter().map_error(fx["status"], fx["headers"], orjson.dumps(fx["anthropic"]), DEP)
    assert isinstance(err, UpstreamError)
    assert type(err).__name__ == exp["class"], fx["doc"]
    assert (err.status, err.type, err.code, err.retryable) == (exp["status"], exp["type"], exp["code"], exp["retryable"])
    assert err.retry_after_s == exp["retry_after_s"]
    assert err.upstream_status == fx["status"] and err.provider == "anthropic"
    body = err.to_dict()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    if exp["class"] != "UpstreamAuthFailed":   # never echo upstream credential errors to the caller
        assert fx["anthropic"]["error"]["message"] in body["message"]


def test_rate_limit_sets_retry_after_header() -> None:
    fx = json.loads((FIXTURES / "rate_limit_429.json").read_text())
    err = AnthropicAdapter().map_error(429, fx["headers"], orjson.dumps(fx["anthropic"]), DEP)
    assert err.headers["Retry-After"] == "17"


def test_non_json_error_body() -> None:
    err = AnthropicAdapter().map_error(502, {}, b"<html><body>502 Bad Gateway</body></html>", DEP)
    assert isinstance(err, UpstreamUnavailable) and err.retryable
    assert "502 Bad Gateway" in err.message


def test_stream_error_event_maps_like_the_status() -> None:
    stream = AnthropicAdapter().stream_translator(None, DEP)   # type: ignore[arg-type]
    event = SSEEvent("error", '{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}')
    with pytest.raises(UpstreamError) as info:
        stream.feed(event)
    assert info.value.status == 429 and info.value.retryable

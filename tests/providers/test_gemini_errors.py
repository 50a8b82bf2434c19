"""Google error bodies -> Router One's error tree: one test per status, each pinned by its fixture.

Every Google error body validates against the discovery document's `Status` plus the envelope's
`status` name (`ErrorEnvelope` in gemini_schema).
"""
from __future__ import annotations

import orjson

from gemini_fixtures import ADAPTER, DEP, load
from gemini_schema import validate_gemini
from routerone.providers.gemini_errors import RPC_STATUS_HTTP, error_from_event


def mapped(fixture: str):
    fx = load(fixture)
    if "gemini_error" in fx:
        validate_gemini(fx["gemini_error"], "ErrorEnvelope")
        assert fx["gemini_error"]["error"]["code"] == fx["http_status"]
        assert RPC_STATUS_HTTP[fx["gemini_error"]["error"]["status"]] == fx["http_status"]
        body = orjson.dumps(fx["gemini_error"])
    elif "gemini_error_array" in fx:
        for item in fx["gemini_error_array"]:
            validate_gemini(item, "ErrorEnvelope")
        body = orjson.dumps(fx["gemini_error_array"])
    else:
        body = fx["raw_body"].encode()
    err = ADAPTER.map_error(fx["http_status"], fx["headers"], body, DEP)
    exp = fx["expected"]
    assert type(err).__name__ == exp["class"]
    assert err.status == exp["status"]
    assert err.code == exp["code"]
    assert err.retryable is exp["retryable"]
    assert err.upstream_status == exp["upstream_status"]
    assert err.provider == "gemini"
    assert err.retry_after_s == exp["retry_after_s"]
    if "retry_after_header" in exp:
        assert err.headers["Retry-After"] == exp["retry_after_header"]
    if "message_contains" in exp:
        assert exp["message_contains"] in err.message
    body_out = err.to_dict()["error"]
    assert set(body_out) == {"message", "type", "param", "code"}
    return err


def test_rate_limit_429():
    mapped("rate_limit_429.json")


def test_rate_limit_429_fractional_delay():
    mapped("rate_limit_429_fractional_delay.json")


def test_rate_limit_429_header():
    mapped("rate_limit_429_header.json")


def test_unavailable_503():
    mapped("unavailable_503.json")


def test_internal_500():
    mapped("internal_500.json")


def test_deadline_exceeded_504():
    mapped("deadline_exceeded_504.json")


def test_invalid_argument_400():
    mapped("invalid_argument_400.json")


def test_api_key_invalid_400():
    err = mapped("api_key_invalid_400.json")
    assert "API key" not in err.message   # Router One's credential problem is not shown to callers


def test_permission_denied_403():
    mapped("permission_denied_403.json")


def test_failed_precondition_400():
    mapped("failed_precondition_400.json")


def test_not_found_404():
    mapped("not_found_404.json")


def test_html_502():
    mapped("html_502.json")


def test_error_array_400():
    mapped("error_array_400.json")


def test_stream_error_event_without_code_uses_the_status_name():
    err = error_from_event({"message": "quota", "status": "RESOURCE_EXHAUSTED"}, provider="gemini")
    assert err.status == 429 and err.retryable and err.upstream_status == 429

"""What an operator scrapes and reads: /metrics (parsed with prometheus-client's own parser) counts
exactly the traffic that went through, every response carries x-request-id, and the logs are JSON
lines with the request id and without prompt or completion text unless `log_content` is on."""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

HELLO = [{"role": "user", "content": "Say hello"}]


def scrape(gw) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(gw.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def raw_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}


def test_metrics_count_requests_latency_tokens_cost_errors_and_rejections(gateway, make_openai_client):
    gw = gateway(max_retries=0)
    secret, account_id = gw.new_key(balance_micros=10_000_000)
    client = make_openai_client(gw, secret)
    before = scrape(gw)

    plain = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO, max_tokens=9)
    usage_plain = json.loads(plain.http_response.text)["usage"]
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=5, stream=True,
                                                 stream_options={"include_usage": True}))
    usage_stream = chunks[-1].usage
    with pytest.raises(openai.RateLimitError):       # the upstream says 429: an upstream error
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi [[error:429]]"}])
    with pytest.raises(openai.BadRequestError):      # refused before any upstream call
        client.chat.completions.create(model="gpt-4o", messages=HELLO, temperature=7)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.base_url, api_key="sk-ro-not-a-key-000000000000", max_retries=0) \
            .chat.completions.create(model="gpt-4o", messages=HELLO)

    after = scrape(gw)
    ok = dict(model="gpt-4o", provider="openai", status="200", error_type="")
    assert delta(after, before, "routerone_requests_total", **ok) == 2
    assert delta(after, before, "routerone_requests_total", model="", provider="", status="429",
                 error_type="upstream_rate_limited") == 1
    assert delta(after, before, "routerone_request_latency_seconds_count", model="gpt-4o") == 2
    assert delta(after, before, "routerone_time_to_first_token_seconds_count", model="gpt-4o") == 1
    assert delta(after, before, "routerone_gateway_overhead_seconds_count") == 1      # the JSON reply
    assert 0 < delta(after, before, "routerone_gateway_overhead_seconds_sum") < 1.0
    assert delta(after, before, "routerone_tokens_total", model="gpt-4o", kind="completion") == \
        usage_plain["completion_tokens"] + usage_stream.completion_tokens == 9 + 5
    assert delta(after, before, "routerone_tokens_total", model="gpt-4o", kind="prompt") == \
        usage_plain["prompt_tokens"] + usage_stream.prompt_tokens
    ledger = gw.admin("GET", f"/admin/accounts/{account_id}/ledger")["data"]
    charged_micros = -sum(e["amount_micros"] for e in ledger if e["kind"] == "charge")
    cost_micros = delta(after, before, "routerone_cost_micros_total", model="gpt-4o")
    assert cost_micros == charged_micros == \
        round(usage_plain["cost"] * 1e6) + round(usage_stream.cost * 1e6) > 0   # type: ignore[attr-defined]
    assert delta(after, before, "routerone_upstream_errors_total", provider="openai",
                 code="upstream_rate_limited") == 1
    assert delta(after, before, "routerone_rejections_total", reason="invalid_value") == 1
    assert delta(after, before, "routerone_rejections_total", reason="invalid_api_key") == 1
    for gauge in ("routerone_usage_queue_depth", "routerone_billing_rejections",
                  "routerone_billing_uncharged_micros", "routerone_limiter_fallback_events"):
        assert any(name == gauge for name, _ in after), gauge


def test_retries_and_billing_rejections_are_counted(gateway, make_openai_client):
    gw = gateway(max_retries=1, providers=None)
    client = make_openai_client(gw)
    before = scrape(gw)
    with pytest.raises(openai.InternalServerError):     # 500 twice: the first try and one retry
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi [[error:500]]"}])
    poor, _ = gw.new_key(balance_micros=1)
    with pytest.raises(openai.APIStatusError) as exc:
        openai.OpenAI(base_url=gw.base_url, api_key=poor, max_retries=0).chat.completions.create(
            model="gpt-4o", messages=HELLO)
    assert exc.value.status_code == 402
    after = scrape(gw)
    assert delta(after, before, "routerone_retries_total") == 1
    assert delta(after, before, "routerone_billing_rejections") == 1
    assert delta(after, before, "routerone_rejections_total", reason="insufficient_balance") == 1


def test_every_response_carries_a_request_id_and_echoes_the_callers(gw, funded_key, openai_client):
    secret, _ = funded_key
    auth = {"Authorization": f"Bearer {secret}"}
    for path, headers in (("/v1/models", auth), ("/v1/models", {}), ("/healthz", {}), ("/metrics", {}),
                          ("/v1/account", auth), ("/no/such/path", {}), ("/admin/keys", auth)):
        status, got = raw_get(gw.url + path, headers)
        assert got.get("x-request-id", "").startswith("req_"), (path, status, got)
        status, got = raw_get(gw.url + path, {**headers, "x-request-id": "trace-42"})
        assert got.get("x-request-id") == "trace-42", (path, status)
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    assert raw.headers["x-request-id"] == raw.headers["x-routerone-request-id"]
    assert float(raw.headers["x-routerone-overhead-ms"]) >= 0


def _request_lines(caplog) -> list[dict]:
    """The request log's records as the JSON lines the operator reads (Router One's formatter)."""
    from routerone.observability.logs import REQUEST_LOGGER, JSONFormatter
    fmt = JSONFormatter()
    return [json.loads(fmt.format(r)) for r in caplog.records if r.name == REQUEST_LOGGER]


def _all_log_text(caplog) -> str:
    from routerone.observability.logs import JSONFormatter
    fmt = JSONFormatter()
    return "\n".join(fmt.format(r) for r in caplog.records)


SECRET_PROMPT = "the-password-is-swordfish"


def test_by_default_failures_are_logged_as_json_with_the_request_id_and_no_text(gateway, make_openai_client, caplog):
    caplog.set_level(logging.DEBUG)
    gw = gateway(max_retries=0)
    client = make_openai_client(gw)
    ok = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": SECRET_PROMPT}])
    with pytest.raises(openai.RateLimitError) as upstream_429:
        client.chat.completions.create(model="gpt-4o", extra_headers={"x-request-id": "trace-429"},
                                       messages=[{"role": "user", "content": SECRET_PROMPT + " [[error:429]]"}])
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": SECRET_PROMPT}],
                                       temperature=9)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.base_url, api_key="sk-ro-nope-00000000000000000000", max_retries=0) \
            .chat.completions.create(model="gpt-4o", messages=HELLO)
    lines = _request_lines(caplog)
    by_id = {line["request_id"]: line for line in lines}
    assert ok.headers["x-request-id"] not in by_id            # successes: only with log_requests
    assert len(lines) == 3
    failed = by_id["trace-429"]
    assert upstream_429.value.response.headers["x-request-id"] == "trace-429"
    assert (failed["status"], failed["error_type"], failed["model"], failed["level"]) == \
           (429, "upstream_rate_limited", "", "info")
    assert failed["routerone_request_id"].startswith("req_") and failed["latency_ms"] > 0
    refused = by_id[bad.value.response.headers["x-request-id"]]
    assert (refused["status"], refused["error_type"]) == (400, "invalid_value") and refused["key_id"]
    assert any(line["status"] == 401 and line["error_type"] == "invalid_api_key" for line in lines)
    text = _all_log_text(caplog)
    assert SECRET_PROMPT not in text and "swordfish" not in text
    assert "prompt" not in failed and "completion" not in failed


def test_log_requests_logs_every_request_and_log_content_adds_the_text(gateway, make_openai_client, caplog):
    caplog.set_level(logging.INFO)
    quiet = gateway(log_requests=True)
    raw = make_openai_client(quiet).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": SECRET_PROMPT}], max_tokens=3)
    [line] = [ln for ln in _request_lines(caplog) if ln["request_id"] == raw.headers["x-request-id"]]
    usage = json.loads(raw.http_response.text)["usage"]
    assert (line["status"], line["model"], line["provider"], line["completion_tokens"]) == (200, "gpt-4o", "openai", 3)
    assert line["cost_micros"] == round(usage["cost"] * 1e6) and line["stream"] is False
    assert SECRET_PROMPT not in _all_log_text(caplog)

    caplog.clear()
    loud = gateway(log_requests=True, log_content=True)
    client = make_openai_client(loud)
    plain = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": SECRET_PROMPT}], max_tokens=3)
    completion = json.loads(plain.http_response.text)["choices"][0]["message"]["content"]
    streamed = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": SECRET_PROMPT + " again"}], max_tokens=4, stream=True)
    streamed_text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
    lines = {ln["request_id"]: ln for ln in _request_lines(caplog)}
    assert lines[plain.headers["x-request-id"]]["prompt"] == SECRET_PROMPT
    assert lines[plain.headers["x-request-id"]]["completion"] == completion
    assert lines[streamed.headers["x-request-id"]]["prompt"] == SECRET_PROMPT + " again"
    assert lines[streamed.headers["x-request-id"]]["completion"] == streamed_text != ""

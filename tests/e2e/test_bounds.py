"""What hostile or unlucky traffic leaves behind in a long-running gateway (session 16's bounds
audit): every per-process structure it can grow stays bounded. Real gateway, real sockets; only the
upstream is scripted."""
from __future__ import annotations

import orjson
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from raw_upstream import RawUpstream, gateway_over
from money_procs import SMALL

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

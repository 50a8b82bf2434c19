"""Routing end to end: fallbacks on retryable errors, none on a 400, cooldown and recovery, stream
failover before the first token, `models: [...]` order, capability filtering, routing headers."""
from __future__ import annotations

import json
import time
import urllib.request

import openai
import pytest

from routerone.testing import fake_openai
from routerone.testing.harness import Gateway
from routerone.testing.threaded import ThreadedServer

CATALOG = """
replace_shipped_models = true

[[model]]
id = "m-primary"
provider = "openai"
upstream = "up-primary"
context_window = 1000
max_output = 100
quality = 0.9
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"

[[model]]
id = "m-backup"
provider = "together"
upstream = "up-backup"
context_window = 100000
max_output = 100
quality = 0.65
vision = true
input_usd_per_mtok = "0.5"
output_usd_per_mtok = "1"

[[deployment]]
model = "m-primary"
provider = "together"
upstream = "up-primary-2"
"""


def _faults(server: ThreadedServer, faults: list[dict]) -> None:
    req = urllib.request.Request(server.url + "/_control/faults", data=json.dumps({"faults": faults}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=5).read()


@pytest.fixture
def env(tmp_path):
    """Two fake upstreams: A = provider openai (m-primary), B = provider together (m-backup and a
    second m-primary deployment with weight 1)."""
    (tmp_path / "catalog.toml").write_text(CATALOG)
    with ThreadedServer(fake_openai.make_app) as a, ThreadedServer(fake_openai.make_app) as b:
        gw = Gateway.for_upstreams(str(tmp_path / "r.db"),
                                   {"openai": (a.url + "/v1", "sk-a"), "together": (b.url + "/v1", "sk-b")},
                                   catalog_path=str(tmp_path / "catalog.toml"), max_retries=0,
                                   cooldown_failures=2, cooldown_s=0.5, stream_hold_ms=2000)
        with gw:
            key, _ = gw.new_key()
            client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
            yield a, b, gw, client


def _models_seen(server: ThreadedServer) -> list[str]:
    return [r["model"] for r in server.app["fake"].requests]


@pytest.mark.parametrize("fault", [{"status": 429, "retry_after": 1}, {"status": 500}, {"status": 503}, {"status": 401},
                                   {"status": 402}, {"status": 404}, {"status": 529}, {"cut": 0}])
def test_models_list_falls_back_on_retryable_error(env, fault):
    a, b, gw, client = env
    _faults(a, [fault] * 3)
    raw = client.chat.completions.with_raw_response.create(
        model="openai/m-primary", messages=[{"role": "user", "content": "hi"}],
        extra_body={"models": ["m-backup"]})
    resp = raw.parse()
    assert resp.model == "m-backup"
    assert raw.headers["x-routerone-model"] == "m-backup"
    assert raw.headers["x-routerone-provider"] == "together"
    assert "openai/up-primary" in raw.headers["x-routerone-fallbacks"]
    assert _models_seen(b) == ["up-backup"]


@pytest.mark.parametrize("status", [400, 422])
def test_no_fallback_on_400(env, status):
    a, b, gw, client = env
    _faults(a, [{"status": status}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="openai/m-primary", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"models": ["m-backup"]})
    assert _models_seen(b) == []


def test_an_upstream_that_does_not_know_the_model_is_the_operators_502_not_the_callers_400(env):
    """An upstream 404 means the deployment's upstream name or base_url is wrong (Router One's catalog
    says the model is served): not the caller's request. Another deployment is tried (above); when
    none is left the caller gets a 502 naming the provider, and SDKs are told not to retry."""
    a, b, gw, client = env
    _faults(a, [{"status": 404}] * 3)
    with pytest.raises(openai.InternalServerError) as exc:
        client.with_options(max_retries=0).chat.completions.create(
            model="openai/m-primary", messages=[{"role": "user", "content": "hi"}])
    err = exc.value.body
    assert exc.value.status_code == 502 and err["code"] == "upstream_model_not_found", err
    assert "'openai'" in err["message"] and "sk-a" not in err["message"]
    assert exc.value.response.headers["x-should-retry"] == "false"
    assert len(a.app["fake"].requests) == 1          # not asked again in this request


def test_models_order_is_respected(env):
    a, b, gw, client = env
    resp = client.chat.completions.create(model="m-backup", messages=[{"role": "user", "content": "hi"}],
                                          extra_body={"models": ["m-primary"]})
    assert resp.model == "m-backup"
    assert _models_seen(a) == []


def test_a_callers_bad_requests_do_not_cool_a_deployment_down_for_everyone(env):
    """Upstream 400s are about the request, not the deployment: before, `cooldown_failures` of
    them in a row (any one key could send them) put the deployment in cooldown for every caller."""
    a, b, gw, client = env
    client.chat.completions.create(model="openai/m-primary", messages=[{"role": "user", "content": "hi"}])
    _faults(a, [{"status": 400}] * 3)
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="openai/m-primary", messages=[{"role": "user", "content": "hi"}])
    health = gw.admin("GET", "/admin/health")["data"]["openai/up-primary"]
    assert health["cooling_down"] is False and health["errors"] == 0, health


def test_cooldown_and_recovery(env):
    a, b, gw, client = env
    _faults(a, [{"status": 500}, {"status": 500}])
    for _ in range(2):   # two failures on A's deployment put it in cooldown (cooldown_failures=2)
        client.chat.completions.create(model="openai/m-primary", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"models": ["m-backup"]})
    health = gw.admin("GET", "/admin/health")["data"]
    assert health["openai/up-primary"]["cooling_down"] is True
    # while cooling down, m-primary's healthy deployment on B is tried first
    n_a = len(a.app["fake"].requests)
    for _ in range(3):
        r = client.chat.completions.create(model="m-primary", messages=[{"role": "user", "content": "hi"}])
        assert r.model == "m-primary"
    assert len(a.app["fake"].requests) == n_a
    time.sleep(0.6)      # cooldown over: A is tried again and recovers
    seen_a = 0
    for _ in range(12):
        client.chat.completions.create(model="openai/m-primary", messages=[{"role": "user", "content": "hi"}])
        seen_a += 1
    assert len(a.app["fake"].requests) == n_a + seen_a
    assert gw.admin("GET", "/admin/health")["data"]["openai/up-primary"]["cooling_down"] is False


def test_stream_fails_over_invisibly_before_first_token(env):
    a, b, gw, client = env
    _faults(a, [{"cut": 0}])    # A drops the connection before any content
    chunks = list(client.chat.completions.create(
        model="openai/m-primary", messages=[{"role": "user", "content": "hi"}], stream=True,
        extra_body={"models": ["m-backup"]}))
    assert {c.model for c in chunks} == {"m-backup"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_error_after_first_token_ends_with_error_event(env):
    a, b, gw, client = env
    _faults(a, [{"cut": 3}])
    body = {"model": "openai/m-primary", "stream": True, "models": ["m-backup"],
            "messages": [{"role": "user", "content": "hi"}]}
    req = urllib.request.Request(gw.base_url + "/chat/completions", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {client.api_key}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        events = [line[6:].strip().decode() for line in r if line.startswith(b"data: ")]
    assert "[DONE]" not in events
    last_chunk, error = json.loads(events[-2]), json.loads(events[-1])
    assert last_chunk["choices"][0]["finish_reason"] == "error"
    assert error["error"]["type"] and error["error"]["message"]
    assert _models_seen(b) == []           # after the first token there is no failover


def test_capability_filtering_rejects_before_upstream(env):
    a, b, gw, client = env
    image = {"role": "user", "content": [{"type": "text", "text": "what is this"},
                                         {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]}
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="m-primary", messages=[image])
    assert "image" in exc.value.body["message"]
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="m-primary", messages=[{"role": "user", "content": "word " * 2000}])
    assert exc.value.body["code"] == "context_length_exceeded"
    assert _models_seen(a) == [] and _models_seen(b) == []
    # auto picks the model that can serve it
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[image])
    assert raw.parse().model == "m-backup"
    assert raw.headers["x-routerone-strategy"] == "balanced"
    assert raw.headers["x-routerone-reason"]


@pytest.mark.parametrize("strategy,expected", [("quality", "m-primary"), ("cost", "m-backup")])
def test_strategy_per_request_header_and_body(env, strategy, expected):
    a, b, gw, client = env
    by_header = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-routerone-strategy": strategy})
    assert by_header.parse().model == expected
    assert by_header.headers["x-routerone-strategy"] == strategy
    by_body = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}],
                                             extra_body={"route": strategy})
    assert by_body.model == expected


def test_unknown_strategy_is_a_400(env):
    a, b, gw, client = env
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"route": "fastest-please"})
    assert exc.value.body["param"] == "route"


CAPPED = """
replace_shipped_models = true

[[model]]
id = "capped"
provider = "openai"
context_window = 1000
max_output = 100
rpm = 2
input_usd_per_mtok = "1"
output_usd_per_mtok = "1"

[[model]]
id = "spare"
provider = "together"
context_window = 1000
max_output = 100
input_usd_per_mtok = "1"
output_usd_per_mtok = "1"

[fallbacks]
capped = ["spare"]
"""


def test_deployment_at_its_rate_cap_is_skipped_not_hammered(tmp_path):
    (tmp_path / "catalog.toml").write_text(CAPPED)
    with ThreadedServer(fake_openai.make_app) as a, ThreadedServer(fake_openai.make_app) as b:
        gw = Gateway.for_upstreams(str(tmp_path / "r.db"),
                                   {"openai": (a.url + "/v1", "sk-a"), "together": (b.url + "/v1", "sk-b")},
                                   catalog_path=str(tmp_path / "catalog.toml"), max_retries=0)
        with gw:
            key, _ = gw.new_key()
            client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
            served = []
            for _ in range(5):
                raw = client.chat.completions.with_raw_response.create(
                    model="capped", messages=[{"role": "user", "content": "hi"}])
                served.append(raw.parse().model)
            assert served == ["capped", "capped", "spare", "spare", "spare"]
            assert "rate cap" in raw.headers["x-routerone-fallbacks"]
            assert len(a.app["fake"].requests) == 2


def test_a_catalog_fallback_that_is_not_served_does_not_take_the_model_down(tmp_path):
    """[fallbacks] naming a model this gateway does not serve (a typo, or a discovered model its
    provider no longer lists) made every request for the primary model a 404 about that other model;
    it is skipped, the primary still answers and the next fallback stays."""
    (tmp_path / "catalog.toml").write_text(CATALOG + '\n[fallbacks]\nm-primary = ["no-such-model", "m-backup"]\n')
    with ThreadedServer(fake_openai.make_app) as a, ThreadedServer(fake_openai.make_app) as b:
        gw = Gateway.for_upstreams(str(tmp_path / "r.db"),
                                   {"openai": (a.url + "/v1", "sk-a"), "together": (b.url + "/v1", "sk-b")},
                                   catalog_path=str(tmp_path / "catalog.toml"), max_retries=0)
        with gw:
            key, _ = gw.new_key()
            client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
            raw = client.chat.completions.with_raw_response.create(
                model="m-primary", messages=[{"role": "user", "content": "hi"}])
            assert raw.parse().model == "m-primary"
            assert "m-backup" in raw.headers["x-routerone-reason"]
            # a client's own `models` list naming an unknown model is still the client's 404
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(model="m-primary", messages=[{"role": "user", "content": "hi"}],
                                               extra_body={"models": ["no-such-model"]})


REFUSING = """
replace_shipped_models = true

[[model]]
id = "m"
provider = "openai"
context_window = 1000
max_output = 100
input_usd_per_mtok = "1"
output_usd_per_mtok = "1"

[[model]]
id = "g"
provider = "groq"
context_window = 1000
max_output = 100
rpm = 1
input_usd_per_mtok = "1"
output_usd_per_mtok = "1"

[[model]]
id = "spare"
provider = "together"
context_window = 1000
max_output = 100
input_usd_per_mtok = "1"
output_usd_per_mtok = "1"

[fallbacks]
m = ["g", "spare"]
g = ["spare"]
"""


def _retries_total(gw: Gateway) -> float:
    with urllib.request.urlopen(gw.base_url.rsplit("/v1", 1)[0] + "/metrics", timeout=5) as r:
        lines = r.read().decode().splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith("routerone_retries_total"))


@pytest.fixture
def refusing(tmp_path):
    """m (openai, A) -> g (groq, B: refuses logprobs; rpm 1) -> spare (together, C)."""
    (tmp_path / "catalog.toml").write_text(REFUSING)
    with ThreadedServer(fake_openai.make_app) as a, ThreadedServer(fake_openai.make_app) as b, \
            ThreadedServer(fake_openai.make_app) as c:
        gw = Gateway.for_upstreams(str(tmp_path / "r.db"), {"openai": (a.url + "/v1", "sk-a"),
                                                            "groq": (b.url + "/v1", "sk-b"),
                                                            "together": (c.url + "/v1", "sk-c")},
                                   catalog_path=str(tmp_path / "catalog.toml"), max_retries=0)
        with gw:
            key, _ = gw.new_key()
            yield a, b, c, gw, openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def test_a_deployment_that_refuses_a_param_does_not_spend_its_rate_cap(refusing):
    """Groq refuses logprobs before any call, so g's one request a minute is not used by the two
    requests that asked for them (spare answered those); the next plain request is g's. It used to
    find g "at its rate cap" and go to spare."""
    a, b, c, gw, client = refusing
    hi = [{"role": "user", "content": "hi"}]
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="g", messages=hi, logprobs=True)
        assert raw.parse().model == "spare" and "unsupported logprobs" in raw.headers["x-routerone-fallbacks"]
    raw = client.chat.completions.with_raw_response.create(model="g", messages=hi)
    assert raw.parse().model == "g", raw.headers.get("x-routerone-fallbacks")
    assert len(b.app["fake"].requests) == 1 and len(c.app["fake"].requests) == 2


def test_a_refused_deployment_is_not_counted_as_a_retry(refusing):
    """m fails (sent), g refuses logprobs (nothing sent), spare answers: one retry was sent, not two."""
    a, b, c, gw, client = refusing
    _faults(a, [{"status": 500}])
    before = _retries_total(gw)
    raw = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                           logprobs=True)
    assert raw.parse().model == "spare"
    assert _retries_total(gw) - before == 1, raw.headers["x-routerone-fallbacks"]
    assert len(b.app["fake"].requests) == 0

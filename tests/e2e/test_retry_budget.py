"""Retry amplification end to end: a provider that fails every call (a brown-out) must not get
several upstream calls per client request (the gateway's retries would multiply its load exactly
when it struggles). Per deployment, a gRPC-style retry budget throttles retries (not first attempts,
not failover to another deployment); a single transient error on a healthy deployment is still
retried, and retries come back once the deployment answers again.

Fake upstreams: A = provider "openai" (m-a), B = provider "together" (m-b). Gateway defaults
(max_retries 2, the circuit breaker's cooldown_failures 3 / cooldown_s 30) unless a test says so.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import openai
import pytest

from routerone.store.base import UsageQuery
from routerone.testing import fake_openai
from routerone.testing.threaded import ThreadedServer

CATALOG = """
replace_shipped_models = true

[[model]]
id = "m-a"
provider = "openai"
upstream = "up-a"
context_window = 1000
max_output = 100
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"

[[model]]
id = "m-b"
provider = "together"
upstream = "up-b"
context_window = 1000
max_output = 100
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
"""

N_CONCURRENT = 200
FAILING = [{"role": "user", "content": "hi [[error:503]]"}]     # every call to any upstream: 503
HI = [{"role": "user", "content": "hi"}]


def _faults(server: ThreadedServer, faults: list[dict]) -> None:
    req = urllib.request.Request(server.url + "/_control/faults", data=json.dumps({"faults": faults}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=5).read()


def _calls(server: ThreadedServer) -> int:
    return len(server.app["fake"].requests)


def _usage_statuses(gw, account_id: int, expected: int) -> list[int]:
    """The statuses of the account's usage rows, once `expected` are written (or 10 s have passed)."""
    store = gw.runtime.chat.d.billing.store
    deadline = time.monotonic() + 10
    while True:
        rows = gw.call(store.query_usage(UsageQuery(account_id=account_id, limit=expected + 10))).records
        if len(rows) >= expected or time.monotonic() > deadline:
            return [r.status for r in rows]
        time.sleep(0.05)


def _metric(gw, name: str) -> float:
    with urllib.request.urlopen(gw.url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


@pytest.fixture
def env(tmp_path, gateway):
    (tmp_path / "catalog.toml").write_text(CATALOG)
    with ThreadedServer(fake_openai.make_app) as a, ThreadedServer(fake_openai.make_app) as b:
        def make(**overrides):
            return gateway({"openai": (a.url + "/v1", "sk-a"), "together": (b.url + "/v1", "sk-b")},
                           catalog_path=str(tmp_path / "catalog.toml"), **overrides)
        yield a, b, make


async def test_steady_failure_costs_the_provider_about_one_call_per_request(env, make_async_openai_client):
    """200 concurrent requests to a model whose only deployment answers 503 to everything: the
    provider sees about one call per request (before the budget: 3, the first try and max_retries
    2), every client gets the documented 503, and every request has its usage row."""
    a, b, make = env
    gw = make()
    key, account_id = gw.new_key()
    client = make_async_openai_client(gw, key)

    async def one() -> openai.APIStatusError:
        with pytest.raises(openai.APIStatusError) as exc:
            await client.chat.completions.create(model="m-a", messages=FAILING)
        return exc.value

    t0 = time.perf_counter()
    errors = await asyncio.gather(*(one() for _ in range(N_CONCURRENT)))
    elapsed_s = time.perf_counter() - t0
    ratio = _calls(a) / N_CONCURRENT
    print(f"\nsteady 503, {N_CONCURRENT} concurrent requests: {_calls(a)} upstream calls, "
          f"ratio {ratio:.3f}, {elapsed_s:.2f} s")
    assert {(e.status_code, e.code) for e in errors} == {(503, "upstream_unavailable")}
    assert ratio <= 1.05
    assert await asyncio.to_thread(_usage_statuses, gw, account_id, N_CONCURRENT) == [503] * N_CONCURRENT
    assert gw.account(account_id)["reserved_micros"] == 0
    assert _metric(gw, "routerone_retries_throttled_total") >= 1


@pytest.mark.parametrize("stream", [False, True])
def test_sequential_failures_are_not_amplified_either(env, make_openai_client, stream):
    """One request at a time (no concurrency for an in-flight budget to see): after the budget's
    first few retries, each failing request costs the provider one call and fails at once."""
    a, b, make = env
    gw = make()
    client = make_openai_client(gw)
    n = 30
    for _ in range(n):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m-a", messages=FAILING, stream=stream)
    print(f"\nsteady 503, {n} sequential requests (stream={stream}): {_calls(a)} upstream calls")
    assert _calls(a) <= n + 5           # the bucket's first half: 10 tokens, retries while more than 5


def test_failover_to_another_deployment_is_not_throttled(env, make_openai_client):
    """A's budget spent: a request for m-a with fallback m-b still fails over to B (one call on A),
    and a single transient error on healthy B is still retried there."""
    a, b, make = env
    gw = make()
    client = make_openai_client(gw)
    for _ in range(10):                  # A fails steadily: its retries are throttled from here on
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m-a", messages=FAILING)
    _faults(a, [{"status": 503}] * 5)
    for _ in range(5):
        n_a, n_b = _calls(a), _calls(b)
        raw = client.chat.completions.with_raw_response.create(model="m-a", messages=HI,
                                                               extra_body={"models": ["m-b"]})
        assert raw.parse().model == "m-b"
        assert "openai/up-a" in raw.headers["x-routerone-fallbacks"]
        assert (_calls(a) - n_a, _calls(b) - n_b) == (1, 1)
    _faults(b, [{"status": 503}])        # one transient error on B: retried on B, the client never sees it
    n_b = _calls(b)
    assert client.chat.completions.create(model="m-b", messages=HI).model == "m-b"
    assert _calls(b) - n_b == 2


def test_both_deployments_failing_cost_each_one_call(env, make_openai_client):
    """Plan [A, B], both failing: before the budget each got two calls per request (A, B, A, B)."""
    a, b, make = env
    gw = make()
    client = make_openai_client(gw)
    n = 20
    for _ in range(n):
        with pytest.raises(openai.InternalServerError) as exc:
            client.chat.completions.create(model="m-a", messages=FAILING, extra_body={"models": ["m-b"]})
        assert exc.value.status_code == 503
    print(f"\nboth failing, {n} sequential requests: A {_calls(a)} calls, B {_calls(b)} calls")
    assert _calls(a) <= n + 5 and _calls(b) <= n + 5


def test_retries_come_back_when_the_provider_recovers(env, make_openai_client):
    """Throttled after a brown-out (a transient error is not retried: the client gets the 503), then
    successes refill the bucket (0.1 token each, by default) and a transient error is retried again."""
    a, b, make = env
    gw = make(cooldown_failures=1000)    # the budget alone: no cooldown reorders or skips anything
    client = make_openai_client(gw)
    for _ in range(10):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m-a", messages=FAILING)
    throttled = _metric(gw, "routerone_retries_throttled_total")
    _faults(a, [{"status": 503}])
    n_a = _calls(a)
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="m-a", messages=HI)
    assert exc.value.status_code == 503 and exc.value.code == "upstream_unavailable"
    assert _calls(a) - n_a == 1
    assert _metric(gw, "routerone_retries_throttled_total") == throttled + 1
    for _ in range(70):   # the provider is back: 0 + 70 x 0.1 = 7 tokens; the transient error takes 1: 6 > 10 / 2
        client.chat.completions.create(model="m-a", messages=HI)
    _faults(a, [{"status": 503}])
    n_a = _calls(a)
    assert client.chat.completions.create(model="m-a", messages=HI).model == "m-a"
    assert _calls(a) - n_a == 2


def test_retry_budget_off_retries_as_before(env, make_openai_client):
    """retry_budget_tokens = 0 turns throttling off: every request gets 1 + max_retries tries."""
    a, b, make = env
    gw = make(retry_budget_tokens=0, max_retries=1)
    client = make_openai_client(gw)
    for _ in range(8):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m-a", messages=FAILING)
    assert _calls(a) == 16


def test_retry_after_is_honoured_as_before(env, make_openai_client):
    """A healthy deployment's one 429 with Retry-After: 1 is retried there after that wait; once the
    deployment's budget is spent, the same 429 reaches the client at once, its Retry-After kept."""
    a, b, make = env
    gw = make()
    client = make_openai_client(gw)
    _faults(a, [{"status": 429, "retry_after": 1}])
    started = time.monotonic()
    assert client.chat.completions.create(model="m-a", messages=HI).model == "m-a"
    assert _calls(a) == 2 and time.monotonic() - started >= 1.0
    for _ in range(10):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m-a", messages=FAILING)
    _faults(a, [{"status": 429, "retry_after": 1}])
    n_a, started = _calls(a), time.monotonic()
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="m-a", messages=HI)
    assert exc.value.response.headers["retry-after"] == "1"
    assert _calls(a) - n_a == 1 and time.monotonic() - started < 1.0

"""Upstream failures as the OpenAI SDK sees them (router and SDK retries off): 429 -> RateLimitError
with Retry-After passed on, 5xx -> 502/503 InternalServerError, no first byte in time -> 504, and a
stream that breaks after content has been sent ends with an error-finish chunk and an error event,
never a silent clean end and never `[DONE]`. Failed requests are not charged."""
from __future__ import annotations

import json
import logging
import socket
import time

import httpx2
import openai
import pytest

from openai_schema import sse_payloads, validate_chunk, validate_error
from routerone.testing import fake_openai
from routerone.testing.threaded import ThreadedServer

HI = [{"role": "user", "content": "hi"}]


def say(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(params=[True, False], ids=["http1", "aiohttp"])
def upstream_http1(request) -> bool:
    """Each test against both upstream clients: the lean HTTP/1.1 one (plain-http upstreams) and
    aiohttp's (https upstreams; `upstream_http1 = false`)."""
    return request.param


@pytest.fixture
def egw(gateway, upstream_http1):
    """A gateway that does not retry, so each upstream failure reaches the client as it is."""
    return gateway(max_retries=0, upstream_http1=upstream_http1)


@pytest.fixture
def client(egw, make_openai_client):
    return make_openai_client(egw)


@pytest.fixture
def aclient(egw, make_async_openai_client):
    return make_async_openai_client(egw)


def assert_not_charged(gw, account_id: int) -> None:
    acc = gw.account(account_id)
    assert (acc["balance_micros"], acc["reserved_micros"]) == (10_000_000, 0)


def error_of(exc: openai.APIStatusError) -> dict:
    body = exc.response.json()
    validate_error(body)
    assert exc.body == body["error"]
    return body["error"]


# -- 429 ---------------------------------------------------------------------------------------

def test_upstream_429_is_a_rate_limit_error_with_retry_after(egw, make_openai_client, fake_requests):
    key, account_id = egw.new_key()
    client = make_openai_client(egw, key)
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=say("hi [[error:429]] [[retry_after:7]]"),
                                       extra_headers={"x-request-id": "rl-1"})
    assert exc.value.status_code == 429
    assert exc.value.response.headers["retry-after"] == "7"
    assert exc.value.response.headers["x-request-id"] == "rl-1"
    err = error_of(exc.value)
    assert err["type"] == "rate_limit_error"
    assert err["code"] == "upstream_rate_limited"
    assert len(fake_requests) == 1            # max_retries=0: the router did not retry
    assert_not_charged(egw, account_id)


async def test_upstream_429_async_stream(aclient, fake_requests):
    with pytest.raises(openai.RateLimitError) as exc:
        await aclient.chat.completions.create(model="gpt-4o", messages=say("[[error:429]] [[retry_after:2]]"),
                                              stream=True)
    assert exc.value.response.headers["retry-after"] == "2"
    assert error_of(exc.value)["type"] == "rate_limit_error"
    assert len(fake_requests) == 1


def test_upstream_429_from_the_fault_queue(fake_upstream, client, fake_requests):
    faults = fake_upstream.app["fake"].faults
    httpx2.post(fake_upstream.url + "/_control/faults", json={"faults": [{"status": 429, "retry_after": 3}]})
    try:
        with pytest.raises(openai.RateLimitError) as exc:
            client.chat.completions.create(model="gpt-4o", messages=HI)
        assert exc.value.response.headers["retry-after"] == "3"
        assert faults == []
    finally:
        faults.clear()
    assert client.chat.completions.create(model="gpt-4o", messages=HI).choices   # back to normal


def test_upstream_429_without_retry_after_has_none(client):
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=say("[[error:429]]"))
    assert "retry-after" not in exc.value.response.headers


# -- 5xx ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("upstream, expected", [(500, 502), (502, 502), (503, 503)])
def test_upstream_5xx_is_an_internal_server_error(egw, make_openai_client, fake_requests, upstream, expected):
    key, account_id = egw.new_key()
    with pytest.raises(openai.InternalServerError) as exc:
        make_openai_client(egw, key).chat.completions.create(model="gpt-4o", messages=say(f"[[error:{upstream}]]"))
    assert exc.value.status_code == expected
    err = error_of(exc.value)
    assert err["type"] == "upstream_error"
    assert err["code"] == "upstream_unavailable"
    assert len(fake_requests) == 1
    assert_not_charged(egw, account_id)


async def test_upstream_500_async_stream(aclient):
    with pytest.raises(openai.InternalServerError) as exc:
        await aclient.chat.completions.create(model="gpt-4o", messages=say("[[error:500]]"), stream=True)
    assert exc.value.status_code in (502, 503)
    assert error_of(exc.value)["type"] == "upstream_error"


def test_upstream_400_is_passed_on_and_not_retried(gateway, make_openai_client, fake_requests):
    gw = gateway(max_retries=2)
    with pytest.raises(openai.BadRequestError) as exc:
        make_openai_client(gw).chat.completions.create(model="gpt-4o", messages=say("[[error:400]]"))
    assert error_of(exc.value)["type"] == "invalid_request_error"
    assert len(fake_requests) == 1


AUTH_FAILED_MESSAGE = "The upstream provider rejected Router One's credentials for this request"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_rejecting_routerones_key_is_a_502_not_a_401(gateway, make_openai_client, fake_upstream, caplog,
                                                              stream):
    """Which provider's key to fix, and where it is configured, is the operator's business: the
    client was told "(check providers.openai.api_key)". The client is told its request met
    rejected credentials (no provider, no config field); the operator's log line names both."""
    caplog.set_level(logging.WARNING, logger="routerone")
    gw = gateway(providers={"openai": (fake_upstream.base_url, "sk-wrong-upstream-key-000")}, max_retries=0)
    with pytest.raises(openai.InternalServerError) as exc:
        create = make_openai_client(gw).chat.completions.create
        list(create(model="gpt-4o", messages=HI, stream=True)) if stream else create(model="gpt-4o", messages=HI)
    assert exc.value.status_code == 502 and exc.value.response.headers["x-should-retry"] == "false"
    error = error_of(exc.value)
    assert (error["type"], error["code"], error["message"]) == ("upstream_error", "upstream_auth_failed",
                                                                AUTH_FAILED_MESSAGE)
    body = exc.value.response.text
    assert "providers." not in body and "openai" not in body            # neither the provider nor its config
    assert "sk-wrong-upstream-key" not in body                          # never the key itself
    said = [r.getMessage() for r in caplog.records if "credentials" in r.getMessage()]
    assert said and all("openai" in m and "providers.openai.api_key" in m for m in said), said
    assert not any("sk-wrong-upstream-key" in r.getMessage() for r in caplog.records)


def test_unreachable_upstream_is_a_502(gateway, make_openai_client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = gateway(providers={"openai": (f"http://127.0.0.1:{port}/v1", "sk-x")}, max_retries=0)
    with pytest.raises(openai.InternalServerError) as exc:
        make_openai_client(gw).chat.completions.create(model="gpt-4o", messages=HI)
    assert exc.value.status_code == 502
    assert error_of(exc.value)["code"] == "upstream_unavailable"


# -- timeouts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_no_first_byte_in_time_is_a_504(gateway, make_openai_client, stream):
    gw = gateway(max_retries=0, first_byte_timeout_s=0.3, connect_timeout_s=0.2)
    key, account_id = gw.new_key()
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as exc:
        result = make_openai_client(gw, key).chat.completions.create(
            model="gpt-4o", messages=say("[[sleep:3000]]"), stream=stream)
        list(result) if stream else None
    assert time.monotonic() - started < 2.5
    assert exc.value.status_code == 504
    err = error_of(exc.value)
    assert (err["type"], err["code"]) == ("timeout_error", "upstream_timeout")
    assert_not_charged(gw, account_id)


def test_first_byte_timeout_alone_bounds_the_wait(gateway, make_openai_client):
    gw = gateway(max_retries=0, first_byte_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as exc:
        make_openai_client(gw).chat.completions.create(model="gpt-4o", messages=say("[[sleep:1500]]"))
    assert exc.value.status_code == 504
    assert time.monotonic() - started < 1.3


# -- failures after the stream has started ------------------------------------------------------

@pytest.fixture(scope="module")
def paced_upstream():
    """A fake whose chunks are 15 ms apart, so a cut lands after content has been relayed."""
    with ThreadedServer(lambda: fake_openai.make_app(api_key="sk-paced-upstream-key", chunk_interval_ms=15)) as srv:
        yield srv


@pytest.fixture
def paced_gw(gateway, paced_upstream, upstream_http1):
    return gateway(providers={"openai": (paced_upstream.url + "/v1", "sk-paced-upstream-key")}, max_retries=0,
                   upstream_http1=upstream_http1)


BREAKS = {"cut": "Tell me a story [[cut:3]]", "stream_error": "Tell me a story [[stream_error:2]]"}


@pytest.mark.parametrize("text", BREAKS.values(), ids=BREAKS)
def test_broken_stream_raises_while_iterating_sync(paced_gw, make_openai_client, text):
    stream = make_openai_client(paced_gw).chat.completions.create(
        model="gpt-4o", messages=say(text), stream=True, stream_options={"include_usage": True})
    received = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(exc.value, openai.APIStatusError)    # raised mid-stream, after a 200
    assert exc.value.body["type"] == "upstream_error"
    assert any(c.choices and c.choices[0].delta.content for c in received)
    assert all(c.choices[0].finish_reason in (None, "error") for c in received if c.choices)


@pytest.mark.parametrize("text", BREAKS.values(), ids=BREAKS)
async def test_broken_stream_raises_while_iterating_async(paced_gw, make_async_openai_client, text):
    stream = await make_async_openai_client(paced_gw).chat.completions.create(
        model="gpt-4o", messages=say(text), stream=True)
    contents = []
    with pytest.raises(openai.APIError) as exc:
        async for chunk in stream:
            contents.append(chunk.choices[0].delta.content or "")
    assert "Hello" in "".join(contents)
    assert exc.value.body["code"] == "upstream_unavailable"


@pytest.mark.parametrize("text", BREAKS.values(), ids=BREAKS)
def test_broken_stream_raw_sse(paced_gw, openai_wire, text):
    key, account_id = paced_gw.new_key()
    with httpx2.Client(transport=openai_wire.transport(), timeout=30) as http:
        resp = http.post(paced_gw.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": "gpt-4o", "messages": say(text), "stream": True,
                               "stream_options": {"include_usage": True}})
    assert resp.status_code == 200
    payloads = sse_payloads(resp.content)
    assert "[DONE]" not in payloads and "[DONE]" not in resp.text
    *content, finish, error = [json.loads(p) for p in payloads]
    for c in content:
        validate_chunk(c)
        assert c["choices"] and c["choices"][0]["finish_reason"] is None
    assert any(c["choices"][0]["delta"].get("content") for c in content)
    # the error-finish chunk: an ordinary chunk of the same stream whose finish_reason is "error"
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "error", "logprobs": None}]
    assert {k: finish[k] for k in ("id", "object", "created", "model")} == \
        {k: content[0][k] for k in ("id", "object", "created", "model")}
    validate_chunk({**finish, "choices": [{**finish["choices"][0], "finish_reason": "stop"}]})
    # then the error event, in OpenAI's ErrorResponse shape, and nothing after it
    validate_error(error)
    assert error["error"]["type"] == "upstream_error" and error["error"]["code"] == "upstream_unavailable"
    assert resp.text.endswith("\n\n")
    # the hold is settled: the tokens already relayed are charged, nothing stays reserved
    acc = paced_gw.account(account_id)
    ledger = paced_gw.admin("GET", f"/admin/accounts/{account_id}/ledger")["data"]
    [charge] = [e for e in ledger if e["kind"] == "charge"]
    assert charge["amount_micros"] < 0
    assert acc["reserved_micros"] == 0
    assert acc["balance_micros"] == sum(e["amount_micros"] for e in ledger)


@pytest.mark.parametrize("text", BREAKS.values(), ids=BREAKS)
def test_a_fast_broken_stream_is_never_a_clean_end(client, text):
    """Unpaced, the break may land before the gateway has relayed any content (it then fails the
    request with a 5xx before the 200) or after; either way the SDK raises, it never ends cleanly."""
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model="gpt-4o", messages=say(text), stream=True):
            pass

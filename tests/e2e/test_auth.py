"""401 for a missing, malformed, unknown, expired or revoked key, with exactly the seed's body plus
`param: null`; the SDK raises `AuthenticationError`. Revocation through the admin API takes effect
on the very next request, even for a key whose authentication is cached."""
from __future__ import annotations

import time

import httpx2
import openai
import pytest
from openai import OpenAI

HI = [{"role": "user", "content": "hi"}]
INVALID_KEY = {"error": {"message": "Invalid API key", "type": "authentication_error", "param": None,
                         "code": "invalid_api_key"}}
INVALID_KEY_BYTES = (b'{"error":{"message":"Invalid API key","type":"authentication_error",'
                     b'"param":null,"code":"invalid_api_key"}}')
UNKNOWN_KEY = "sk-ro-" + "A" * 43


@pytest.fixture
def http(openai_wire):
    with httpx2.Client(transport=openai_wire.transport(), timeout=30) as client:
        yield client


def key_id(gw, account_id: int) -> int:
    [key] = gw.admin("GET", f"/admin/keys?account_id={account_id}")["data"]
    return key["id"]


def assert_invalid_key(exc: openai.AuthenticationError) -> None:
    assert exc.status_code == 401
    assert exc.response.json() == INVALID_KEY
    assert exc.body == INVALID_KEY["error"]


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic dXNlcjpwYXNz", "sk-ro-no-scheme-here-1234",
                                           "Bearer short", "Bearer not-a-key-at-all-but-long-enough",
                                           f"Bearer {UNKNOWN_KEY}"],
                         ids=["missing", "empty", "scheme-only", "basic", "no-scheme",
                              "short-token", "not-sk", "unknown"])
def test_bad_authorization_is_a_401_with_the_exact_body(http, gw, fake_requests, authorization):
    headers = {"Content-Type": "application/json", "x-request-id": "auth-trace-1"}
    if authorization is not None:
        headers["Authorization"] = authorization
    resp = http.post(gw.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": HI}, headers=headers)
    assert resp.status_code == 401
    assert resp.content == INVALID_KEY_BYTES
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["x-request-id"] == "auth-trace-1"
    assert fake_requests == []


def test_unknown_key_sdk_sync(gw, make_openai_client):
    client = make_openai_client(gw, UNKNOWN_KEY)
    with pytest.raises(openai.AuthenticationError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert_invalid_key(exc.value)
    with pytest.raises(openai.AuthenticationError) as exc:
        client.models.list()
    assert_invalid_key(exc.value)


async def test_unknown_key_sdk_async_stream(gw, make_async_openai_client):
    client = make_async_openai_client(gw, UNKNOWN_KEY)
    with pytest.raises(openai.AuthenticationError) as exc:
        await client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    assert_invalid_key(exc.value)


def test_a_key_from_another_gateway_is_unknown(gateway, make_openai_client):
    gw_a, gw_b = gateway(), gateway()
    key_a, _ = gw_a.new_key()
    assert make_openai_client(gw_a, key_a).chat.completions.create(model="gpt-4o", messages=HI).choices
    with pytest.raises(openai.AuthenticationError) as exc:
        make_openai_client(gw_b, key_a).chat.completions.create(model="gpt-4o", messages=HI)
    assert_invalid_key(exc.value)


def test_revoked_key_is_rejected_at_once(gw, funded_key, openai_client: OpenAI, fake_requests):
    secret, account_id = funded_key
    assert openai_client.chat.completions.create(model="gpt-4o", messages=HI).choices   # auth now cached
    assert openai_client.models.list().data
    revoked = gw.admin("POST", f"/admin/keys/{key_id(gw, account_id)}/revoke", {})
    assert revoked["data"]["revoked"] is True
    fake_requests.clear()
    for call in (lambda: openai_client.chat.completions.create(model="gpt-4o", messages=HI),
                 lambda: list(openai_client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)),
                 lambda: openai_client.models.list()):
        with pytest.raises(openai.AuthenticationError) as exc:
            call()
        assert_invalid_key(exc.value)
    assert fake_requests == []


async def test_revoked_key_is_rejected_at_once_async(gw, funded_key, async_openai_client):
    assert (await async_openai_client.chat.completions.create(model="gpt-4o", messages=HI)).choices
    gw.admin("POST", f"/admin/keys/{key_id(gw, funded_key[1])}/revoke", {})
    with pytest.raises(openai.AuthenticationError) as exc:
        await async_openai_client.chat.completions.create(model="gpt-4o", messages=HI)
    assert_invalid_key(exc.value)


def test_revoking_one_key_leaves_the_accounts_other_keys_working(gw, funded_key, make_openai_client):
    secret, account_id = funded_key
    other = gw.admin("POST", "/admin/keys", {"account_id": account_id, "name": "second"})["data"]
    first_id = next(k["id"] for k in gw.admin("GET", f"/admin/keys?account_id={account_id}")["data"]
                    if k["id"] != other["id"])
    gw.admin("POST", f"/admin/keys/{first_id}/revoke", {})
    with pytest.raises(openai.AuthenticationError):
        make_openai_client(gw, secret).chat.completions.create(model="gpt-4o", messages=HI)
    assert make_openai_client(gw, other["key"]).chat.completions.create(model="gpt-4o", messages=HI).choices


def test_expired_key_is_a_401(gw, make_openai_client):
    acc = gw.admin("POST", "/admin/accounts", {"name": "expiring", "balance_micros": 1_000_000})["data"]
    key = gw.admin("POST", "/admin/keys", {"account_id": acc["id"], "expires_at": time.time() - 1})["data"]["key"]
    with pytest.raises(openai.AuthenticationError) as exc:
        make_openai_client(gw, key).chat.completions.create(model="gpt-4o", messages=HI)
    assert_invalid_key(exc.value)


def test_rejected_keys_are_not_charged(gw, funded_key, openai_client: OpenAI):
    secret, account_id = funded_key
    gw.admin("POST", f"/admin/keys/{key_id(gw, account_id)}/revoke", {})
    with pytest.raises(openai.AuthenticationError):
        openai_client.chat.completions.create(model="gpt-4o", messages=HI)
    acc = gw.account(account_id)
    assert (acc["balance_micros"], acc["reserved_micros"]) == (10_000_000, 0)

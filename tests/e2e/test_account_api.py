"""Accounts and keys end to end: the admin API, `GET /v1/account` for the caller's key, credits and
debits with notes, a key's spend cap, expiry, model allowlist, and an account's markup.

One in-thread gateway on SQLite in front of the fake upstream; clients are the official `openai` SDK
(chat) and a small JSON client (admin API). Prices come from billing_procs' catalog: MODEL costs
10 micro-dollars per output token and nothing for input; PRICED_MODEL also 3 per input token.
"""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import openai
import pytest
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import (MODEL, OUTPUT_MICROS_PER_TOKEN, PRICED_INPUT_MICROS_PER_TOKEN, PRICED_MODEL,  # noqa: E402
                           SEED_402, Admin, FakeUpstream, billing_id, cost_header_micros, fake_prompt_tokens,
                           usage_cost_micros, write_catalog)

from routerone.testing.harness import Gateway  # noqa: E402

MAX_TOKENS = 5
COST = MAX_TOKENS * OUTPUT_MICROS_PER_TOKEN        # MODEL, max_tokens=5: worst case == cost == 50


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as up:
        yield up


def _gateway(upstream: FakeUpstream, d: Path) -> Gateway:
    return Gateway.for_upstreams(str(d / "r1.db"), {"openai": (upstream.base_url, "sk-fake-upstream")},
                                 catalog_path=str(write_catalog(d / "catalog.toml")))


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    with _gateway(upstream, tmp_path_factory.mktemp("accounts")) as gw:
        yield gw


@pytest.fixture
def quiet_gateway(upstream, tmp_path):
    """A gateway of its own: no key or account change (which drops every auth cache entry within
    a second) can land in the middle of a test that depends on what the cache holds."""
    with _gateway(upstream, tmp_path) as gw:
        yield gw


@pytest.fixture
async def admin(gateway: Gateway):
    async with Admin(gateway.url) as a:
        yield a


async def chat(gateway: Gateway, key: str, model: str = MODEL, *, content: str = "hi",
               max_tokens: int | None = MAX_TOKENS) -> tuple[str, int, int, str]:
    """One non-streamed completion: (billing id, usage.cost, x-routerone-cost, routed model), both
    costs in micro-dollars."""
    extra = {"max_tokens": max_tokens} if max_tokens else {}
    async with AsyncOpenAI(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=30) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": content}], **extra)
    comp = raw.parse()
    return (billing_id(raw.headers), usage_cost_micros(comp.usage),
            cost_header_micros(raw.headers["x-routerone-cost"]), raw.headers["x-routerone-model"])


async def chat_error(gateway: Gateway, key: str, model: str = MODEL) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        await chat(gateway, key, model)
    return info.value


async def charge_of(admin: Admin, account_id: int, rid: str) -> int:
    [e] = [e for e in await admin.ledger(account_id) if e["request_id"] == rid]
    assert e["kind"] == "charge"
    return -e["amount_micros"]


# -- admin API --------------------------------------------------------------------------------------
async def test_admin_accounts_credit_debit_with_notes_and_ledger(admin: Admin) -> None:
    acc = await admin.ok("POST", "/admin/accounts", {"name": "acme", "balance_micros": 1_000_000})
    aid = acc["id"]
    assert (acc["name"], acc["balance_micros"], acc["reserved_micros"], acc["available_micros"]) == \
        ("acme", 1_000_000, 0, 1_000_000)

    acc = await admin.ok("POST", f"/admin/accounts/{aid}/credit", {"amount_micros": 250_000, "note": "invoice 42"})
    assert acc["balance_micros"] == 1_250_000
    acc = await admin.ok("POST", f"/admin/accounts/{aid}/debit", {"amount_micros": 50_000, "note": "refund fee"})
    assert acc["balance_micros"] == 1_200_000

    ledger = await admin.ledger(aid)                      # newest first
    assert [(e["kind"], e["amount_micros"], e["note"]) for e in ledger] == [
        ("debit", -50_000, "refund fee"), ("credit", 250_000, "invoice 42"), ("credit", 1_000_000, "initial balance")]
    assert sum(e["amount_micros"] for e in ledger) == (await admin.account(aid))["balance_micros"]
    assert any(a["id"] == aid for a in await admin.ok("GET", "/admin/accounts"))

    # a debit may not take the balance below zero; amounts must be positive integers
    status, body = await admin.call("POST", f"/admin/accounts/{aid}/debit", {"amount_micros": 1_200_001})
    assert status == 400 and body["error"]["param"] == "amount_micros", body
    for bad in (0, -5, "10", 1.5):
        status, body = await admin.call("POST", f"/admin/accounts/{aid}/credit", {"amount_micros": bad})
        assert status == 400 and body["error"]["type"] == "invalid_request_error", (bad, body)
    assert (await admin.account(aid))["balance_micros"] == 1_200_000
    assert len(await admin.ledger(aid)) == 3

    status, body = await admin.call("GET", "/admin/accounts/999999")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_admin_api_needs_an_admin_key(admin: Admin) -> None:
    key, aid, _ = await admin.new_key(1_000)
    status, body = await admin.call("GET", f"/admin/accounts/{aid}", key=key)
    assert status == 403 and body["error"]["type"] == "permission_error", body
    status, body = await admin.call("GET", f"/admin/accounts/{aid}", key="sk-ro-not-a-real-key-000000000000")
    assert status == 401 and body["error"]["code"] == "invalid_api_key", body


async def test_v1_account_reports_the_callers_balance_spend_and_limits(gateway: Gateway, admin: Admin) -> None:
    key, aid, kid = await admin.new_key(10_000, spend_cap_micros=5_000, allowed_models=[MODEL, PRICED_MODEL],
                                        rpm=600, tpm=100_000, concurrency=8, name="ci")
    rid, cost, _, _ = await chat(gateway, key)
    assert cost == COST
    me = await admin.ok("GET", "/v1/account", key=key)
    assert me["account_id"] == aid and me["key_id"] == kid and me["label"] == "ci"
    assert me["balance_micros"] == me["available_micros"] == 10_000 - COST
    assert me["balance"] == pytest.approx((10_000 - COST) / 1e6)
    assert me["spent_micros"] == COST
    assert me["spend_cap_micros"] == 5_000
    assert me["allowed_models"] == [MODEL, PRICED_MODEL]
    assert me["limits"] == {"rpm": 600, "tpm": 100_000, "concurrency": 8}
    assert me["is_admin"] is False and me["expires_at"] is None
    assert me["key_prefix"].startswith("sk-ro-") and key not in str(me)
    status, body = await admin.call("GET", "/v1/account", key="sk-ro-not-a-real-key-000000000000")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


async def test_v1_account_key_spend_is_current(quiet_gateway: Gateway) -> None:
    async with Admin(quiet_gateway.url) as admin:
        key, _, _ = await admin.new_key(10_000)
        assert (await admin.ok("GET", "/v1/account", key=key))["key_spent_micros"] == 0   # caches the key
        await chat(quiet_gateway, key)
        assert (await admin.ok("GET", "/v1/account", key=key))["key_spent_micros"] == COST


async def test_admin_usage_lists_the_accounts_requests(gateway: Gateway, admin: Admin) -> None:
    key, aid, kid = await admin.new_key(10_000)
    rids = [(await chat(gateway, key))[0] for _ in range(3)]
    page = await admin.usage(aid, expect=3)
    assert sorted(r["request_id"] for r in page["data"]) == sorted(rids)
    assert all(r["key_id"] == kid and r["routed_model"] == MODEL and r["cost_micros"] == COST for r in page["data"])
    assert page["totals"]["requests"] == 3 and page["totals"]["cost_micros"] == 3 * COST
    assert page["totals"]["completion_tokens"] == 3 * MAX_TOKENS


# -- key spend cap ------------------------------------------------------------------------------------
async def test_key_spend_cap_stops_the_key_not_the_account(gateway: Gateway, admin: Admin) -> None:
    """Cap 2.4 requests' worth: two fit (each holds its worst case, 50), the third does not
    (100 spent + 50 > 120). Nothing is charged past the cap and the account itself is not stopped.

    What the caller is told depends on the auth cache today: while the cached key still shows the
    old spend, the store's refusal comes back as a 402 with the seed's insufficient_balance body;
    once the key's cache entry is reloaded (any key or account change bumps the auth version),
    Billing's own check answers 403 spend_cap_reached (see test_key_at_its_spend_cap_is_told_so)."""
    key, aid, kid = await admin.new_key(100_000, spend_cap_micros=120)
    for _ in range(2):
        _, cost, _, _ = await chat(gateway, key)
        assert cost == COST
    err = await chat_error(gateway, key)
    body = err.response.json()
    assert (err.status_code, body) == (402, SEED_402) or \
        (err.status_code, body["error"]["code"]) == (403, "spend_cap_reached"), body

    # another key on the same account is not capped: the account still pays for it
    key2 = (await admin.ok("POST", "/admin/keys", {"account_id": aid}))["key"]
    _, cost, _, _ = await chat(gateway, key2)
    assert cost == COST

    k = next(k for k in await admin.ok("GET", f"/admin/keys?account_id={aid}") if k["id"] == kid)
    assert (k["spent_micros"], k["reserved_micros"]) == (2 * COST, 0)
    acc = await admin.account(aid)
    assert acc["balance_micros"] == 100_000 - 3 * COST and acc["reserved_micros"] == 0

    # once a key change has reloaded the cached key, its own spend check answers 403
    await admin.ok("PATCH", f"/admin/keys/{kid}", {"spend_cap_micros": 100})
    err = await chat_error(gateway, key)
    assert isinstance(err, openai.PermissionDeniedError) and err.status_code == 403
    assert err.response.json()["error"] == {"message": "This API key has reached its spend cap",
                                            "type": "permission_error", "param": None,
                                            "code": "spend_cap_reached"}
    # raising the cap lets the key spend again
    await admin.ok("PATCH", f"/admin/keys/{kid}", {"spend_cap_micros": 200})
    _, cost, _, _ = await chat(gateway, key)
    assert cost == COST
    k = next(k for k in await admin.ok("GET", f"/admin/keys?account_id={aid}") if k["id"] == kid)
    assert k["spent_micros"] == 3 * COST <= 200


async def test_key_at_its_spend_cap_is_told_so(quiet_gateway: Gateway) -> None:
    async with Admin(quiet_gateway.url) as admin:
        key, _, _ = await admin.new_key(100_000, spend_cap_micros=2 * COST)
        for _ in range(2):
            await chat(quiet_gateway, key)
        err = await chat_error(quiet_gateway, key)
    assert err.status_code == 403 and err.response.json()["error"]["code"] == "spend_cap_reached", \
        err.response.json()


async def test_a_request_costlier_than_the_cap_leaves_is_told_why(quiet_gateway: Gateway) -> None:
    """A key with nothing spent whose cap is below one request's worst case (max_tokens at the
    model's price) was told it "has reached its spend cap": the message now says what the request
    could cost, what the cap leaves, and what to do."""
    async with Admin(quiet_gateway.url) as admin:
        key, aid, kid = await admin.new_key(100_000, spend_cap_micros=COST - 30)
        err = await chat_error(quiet_gateway, key)
        k = next(k for k in await admin.ok("GET", f"/admin/keys?account_id={aid}") if k["id"] == kid)
    body = err.response.json()["error"]
    assert (err.status_code, body["type"], body["code"]) == (403, "permission_error", "spend_cap_reached"), body
    assert "reached" not in body["message"], body
    assert "$0.000050" in body["message"] and "$0.000020 left" in body["message"], body
    assert "max_tokens" in body["message"] and "spend cap" in body["message"], body
    assert (k["spent_micros"], k["reserved_micros"]) == (0, 0)


async def test_an_account_name_another_account_has_is_a_409(admin: Admin) -> None:
    """Two accounts could share a name (the CLI and console then listed two of them): the second is
    refused, ignoring case and surrounding spaces, in the documented error shape; nothing is made."""
    first = await admin.ok("POST", "/admin/accounts", {"name": "Globex"})
    before = len(await admin.ok("GET", "/admin/accounts"))
    for same in ("Globex", "  GLOBEX "):
        status, body = await admin.call("POST", "/admin/accounts", {"name": same, "balance_micros": 5})
        assert status == 409, body
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == "name"
        assert body["error"]["code"] == "account_name_taken"
        assert f"account {first['id']}" in body["error"]["message"] and "'Globex'" in body["error"]["message"]
    assert len(await admin.ok("GET", "/admin/accounts")) == before


# -- expiry and allowlist -----------------------------------------------------------------------------
async def test_expired_key_gets_401(gateway: Gateway, admin: Admin) -> None:
    acc = await admin.ok("POST", "/admin/accounts", {"name": "exp", "balance_micros": 10_000})
    past = (await admin.ok("POST", "/admin/keys", {"account_id": acc["id"], "expires_at": time.time() - 1}))["key"]
    soon = (await admin.ok("POST", "/admin/keys", {"account_id": acc["id"], "expires_at": time.time() + 1.0}))["key"]

    err = await chat_error(gateway, past)
    assert isinstance(err, openai.AuthenticationError) and err.status_code == 401
    assert err.response.json()["error"]["code"] == "invalid_api_key"

    await chat(gateway, soon)                      # valid now (and now in the auth cache) ...
    await asyncio.sleep(1.1)
    err = await chat_error(gateway, soon)          # ... and refused once it expires, cache or not
    assert err.status_code == 401
    status, _ = await admin.call("GET", "/v1/account", key=soon)
    assert status == 401
    assert (await admin.account(acc["id"]))["balance_micros"] == 10_000 - COST


async def test_model_allowlist(gateway: Gateway, admin: Admin) -> None:
    key, aid, _ = await admin.new_key(10_000, allowed_models=[MODEL])
    err = await chat_error(gateway, key, PRICED_MODEL)
    assert isinstance(err, openai.PermissionDeniedError) and err.status_code == 403
    body = err.response.json()["error"]
    assert (body["code"], body["type"], body["param"]) == ("model_not_allowed", "permission_error", "model")

    _, cost, _, routed = await chat(gateway, key, MODEL)
    assert routed == MODEL and cost == COST
    _, _, _, routed = await chat(gateway, key, "auto")          # auto only picks from the allowlist
    assert routed == MODEL
    assert [e["kind"] for e in await admin.ledger(aid)].count("charge") == 2   # the 403 cost nothing


# -- markup -----------------------------------------------------------------------------------------
async def test_markup_increases_cost_exactly(gateway: Gateway, admin: Admin) -> None:
    """PRICED_MODEL, 7 output tokens: base = prompt * 3 + 70 micro-dollars; a 3.33% markup
    (333 bps) charges ceil(base * 1.0333), rounded up once, and the ledger agrees to the micro."""
    content, tokens, bps = "price check", 7, 333
    base = fake_prompt_tokens(content) * PRICED_INPUT_MICROS_PER_TOKEN + tokens * OUTPUT_MICROS_PER_TOKEN
    marked = -(-base * (10_000 + bps) // 10_000)
    assert base * (10_000 + bps) % 10_000, "choose figures where rounding up matters"

    plain_key, plain_aid, _ = await admin.new_key(100_000)
    key, aid, _ = await admin.new_key(100_000, markup_bps=bps)
    assert (await admin.account(aid))["markup_bps"] == bps

    rid, cost, header, _ = await chat(gateway, plain_key, PRICED_MODEL, content=content, max_tokens=tokens)
    assert cost == header == await charge_of(admin, plain_aid, rid) == base
    rid, cost, header, _ = await chat(gateway, key, PRICED_MODEL, content=content, max_tokens=tokens)
    assert cost == header == await charge_of(admin, aid, rid) == marked

    # changing the markup applies to the next request
    await admin.ok("PATCH", f"/admin/accounts/{aid}", {"markup_bps": 10_000})
    rid, cost, header, _ = await chat(gateway, key, PRICED_MODEL, content=content, max_tokens=tokens)
    assert cost == header == await charge_of(admin, aid, rid) == 2 * base
    acc = await admin.account(aid)
    assert acc["balance_micros"] == 100_000 - marked - 2 * base
    assert sum(e["amount_micros"] for e in await admin.ledger(aid)) == acc["balance_micros"]

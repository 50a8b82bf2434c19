"""`model: auto` end to end with the openai SDK: willingness to pay per request (body `route` object
and header) and per key, validation, the reason header, and sticky conversations."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx2
import openai
import pytest

import routerone
from routerone.testing import fake_openai
from routerone.testing.harness import Gateway
from routerone.testing.threaded import ThreadedServer

# Two models with no training data: their profiles come from model_priors.toml (LMArena scores
# 1380 vs 1288), so gpt-4.1 is the stronger predicted model and gpt-4o-mini the cheaper.
CATALOG = """
replace_shipped_models = true

[[model]]
id = "gpt-4.1"
provider = "openai"
context_window = 100000
max_output = 1000
input_usd_per_mtok = "2.00"
output_usd_per_mtok = "8.00"

[[model]]
id = "gpt-4o-mini"
provider = "openai"
context_window = 100000
max_output = 1000
input_usd_per_mtok = "0.15"
output_usd_per_mtok = "0.60"
"""
STRONG, CHEAP = "gpt-4.1", "gpt-4o-mini"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auto")
    (tmp / "catalog.toml").write_text(CATALOG)
    with ThreadedServer(fake_openai.make_app) as up:
        gw = Gateway.for_upstreams(str(tmp / "r.db"), {"openai": (up.url + "/v1", "sk-a")},
                                   catalog_path=str(tmp / "catalog.toml"), max_retries=0)
        with gw:
            key, _ = gw.new_key()
            yield gw, openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def _ask(client, messages=HI, **kw):
    return client.chat.completions.with_raw_response.create(model="auto", messages=messages, **kw)


@pytest.mark.parametrize("wtp,expected", [(1, STRONG), (0, CHEAP)])
def test_willingness_to_pay_in_body_and_header(env, wtp, expected):
    gw, client = env
    by_body = _ask(client, extra_body={"route": {"strategy": "balanced", "willingness_to_pay": wtp}})
    assert by_body.parse().model == expected
    assert by_body.headers["x-routerone-strategy"] == "balanced"
    by_header = _ask(client, extra_headers={"x-routerone-willingness-to-pay": str(wtp)})
    assert by_header.parse().model == expected
    # the body wins over the header
    other = STRONG if expected == CHEAP else CHEAP
    both = _ask(client, extra_body={"route": {"willingness_to_pay": wtp}},
                extra_headers={"x-routerone-willingness-to-pay": "0" if wtp else "1"})
    assert both.parse().model == expected != other


def test_reason_names_predicted_quality_and_cost_of_chosen_and_runner_up(env):
    gw, client = env
    raw = _ask(client, extra_headers={"x-routerone-willingness-to-pay": "1"})
    reason = raw.headers["x-routerone-reason"]
    chosen, runner = reason.split("; runner-up ")
    assert f"chose {STRONG} (predicted quality" in chosen and "est. cost $" in chosen
    assert "prior:lmarena" in chosen
    assert runner.startswith(f"{CHEAP} (predicted quality") and "est. cost $" in runner


@pytest.mark.parametrize("extra", [
    {"extra_body": {"route": {"willingness_to_pay": 1.5}}, "param": "route.willingness_to_pay"},
    {"extra_body": {"route": {"willingness_to_pay": "lots"}}, "param": "route.willingness_to_pay"},
    {"extra_body": {"route": {"wtp": 0.5}}, "param": "route.wtp"},
    {"extra_headers": {"x-routerone-willingness-to-pay": "abc"}, "param": "x-routerone-willingness-to-pay"},
    {"extra_headers": {"x-routerone-willingness-to-pay": "-1"}, "param": "x-routerone-willingness-to-pay"},
])
def test_bad_willingness_to_pay_is_a_400_naming_the_field(env, extra):
    gw, client = env
    param = extra.pop("param")
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="auto", messages=HI, **extra)
    assert exc.value.body["param"] == param
    assert param in exc.value.body["message"]


@pytest.mark.parametrize("raw", ["\u0660.5", "0_5", "\uff10.5", "1_0", "0x1", "nan", "1" * 1000])
def test_willingness_to_pay_header_is_a_plain_ascii_decimal(env, raw):
    """float() read Arabic-Indic and full-width digits ("\u0660.5" was 0.5) and underscores ("0_5"
    was 5.0, then refused as "got 5.0"). Only a plain ASCII decimal is a number; the 400 names the
    header and echoes the value as sent, shortened."""
    gw, client = env
    resp = httpx2.post(f"{gw.base_url}/chat/completions", json={"model": "auto", "messages": HI}, timeout=30,
                       headers={"Authorization": f"Bearer {client.api_key}",
                                "x-routerone-willingness-to-pay": raw.encode()})
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["param"] == "x-routerone-willingness-to-pay" and "x-routerone-willingness-to-pay" in err["message"]
    assert repr(raw[:40]) in err["message"] and len(err["message"]) < 200, err["message"]
    assert "5.0" not in err["message"]


@pytest.mark.parametrize("raw,expected", [(".9", STRONG), ("1e-1", CHEAP), ("+0.00", CHEAP), ("1.", STRONG)])
def test_willingness_to_pay_header_plain_decimals_still_read(env, raw, expected):
    gw, client = env
    ask = [{"role": "user", "content": f"A fresh question about {raw}"}]
    assert _ask(client, messages=ask, extra_headers={"x-routerone-willingness-to-pay": raw}).parse().model == expected


@pytest.mark.parametrize("wtp,expected", [(1.0, STRONG), (0.0, CHEAP)])
def test_willingness_to_pay_per_key(env, wtp, expected):
    gw, _ = env
    key, _ = gw.new_key(willingness_to_pay=wtp)
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    assert _ask(client).parse().model == expected
    # a request's own setting wins over the key's
    flip = "0" if wtp else "1"
    assert _ask(client, extra_headers={"x-routerone-willingness-to-pay": flip}).parse().model != expected


def test_a_keys_willingness_to_pay_and_strategy_are_patched_in_place(env):
    """PATCH /admin/keys/{id} (issue 16): an operator makes a key's `auto` stronger or cheaper without
    a new secret. The same key picks the other model on its next request (the reason names the wtp);
    null puts it back to the gateway default (0.5). Before: 400 "Unknown field 'willingness_to_pay'"."""
    gw, _ = env
    key, acc = gw.new_key(willingness_to_pay=0)
    kid = gw.admin("GET", f"/admin/keys?account_id={acc}")["data"][0]["id"]
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)

    def picked() -> tuple[str, str, str]:
        raw = _ask(client)
        return raw.parse().model, raw.headers["x-routerone-reason"], raw.headers["x-routerone-strategy"]

    model, reason, _ = picked()
    assert model == CHEAP and reason.startswith(f"wtp=0.00: chose {CHEAP}"), reason
    patched = gw.admin("PATCH", f"/admin/keys/{kid}", {"willingness_to_pay": 1})["data"]
    assert patched["willingness_to_pay"] == 1.0 and patched["strategy"] is None
    model, reason, strategy = picked()
    assert model == STRONG and reason.startswith(f"wtp=1.00: chose {STRONG}") and strategy == "balanced", reason
    patched = gw.admin("PATCH", f"/admin/keys/{kid}", {"willingness_to_pay": None, "strategy": "cost"})["data"]
    assert patched["willingness_to_pay"] is None and patched["strategy"] == "cost"
    model, _, strategy = picked()
    assert (model, strategy) == (CHEAP, "cost")
    patched = gw.admin("PATCH", f"/admin/keys/{kid}", {"strategy": None})["data"]
    assert patched["strategy"] is None and patched["willingness_to_pay"] is None
    _, reason, strategy = picked()
    assert strategy == "balanced" and reason.startswith("wtp=0.50: chose "), reason


def test_keys_update_from_another_process_reaches_the_running_gateway(env):
    """`routerone keys update` writes the database from its own process: the running gateway, whose
    auth cache holds the key, picks the change up with its auth_version poll (as a revocation)."""
    gw, _ = env
    key, acc = gw.new_key(willingness_to_pay=0)
    kid = gw.admin("GET", f"/admin/keys?account_id={acc}")["data"][0]["id"]
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    assert _ask(client).parse().model == CHEAP                       # the key is now cached
    env_vars = {k: v for k, v in os.environ.items() if not k.startswith("ROUTERONE_")}
    out = subprocess.run([sys.executable, "-m", "routerone", "keys", "update", str(kid), "--willingness-to-pay",
                          "1", "--database-url", gw.settings.database_url], capture_output=True, text=True,
                         timeout=60, env={**env_vars, "PYTHONPATH": str(Path(routerone.__file__).parents[1])})
    assert out.returncode == 0 and "willingness_to_pay=1" in out.stdout, out.stderr
    deadline = time.monotonic() + 5.0          # the poll runs every 1 s (measured: seen after 0.66 s)
    while (raw := _ask(client)).parse().model != STRONG:
        assert time.monotonic() < deadline, raw.headers["x-routerone-reason"]
        time.sleep(0.05)
    assert raw.headers["x-routerone-reason"].startswith("wtp=1.00")


def test_key_willingness_to_pay_is_validated_and_shown(env):
    gw, _ = env
    acc = gw.admin("POST", "/admin/accounts", {"name": "w"})["data"]
    req = urllib.request.Request(gw.base_url.replace("/v1", "") + "/admin/keys",
                                 data=json.dumps({"account_id": acc["id"], "willingness_to_pay": 3}).encode(),
                                 headers={"Authorization": f"Bearer {gw.settings.admin_key}",
                                          "Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 400
    assert json.loads(exc.value.read())["error"]["param"] == "willingness_to_pay"
    key = gw.admin("POST", "/admin/keys", {"account_id": acc["id"], "willingness_to_pay": 0.25})["data"]
    assert key["willingness_to_pay"] == 0.25


def test_sticky_conversation_stays_on_first_model(env):
    gw, client = env
    turn1 = [{"role": "user", "content": "Plan a three-day trip to Kyoto, please."}]
    first = _ask(client, messages=turn1, extra_headers={"x-routerone-willingness-to-pay": "1"})
    assert first.parse().model == STRONG
    answer = first.parse().choices[0].message.content
    turn2 = turn1 + [{"role": "assistant", "content": answer}, {"role": "user", "content": "Make it cheaper."}]
    second = _ask(client, messages=turn2, extra_headers={"x-routerone-willingness-to-pay": "0"})
    assert second.parse().model == STRONG
    assert second.headers["x-routerone-reason"].startswith("sticky conversation")
    # the same follow-up in a fresh conversation is decided by its own setting
    fresh = [{"role": "user", "content": "Plan a weekend in Osaka."}, {"role": "assistant", "content": "ok"},
             {"role": "user", "content": "Make it cheaper."}]
    assert _ask(client, messages=fresh, extra_headers={"x-routerone-willingness-to-pay": "0"}).parse().model == CHEAP


@pytest.mark.parametrize("route", ["messages", "responses"])
def test_willingness_to_pay_header_on_messages_and_responses(env, route):
    """The header was read on /v1/chat/completions only: /v1/messages and /v1/responses ignored it
    (an out-of-range value was a 200, not the documented 400 naming the header)."""
    gw, _ = env
    key, _ = gw.new_key()

    def post(question: str, wtp: str) -> tuple[int, dict, dict]:
        body = ({"model": "auto", "max_tokens": 20, "messages": [{"role": "user", "content": question}]}
                if route == "messages" else {"model": "auto", "input": question})
        req = urllib.request.Request(f"{gw.base_url}/{route}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                                              "x-routerone-willingness-to-pay": wtp})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), json.loads(exc.read())

    # a fresh question each time: a later turn would stay on its first model (sticky conversations)
    for wtp, expected in (("1", STRONG), ("0", CHEAP)):
        status, headers, _ = post(f"Explain recursion to a child ({route}, {wtp})", wtp)
        assert status == 200 and headers["x-routerone-model"] == expected, (wtp, status, headers)
    status, _, body = post("hi", "1.5")
    assert status == 400, body
    assert "x-routerone-willingness-to-pay" in body["error"]["message"]


_ENDPOINTS = {   # path -> (body, where the error's message and type are)
    "/v1/chat/completions": ({"model": "auto", "messages": HI}, lambda b: b["error"]),
    "/v1/messages": ({"model": "auto", "max_tokens": 16, "messages": HI}, lambda b: b["error"]),
    "/v1/responses": ({"model": "auto", "input": "hi"}, lambda b: b["error"]),
}


@pytest.mark.parametrize("header, values", [("x-routerone-willingness-to-pay", ["1", "0"]),
                                            ("X-RouterOne-Strategy", ["quality", "cost"])])
@pytest.mark.parametrize("path", list(_ENDPOINTS))
def test_a_routing_header_repeated_with_different_values_is_a_400_naming_it(env, path, header, values):
    """The first value was used, silently (a proxy appending its own value had no effect, or the
    client's had none): now a 400 invalid_request_error naming the header, on all three endpoints
    (Anthropic's error shape on /v1/messages); the same value repeated is that value."""
    gw, client = env
    body, error_of = _ENDPOINTS[path]
    auth = [("Authorization", f"Bearer {client.api_key}")]
    with httpx2.Client(timeout=30) as http:
        r = http.post(gw.url + path, json=body, headers=auth + [(header, v) for v in values])
        assert r.status_code == 400, r.text
        err = error_of(r.json())
        assert err["type"] == "invalid_request_error" and header.lower() in err["message"]
        if path == "/v1/messages":
            assert r.json()["type"] == "error"
        else:
            assert err["param"] == header.lower()
        same = http.post(gw.url + path, json=body, headers=auth + [(header, values[0])] * 2)
        assert same.status_code == 200, same.text
    if header.startswith("x-routerone-w"):
        assert same.headers["x-routerone-model"] == STRONG


@pytest.mark.parametrize("model, extra, param", [
    ("auto", {"extra_headers": {"x-routerone-strategy": "fast"}}, "x-routerone-strategy"),
    (CHEAP, {"extra_headers": {"x-routerone-strategy": "fast"}}, "x-routerone-strategy"),
    (CHEAP, {"extra_body": {"route": "cheapest"}}, "route"),
    (CHEAP, {"extra_body": {"route": {"strategy": "cheapest"}}}, "route"),
], ids=["auto-header", "named-header", "named-route", "named-route-object"])
def test_an_unknown_strategy_is_a_400_naming_where_it_was_sent(env, model, extra, param):
    """A new user's typo: `x-routerone-strategy: fast` with `auto` was a 400 naming `route` (a body
    field the client never sent); with a named model the typo, in the header or in `route`, was
    accepted silently (a bad `x-routerone-willingness-to-pay` is a 400 there too)."""
    gw, client = env
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model=model, messages=HI, **extra)
    assert exc.value.body["param"] == param, exc.value.body
    assert "Unknown routing strategy" in exc.value.body["message"] and "latency" in exc.value.body["message"]
    ok = client.chat.completions.with_raw_response.create(model=CHEAP, messages=HI,
                                                           extra_headers={"x-routerone-strategy": "cost"})
    assert ok.parse().model == CHEAP

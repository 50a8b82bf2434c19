"""The console's main path in a real browser: the operator sets up an account and a user, the user
makes a key, the key works from the official openai SDK, the request shows in Logs, Activity and
Credits, and revoking the key makes the SDK get 401. Screenshots of every main page."""
from __future__ import annotations

import re
import time

import openai
import pytest

from routerone.console.web import CONSOLE

from conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD, check_no_secrets, shoot, sign_in


def wait_until(page, predicate_js: str, arg=None, timeout_s: float = 15.0) -> None:
    """Poll a JavaScript predicate from the test side. Playwright's wait_for_function polls with
    an eval inside the page, which the console's Content-Security-Policy (script-src 'self', no
    unsafe-eval) rightly refuses; page.evaluate goes through the DevTools protocol instead."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate_js, arg):
        assert time.monotonic() < deadline, f"never true: {predicate_js}"
        page.wait_for_timeout(50)


def _money(text: str) -> float:
    return float(re.sub(r"[^0-9.\-]", "", text))


def _operator_sets_up_account(page, cg) -> tuple[int, str]:
    """Returns (account id, the new user's initial password)."""
    sign_in(page, cg, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    page.wait_for_url(cg.url + "/")
    shoot(page, "operator-overview")
    page.click("nav.opnav >> text=Accounts")
    page.fill("input[name=name]", "Acme")
    page.click("text=Create account")
    page.wait_for_url(re.compile(r".*/operator/accounts/\d+(\?.*)?$"))
    account_id = int(page.url.split("?")[0].rsplit("/", 1)[1])
    page.fill("input[name=amount_usd]", "5")
    page.fill("input[name=note]", "first top-up")
    page.click("text=Apply")
    page.wait_for_selector("text=Topped up $5.00.")
    assert page.inner_text("#account-balance") == "$5.00"
    page.fill("input[name=email]", "alice@acme.test")
    page.select_option("select[name=role]", "user")
    page.click("text=Create user")
    password = page.input_value("#new-password")
    assert len(password) >= 10
    shoot(page, "operator-account")
    check_no_secrets(page, cg)
    for name, link in (("operator-accounts", "Accounts"), ("operator-users", "Users"),
                       ("operator-providers", "Providers & models"), ("operator-routing", "Routing"),
                       ("operator-activity", "Gateway activity")):
        page.click(f"nav.opnav >> text={link}")
        page.wait_for_load_state()
        check_no_secrets(page, cg)
        shoot(page, name)
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r".*/console/login.*"))
    return account_id, password


def test_operator_user_key_sdk_logs_activity_credits_revoke(console_gw, new_context, make_openai_client,
                                                            fake_requests) -> None:
    cg = console_gw
    ctx = new_context(permissions=["clipboard-read", "clipboard-write"])
    page = ctx.new_page()
    page.on("dialog", lambda d: d.accept())
    refused: list[str] = []             # the browser's Content-Security-Policy reports (none allowed)
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    account_id, password = _operator_sets_up_account(page, cg)
    shoot(page, "login")

    # the user signs in; a new user first sees the overview with a "create your first key" call
    sign_in(page, cg, "alice@acme.test", password)
    page.wait_for_url(cg.url + "/")
    assert "Create your first key" in page.inner_text("main")
    assert page.locator("nav.opnav").count() == 0            # no operator menu for a user
    shoot(page, "overview")
    page.click("a.button >> text=Create your first key")
    shoot(page, "keys-empty")
    page.fill("input[name=name]", "laptop")
    page.fill("input[name=spend_cap_usd]", "2")
    page.click("text=Create key")
    secret = page.input_value("#new-key")
    assert secret.startswith("sk-ro-")
    page.click("button[data-copy='#new-key']")
    wait_until(page, "async (want) => (await navigator.clipboard.readText()) === want", secret)
    shoot(page, "keys-new-secret")
    page.goto(cg.url + "/keys")                     # shown once: a reload no longer has it
    assert secret not in page.content()
    check_no_secrets(page, cg, (secret,))

    client = make_openai_client(cg.gw, secret)
    reply = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "Say hello"}])
    assert reply.choices[0].message.content and fake_requests

    # Logs: the request with its routed model and reason (usage rows land within ~50 ms)
    page.goto(cg.url + "/logs")
    deadline = time.monotonic() + 10
    while not page.locator("table.logs tbody tr").count():
        assert time.monotonic() < deadline, "the request never appeared in Logs"
        page.wait_for_timeout(100)
        page.reload()
    row = page.inner_text("table.logs tbody tr")
    assert reply.model in row and "auto" in row and "200" in row
    reason = page.inner_text("table.logs tbody tr td.reason")
    assert len(reason) > 5 and reason != "—"
    check_no_secrets(page, cg, (secret,))
    shoot(page, "logs")
    csv_text = page.request.get(cg.url + "/logs.csv").text()
    assert reply.model in csv_text and "Say hello" not in csv_text   # no prompt text

    # Activity: one request, a chart drawn
    page.goto(cg.url + "/activity")
    assert page.inner_text("#total-requests") == "1"
    page.wait_for_selector("figure.chart canvas")
    assert reply.model in page.inner_text("main")
    shoot(page, "activity")

    # Credits: below the $5 top-up by exactly what the account was charged
    page.goto(cg.url + "/credits")
    balance = _money(page.inner_text("#balance"))
    charged = cg.gw.account(account_id)
    assert 0 < balance < 5.0 and balance * 1e6 == pytest.approx(charged["balance_micros"])
    assert "charge" in page.inner_text("table") and "top-up" in page.inner_text("table")
    shoot(page, "credits")

    page.goto(cg.url + "/models")
    assert reply.model in page.inner_text("table")
    shoot(page, "models")

    # Playground (streaming, with JavaScript): billed and logged like any request
    page.goto(cg.url + "/playground")
    shoot(page, "playground-empty")
    page.fill("textarea[name=prompt]", "What is 2+2?")
    page.click("text=Send")
    wait_until(page, "() => document.getElementById('answer-latency').textContent.length > 0")
    assert page.inner_text("#answer-model") and page.inner_text("#answer-reason")
    assert page.inner_text("#answer-cost").startswith("$")
    assert not page.inner_text("#answer-text").startswith("Error")
    shoot(page, "playground")

    # revoke: the SDK now gets 401
    page.goto(cg.url + "/keys")
    page.click("tr:has-text('laptop') >> text=Revoke")
    page.wait_for_selector("text=Key laptop revoked.")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "again"}])
    shoot(page, "keys")
    entries = cg.gw.call(cg.gw.app[CONSOLE].store.list_audit(100))
    actions = {(e.actor, e.action) for e in entries}
    assert ("console:alice@acme.test", "key.create") in actions
    assert ("console:alice@acme.test", "key.revoke") in actions
    assert (f"console:{OPERATOR_EMAIL}", "account.credit") in actions
    assert refused == []            # charts, copy buttons and the playground need no inline style or script


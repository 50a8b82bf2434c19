"""Money on console pages, in a real browser: integer micro-dollars shown as exact decimal strings
(never rounded to cents, never a float artefact), from one micro-dollar to the storage maximum and
beyond 2**53 (where a double can no longer hold every micro-dollar)."""
from __future__ import annotations

import re
import time

from routerone.console.web import CONSOLE
from routerone.store.base import UsageRecord
from routerone.store.bounds import MAX_BALANCE_MICROS

from conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD, sign_in

PASSWORD = "money-password-123"


def _user_in_account(cg, email: str, balance_micros: int) -> int:
    acc = cg.gw.admin("POST", "/admin/accounts", {"name": email.split("@")[0],
                                                  "balance_micros": balance_micros})["data"]["id"]
    cg.create_user(email, PASSWORD, account_id=acc)
    return acc


def test_balances_show_every_micro_dollar(console_gw, new_context) -> None:
    cg = console_gw
    _user_in_account(cg, "tiny@money.test", 999_999)                   # $0.999999: below the $1 warning
    _user_in_account(cg, "huge@money.test", MAX_BALANCE_MICROS - 1)     # the storage maximum less 1 micro
    page = new_context().new_page()

    sign_in(page, cg, "tiny@money.test", PASSWORD)
    page.wait_for_url(cg.url + "/")
    stats = page.inner_text("div.stats")
    assert "$0.999999" in stats and "$1.00" not in stats, stats        # was rounded up to $1.00 under a "low" warning
    assert "$0.999999" in page.inner_text("p.warn")
    page.goto(cg.url + "/credits")
    assert page.inner_text("#balance") == "$0.999999"

    page2 = new_context().new_page()
    sign_in(page2, cg, "huge@money.test", PASSWORD)
    page2.wait_for_url(cg.url + "/")
    stats = page2.inner_text("div.stats")
    assert "$999,999,999.999999" in stats and "1,000,000,000" not in stats, stats


def test_one_micro_dollar_and_sums_past_2_to_the_53(console_gw, new_context) -> None:
    cg = console_gw
    acc = _user_in_account(cg, "rows@money.test", 5_000_000)
    key_id = cg.gw.admin("POST", "/admin/keys", {"account_id": acc, "name": "k"})["data"]["id"]
    store = cg.gw.app[CONSOLE].store                                     # type: ignore[index]
    t = time.time() - 60
    big = 2**53 + 1                                                      # 9,007,199,254.740993 dollars
    cg.gw.call(store.insert_usage([
        UsageRecord(request_id="r-one", key_id=key_id, account_id=acc, requested_model="m", routed_model="m",
                    provider="openai", cost_micros=1, created_at=t),
        UsageRecord(request_id="r-big", key_id=key_id, account_id=acc, requested_model="m", routed_model="m",
                    provider="openai", cost_micros=big, created_at=t + 1)]))
    page = new_context().new_page()
    sign_in(page, cg, "rows@money.test", PASSWORD)
    page.wait_for_url(cg.url + "/")
    page.goto(cg.url + "/logs")
    costs = page.locator("table.logs td[data-label=Cost]").all_inner_texts()
    assert costs == ["$9,007,199,254.740993", "$0.000001"], costs
    page.goto(cg.url + "/activity")
    assert page.inner_text("#total-spend") == "$9,007,199,254.740994"
    csv_text = page.request.get(cg.url + "/logs.csv").text()
    assert ",9007199254.740993," in csv_text and ",0.000001," in csv_text, csv_text


def test_a_top_up_of_one_micro_dollar_says_so(console_gw, new_context) -> None:
    cg = console_gw
    acc = cg.gw.admin("POST", "/admin/accounts", {"name": "penny"})["data"]["id"]
    page = new_context().new_page()
    sign_in(page, cg, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    page.wait_for_url(cg.url + "/")
    page.goto(f"{cg.url}/operator/accounts/{acc}")
    page.fill("input[name=amount_usd]", "0.000001")
    page.click("text=Apply")
    page.wait_for_url(re.compile(r".*notice=.*"))
    assert page.inner_text("p.notice") == "Topped up $0.000001."        # was "Topped up $0.00."
    assert page.inner_text("#account-balance") == "$0.000001"
    page.fill("input[name=amount_usd]", "0.000001")                      # and back: a negative ledger amount
    page.check("input[name=direction][value=debit]")
    page.click("text=Apply")
    page.wait_for_selector("text=Debited $0.000001.")
    assert page.inner_text("#account-balance") == "$0.00"
    amounts = page.locator("section:has(h2:text('Ledger')) td.num").all_inner_texts()
    assert amounts[:2] == ["-$0.000001", "$0.000001"], amounts

"""Creating an account on the console's Accounts page: a name another account has is refused there
(not a second account with that name), and the creation is audited once, as the console user."""
from __future__ import annotations

import json
import re

import httpx2

from conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _sign_in(http: httpx2.Client) -> None:
    csrf = CSRF.search(http.get("/login").text).group(1)
    http.post("/login", data={"csrf": csrf, "email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD,
                              "next": "/console/"})


def test_a_taken_account_name_is_refused_on_the_accounts_page(console_gw) -> None:
    gw = console_gw.gw
    with httpx2.Client(base_url=console_gw.url, timeout=30) as http:
        _sign_in(http)
        csrf = CSRF.search(http.get("/operator/accounts").text).group(1)
        made = http.post("/operator/accounts", data={"csrf": csrf, "name": "Initech", "balance_usd": ""})
        assert made.status_code == 303, made.text[:300]
        again = http.post("/operator/accounts", data={"csrf": csrf, "name": " initech ", "balance_usd": "5"})
    assert again.status_code == 409, again.text[:300]
    assert "The name is taken" in again.text and "Accounts" in again.text
    named = [a for a in gw.admin("GET", "/admin/accounts")["data"] if a["name"].strip().casefold() == "initech"]
    assert [(a["name"], a["balance_micros"]) for a in named] == [("Initech", 0)]
    audit = gw.admin("GET", f"/admin/audit?target=account:{named[0]['id']}")["data"]
    assert [(e["actor"], e["action"]) for e in audit] == [(f"console:{OPERATOR_EMAIL}", "account.create")]
    assert json.loads(audit[0]["detail"])["name"] == "Initech"

"""Lookalike names over real sockets, without a browser (session 13): an account `bil\u200bling`
beside `billing`, a console user and a key with invisible characters, a ledger note with a soft
hyphen. Every list shows the invisible characters as markers ("bil⟨U+200B⟩ling"), never raw, and
the Accounts search still finds them (by the name without them, or as shown)."""
from __future__ import annotations

import re

import httpx2

from routerone.console.web import CONSOLE

from conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
LOOKALIKE = "bil\u200bling"
SHOWN = "bil\u27e8U+200B\u27e9ling"
EMAIL = "ad\u2060min@example.com"
KEY = "deploy\U000e0041\ufe00"
NOTE = "refund\u00ad"


def _sign_in(http: httpx2.Client) -> None:
    csrf = CSRF.search(http.get("/login").text).group(1)
    resp = http.post("/login", data={"csrf": csrf, "email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD})
    assert resp.status_code == 303


def _names(page: str) -> list[str]:
    return re.findall(r'/operator/accounts/\d+">([^<]*)</a>', page)


def test_invisible_characters_in_names_are_shown_as_markers_and_search_finds_them(console_gw) -> None:
    gw = console_gw.gw
    real = gw.admin("POST", "/admin/accounts", {"name": "billing"})["data"]["id"]
    fake = gw.admin("POST", "/admin/accounts", {"name": LOOKALIKE})["data"]["id"]
    gw.admin("POST", f"/admin/accounts/{fake}/credit", {"amount_micros": 5, "note": NOTE})
    gw.admin("POST", "/admin/keys", {"account_id": fake, "name": KEY})
    console_gw.create_user(EMAIL, "lookalike-password-1", account_id=fake)
    raw = (LOOKALIKE, EMAIL, KEY, NOTE, "\u200b", "\u2060", "\U000e0041", "\u00ad")
    with httpx2.Client(base_url=console_gw.url, timeout=30) as http:
        _sign_in(http)
        page = http.get("/operator/accounts").text
        assert "billing" in _names(page) and SHOWN in _names(page)
        users = http.get("/operator/users").text
        assert "ad\u27e8U+2060\u27e9min@example.com" in users
        account = http.get(f"/operator/accounts/{fake}").text
        assert f"<h1>{SHOWN} " in account
        assert "deploy\u27e8U+E0041\u27e9\u27e8U+FE00\u27e9" in account and "refund\u27e8U+00AD\u27e9" in account
        for text in (page, users, account):
            assert not any(r in text for r in raw), "an invisible character reached a page raw"
        # the search: the plain name finds both, the name as shown only the lookalike
        assert sorted(_names(http.get("/operator/accounts", params={"q": "BILLING"}).text)) == ["billing", SHOWN]
        assert _names(http.get("/operator/accounts", params={"q": SHOWN}).text) == [SHOWN]
        assert _names(http.get("/operator/accounts", params={"q": LOOKALIKE}).text) == [SHOWN]
        assert _names(http.get("/operator/accounts", params={"q": f"#{real}"}).text) == ["billing"]
        # a notice quoting the name, too
        csrf = CSRF.search(page).group(1)
        done = http.post("/operator/accounts", data={"csrf": csrf, "name": "root\u200d"})
        assert "Account root\u27e8U+200D\u27e9 created." in http.get(done.headers["location"]).text
    store = gw.app[CONSOLE].store                                          # type: ignore[index]
    assert [a.name for a in gw.call(store.list_accounts())].count(LOOKALIKE) == 1     # stored as given

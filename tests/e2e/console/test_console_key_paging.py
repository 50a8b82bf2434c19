"""Console pages that show keys read a bounded number of them (session 16): the Keys page read every
key of the account and cut a `?page=N` out of them (an offset, so a key made between two pages
showed twice), the Overview read them all to count them, the Playground read them all to find its
key. Now the Keys page is read newest first by id (`?before=ID`, "Older" links), the Overview
counts in the store (at most OVERVIEW_COUNT_MAX), the Playground asks for its key by name. Over
HTTP (no browser needed): a real gateway, a real console session."""
from __future__ import annotations

import re

import httpx2
import pytest

from routerone.console.pages_user import PLAYGROUND_KEY_NAME
from routerone.console.web import CONSOLE
from routerone.store.base import NewKey

USER_EMAIL, USER_PASSWORD = "pat@many.test", "pat-password-123"
KEYS = 120


@pytest.fixture
def many(console_gw):
    cg = console_gw
    acc = cg.gw.admin("POST", "/admin/accounts", {"name": "many", "balance_micros": 3_000_000})["data"]["id"]
    cg.create_user(USER_EMAIL, USER_PASSWORD, account_id=acc)
    store = cg.gw.app[CONSOLE].store                                   # type: ignore[index]
    for i in range(KEYS):
        cg.gw.call(store.create_key(NewKey(account_id=acc, key_hash=f"ck-{i}", prefix=f"r1-ck{i:04d}x", name=f"k{i}")))
    with httpx2.Client(base_url=cg.url, timeout=30) as http:
        login = http.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
        ok = http.post("/login", data={"csrf": csrf, "email": USER_EMAIL, "password": USER_PASSWORD, "next": "/console/"})
        assert ok.status_code == 303, ok.text[:300]
        yield cg, acc, store, http


def _prefixes(html: str) -> list[str]:
    return re.findall(r"<code>(r1-ck\d{4}x)</code>", html)


def test_keys_page_pages_newest_first_by_id_each_key_once(many) -> None:
    cg, acc, store, http = many
    first = http.get("/keys")
    assert first.status_code == 200
    shown = _prefixes(first.text)
    assert shown == [f"r1-ck{i:04d}x" for i in range(KEYS - 1, KEYS - 51, -1)]      # 50 a page, newest first
    # a key made between two pages must not push one already seen onto the next page
    cg.gw.call(store.create_key(NewKey(account_id=acc, key_hash="ck-late", prefix="r1-ck9999x", name="late")))
    html = first.text
    for _ in range(10):
        older = re.search(r'id="keys-older" href="([^"]+)"', html)
        if older is None:
            break
        page = http.get("/keys" + older.group(1).replace("&amp;", "&"))       # relative to the Keys page
        assert page.status_code == 200
        html = page.text
        shown += _prefixes(html)
    assert shown == [f"r1-ck{i:04d}x" for i in range(KEYS - 1, -1, -1)]
    newest = http.get("/keys?before=1")
    assert newest.status_code == 200 and 'id="keys-newest"' in newest.text
    assert http.get("/keys?before=abc").status_code == 400


def test_overview_counts_active_keys_without_the_playground_key(many) -> None:
    cg, acc, store, http = many
    keys = cg.gw.call(store.recent_keys(acc, 2))
    cg.gw.call(store.revoke_key(keys[0].id))
    cg.gw.call(store.create_key(NewKey(account_id=acc, key_hash="ck-pg", prefix="r1-pg", name=PLAYGROUND_KEY_NAME)))
    html = http.get("/").text
    assert re.search(r"<span>Active keys</span><strong>119</strong>", html), html[:3000]

"""An operator's account page over real sockets, without a browser: its ledger and its audit
entries are 50 a page, newest first, with Older/Newest links per section that reach the first
entry (session 13; before, the page showed the newest 50 ledger entries and 20 audit entries and
nothing older could be seen from the console)."""
from __future__ import annotations

import html
import re

import httpx2

from routerone.console.web import CONSOLE

from conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
N_LEDGER, N_AUDIT = 123, 101          # more than two pages of each


def _sign_in(http: httpx2.Client) -> None:
    csrf = CSRF.search(http.get("/login").text).group(1)
    resp = http.post("/login", data={"csrf": csrf, "email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD})
    assert resp.status_code == 303


def _link(page: str, link_id: str) -> str | None:
    m = re.search(rf'<a [^>]*id="{link_id}"[^>]*>', page)
    return html.unescape(re.search(r'href="([^"]+)"', m.group(0)).group(1)) if m else None


def _url(start: str, href: str) -> str:
    """A link on the page at `start` as a path under the client's base URL (/console)."""
    return href.removeprefix("/console") if href.startswith("/") else start.split("?")[0] + href


def _walk(http: httpx2.Client, start: str, older_id: str, pattern: str) -> tuple[list[str], list[str]]:
    """Follow a section's Older links from `start`: (what the pattern found, page by page, the pages)."""
    found: list[str] = []
    pages: list[str] = []
    url: str | None = start
    while url is not None and len(pages) < 20:
        resp = http.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
        pages.append(resp.text)
        found.append(" ".join(re.findall(pattern, resp.text)))
        nxt = _link(resp.text, older_id)
        url = None if nxt is None else _url(start, nxt)
    return found, pages


def test_an_accounts_page_pages_its_ledger_and_audit_back_to_the_first_entry(console_gw) -> None:
    gw = console_gw.gw
    acc = gw.admin("POST", "/admin/accounts", {"name": "busy"})["data"]["id"]
    store = gw.app[CONSOLE].store                                          # type: ignore[index]
    for i in range(N_LEDGER):
        gw.call(store.adjust_balance(acc, 1, kind="credit", note=f"top-up {i:04d}", actor="test"))
    for i in range(N_AUDIT):
        gw.call(store.record_audit(f"auditor-{i:04d}", "account.note", f"account:{acc}"))
    gw.call(store.record_audit("auditor-elsewhere", "account.note", f"account:{acc + 1000}"))
    start = f"/operator/accounts/{acc}"
    with httpx2.Client(base_url=console_gw.url, timeout=30) as http:
        _sign_in(http)
        ledger, pages = _walk(http, start, "ledger-older", r"top-up (\d{4})")
        ids = [n for p in ledger for n in p.split()]
        assert [len(p.split()) for p in ledger] == [50, 50, 23]
        assert ids == [f"{i:04d}" for i in reversed(range(N_LEDGER))]           # each once, newest first
        assert _link(pages[0], "ledger-newest") is None and _link(pages[1], "ledger-newest") is not None
        audit, pages = _walk(http, start, "audit-older", r"auditor-(\d{4})")
        ids = [n for p in audit for n in p.split()]
        assert [len(p.split()) for p in audit] == [50, 50, 1]
        assert ids == [f"{i:04d}" for i in reversed(range(N_AUDIT))]
        assert all("auditor-elsewhere" not in p for p in pages)
        # the two sections page independently: paging the audit keeps the ledger where it was
        second_ledger = _link(http.get(start).text, "ledger-older")
        mixed = _link(http.get(_url(start, second_ledger)).text, "audit-older")
        page = http.get(_url(start, mixed)).text
        assert "top-up 0072" in page and "top-up 0073" not in page             # ledger page 2
        assert "auditor-0050" in page and "auditor-0051" not in page           # audit page 2
        for bad in ("?ledger_before=x", "?audit_before=%C2%B2", "?ledger_before=-1"):
            assert http.get(start + bad).status_code == 400, bad

"""A new operator's browser console showed an error on every page: "Failed to load resource: the
server responded with a status of 404" for /favicon.ico, which the browser asks for when a page names
no icon (session 16). The pages name one now (an empty data: icon, allowed by the CSP's img-src), so
a page load asks for nothing that is not there."""
from __future__ import annotations

from conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD, sign_in


def test_console_pages_load_without_a_browser_error(console_gw, new_context) -> None:
    cg = console_gw
    page = new_context().new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(cg.url + "/login")
    sign_in(page, cg, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    page.wait_for_url(cg.url + "/")
    for path in ("/keys", "/operator/providers"):
        page.goto(cg.url + path)
        page.wait_for_load_state("networkidle")
    assert errors == [], errors

"""The console's routing page under `serve --workers N`: a change there reaches only the worker
process that served the page (each keeps its own planner), which the page did not say: an operator
switched to `cost` and half the requests went on being routed `balanced`."""
from __future__ import annotations

import re

import httpx2

from conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD, ConsoleGateway

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _signed_in(cg: ConsoleGateway) -> httpx2.Client:
    http = httpx2.Client(base_url=cg.url, follow_redirects=False, timeout=30)
    csrf = CSRF.search(http.get("/login").text).group(1)
    assert http.post("/login", data={"csrf": csrf, "email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD,
                                     "next": "/console/"}).status_code == 303
    return http


def _console(gateway, **overrides) -> ConsoleGateway:
    cg = ConsoleGateway(gateway(**overrides))
    account = cg.gw.admin("GET", "/admin/accounts")["data"][0]["id"]
    cg.create_user(OPERATOR_EMAIL, OPERATOR_PASSWORD, account_id=account, role="operator")
    return cg


def test_the_routing_page_says_a_change_reaches_one_worker(gateway) -> None:
    http = _signed_in(_console(gateway, workers=2))
    try:
        page = http.get("/operator/routing").text
        assert "This server runs 2 worker processes" in page and "settings file and restart" in page
        csrf = CSRF.search(page).group(1)
        done = http.post("/operator/routing", data={"csrf": csrf, "strategy": "cost", "willingness_to_pay": "0.5"},
                         follow_redirects=True)
        assert "Routing updated for this process (1 of 2 worker processes" in done.text
    finally:
        http.close()


def test_one_process_has_no_such_note(gateway) -> None:
    http = _signed_in(_console(gateway))
    try:
        assert "worker processes" not in http.get("/operator/routing").text
    finally:
        http.close()

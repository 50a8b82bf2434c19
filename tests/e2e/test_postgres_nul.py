"""A NUL character where an operator or a client types text, on PostgreSQL (whose text columns
cannot hold one: asyncpg raises CharacterNotInRepertoireError). SQLite stores it, so these were
500s on PostgreSQL only: a console top-up note, a console user's email, the console's log filter
(page and CSV), and a /v1/responses id (GET, DELETE, previous_response_id). Each is now a 400 or a
404, and nothing was written.

A real gateway on a real PostgreSQL database and socket, the demo provider as the upstream."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Iterator

import httpx2
import pytest

from routerone.console.web import CONSOLE
from routerone.settings import Settings
from routerone.testing.harness import Gateway

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import pg_database  # noqa: E402

EMAIL, PASSWORD = "ops@example.com", "operator-password-1"


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with pg_database() as url, Gateway(Settings(database_url=url, demo="on", usage_flush_interval_s=0.05)) as gw:
        admin_account = gw.admin("GET", "/admin/accounts")["data"][0]["id"]
        gw.call(gw.app[CONSOLE].users.create(EMAIL, PASSWORD, account_id=admin_account, role="operator"))
        yield gw


def _csrf(page: httpx2.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


@pytest.fixture
def console(gw: Gateway) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=gw.url, timeout=30, follow_redirects=False) as c:
        r = c.post("/console/login", data={"email": EMAIL, "password": PASSWORD, "csrf": _csrf(c.get("/console/login"))})
        assert r.status_code == 303, r.text
        yield c


def test_console_forms_with_a_nul_are_400s(gw: Gateway, console: httpx2.Client) -> None:
    acc = gw.admin("POST", "/admin/accounts", {"name": "nul", "balance_micros": 1_000_000})["data"]["id"]
    page = f"/console/operator/accounts/{acc}"
    for path, form in ((f"{page}/balance", {"amount_usd": "5", "note": "top\x00up", "direction": "credit"}),
                       (f"{page}/users", {"email": "a\x00@example.com", "role": "user"})):
        r = console.post(path, data={**form, "csrf": _csrf(console.get(page))})
        assert r.status_code == 400, (path, r.status_code)
        assert "NUL" in r.text
    assert gw.account(acc)["balance_micros"] == 1_000_000
    assert len(gw.admin("GET", f"/admin/accounts/{acc}/ledger")["data"]) == 1


@pytest.mark.parametrize("path", ["/console/logs", "/console/logs.csv"])
def test_console_log_filters_with_a_nul_are_400s(console: httpx2.Client, path: str) -> None:
    r = console.get(path, params={"model": "demo\x00"})
    assert r.status_code == 400, r.status_code
    assert console.get(path, params={"model": "demo-small"}).status_code == 200


def test_response_ids_with_a_nul_are_404s(gw: Gateway) -> None:
    key, _ = gw.new_key()
    with httpx2.Client(base_url=gw.base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        for method in ("GET", "DELETE"):
            r = http.request(method, "/responses/resp_%00x")
            assert r.status_code == 404, (method, r.status_code, r.text)
            assert r.json()["error"]["type"] == "invalid_request_error"
        r = http.post("/responses", json={"model": "demo-small", "input": "hi", "previous_response_id": "resp_\x00"})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "previous_response_not_found"


def test_signing_in_with_a_nul_in_the_email_is_a_wrong_email(gw: Gateway) -> None:
    """Anyone could reach this one: the sign-in form looked the email up as given."""
    with httpx2.Client(base_url=gw.url, timeout=30, follow_redirects=False) as c:
        for email in ("ops@example.com\x00", "\x00"):
            r = c.post("/console/login", data={"email": email, "password": PASSWORD,
                                               "csrf": _csrf(c.get("/console/login"))})
            assert r.status_code == 401, (email, r.status_code)
            assert "Wrong email or password" in r.text

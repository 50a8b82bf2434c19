"""The operator's own account after the demo credit is withdrawn has $0: its Overview and Credits
pages told the operator to "ask your operator to top up" (session 16, a new operator's walk). An
operator is told where to top it up; a user is still told to ask the operator."""
from __future__ import annotations

from conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD, sign_in


def test_a_low_balance_tells_the_operator_where_to_top_up(console_gw, new_context) -> None:
    cg = console_gw
    account = cg.gw.admin("GET", "/admin/accounts")["data"][0]
    if account["balance_micros"]:
        cg.gw.admin("POST", f"/admin/accounts/{account['id']}/debit", {"amount_micros": account["balance_micros"]})
    cg.create_user("user@acme.test", "user-password-123456", account_id=account["id"])
    page = new_context().new_page()
    sign_in(page, cg, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    page.wait_for_url(cg.url + "/")
    for path in ("/", "/credits"):
        page.goto(cg.url + path)
        warning = page.inner_text("p.warn")
        assert "ask your operator" not in warning.lower() and "Accounts" in warning, (path, warning)
    page.click("p.warn a")                          # the link goes to the account's top-up form
    page.wait_for_url(cg.url + f"/operator/accounts/{account['id']}")
    assert "Top up" in page.inner_text("main")
    user = new_context().new_page()
    sign_in(user, cg, "user@acme.test", "user-password-123456")
    user.wait_for_url(cg.url + "/")
    assert "ask your operator" in user.inner_text("p.warn").lower()

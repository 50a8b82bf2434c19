"""What the console refuses, in a real browser: wrong passwords (then throttling), a missing or
wrong CSRF token, a user on an operator page or on another account's data; plus cookie flags,
sign-out, password change, the no-JavaScript path, and turning the console off."""
from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from routerone.console.web import CONSOLE

from conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD, check_no_secrets, shoot, sign_in

USER_EMAIL, USER_PASSWORD = "bob@beta.test", "bob-password-123"


@pytest.fixture
def user_setup(console_gw):
    """(gateway, the user's account id, another account's key id) - the user's account has $3."""
    cg = console_gw
    acc = cg.gw.admin("POST", "/admin/accounts", {"name": "beta", "balance_micros": 3_000_000})["data"]["id"]
    cg.create_user(USER_EMAIL, USER_PASSWORD, account_id=acc)
    _, other_acc = cg.gw.new_key()
    other_key = cg.gw.admin("GET", f"/admin/keys?account_id={other_acc}")["data"]
    other_key_id = [k for k in other_key if k["account_id"] == other_acc][0]["id"]
    return cg, acc, other_key_id


def _csrf(page) -> str:
    return page.locator("input[name=csrf]").first.input_value()


def test_wrong_password_is_refused_then_throttled(console_gw, new_context) -> None:
    cg = console_gw
    page = new_context().new_page()
    sign_in(page, cg, OPERATOR_EMAIL, "not-the-password")
    assert "Wrong email or password." in page.inner_text("main")
    assert not [c for c in page.context.cookies() if c["name"] == "ro_console"]
    shoot(page, "login-wrong-password")
    sign_in(page, cg, "nobody@example.com", "whatever-password")    # same message for unknown emails
    assert "Wrong email or password." in page.inner_text("main")
    for _ in range(4):                                                  # five failures in all
        sign_in(page, cg, OPERATOR_EMAIL, "still-wrong")
        assert "Wrong email or password." in page.inner_text("main")
    sign_in(page, cg, OPERATOR_EMAIL, OPERATOR_PASSWORD)               # then even the right one waits
    assert "Too many failed sign-ins" in page.inner_text("main")
    assert page.url.startswith(cg.url + "/login")


def test_sign_in_form_needs_its_csrf_token(console_gw, new_context) -> None:
    cg = console_gw
    page = new_context().new_page()
    page.goto(cg.url + "/login")
    resp = page.request.post(cg.url + "/login", form={"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD})
    assert resp.status == 403
    assert not [c for c in page.context.cookies() if c["name"] == "ro_console"]


def test_state_changes_need_the_session_csrf_token(user_setup, new_context) -> None:
    cg, acc, _ = user_setup
    page = new_context().new_page()
    sign_in(page, cg, USER_EMAIL, USER_PASSWORD)
    page.goto(cg.url + "/keys")
    for form in ({"name": "no-token"}, {"name": "bad-token", "csrf": "x" * 43}):
        resp = page.request.post(cg.url + "/keys", form=form)
        assert resp.status == 403 and "security token" in resp.text()
    assert cg.gw.call(cg.gw.app[CONSOLE].store.list_keys(acc)) == []
    ok = page.request.post(cg.url + "/keys", form={"name": "with-token", "csrf": _csrf(page)})
    assert ok.status == 200 and "sk-ro-" in ok.text()


def test_a_user_cannot_open_operator_pages_or_other_accounts_data(user_setup, new_context) -> None:
    cg, acc, other_key_id = user_setup
    page = new_context().new_page()
    sign_in(page, cg, USER_EMAIL, USER_PASSWORD)
    page.wait_for_url(cg.url + "/")
    csrf = _csrf(page)
    for path in ("/operator/accounts", "/operator/users", "/operator/providers", "/operator/routing",
                 "/operator/activity", f"/operator/accounts/{acc}"):
        resp = page.goto(cg.url + path)
        assert resp is not None and resp.status == 403, path
        assert "This page is for operators." in page.inner_text("main")
    shoot(page, "refused-operator-page")
    before = cg.gw.account(acc)["balance_micros"]
    resp = page.request.post(f"{cg.url}/operator/accounts/{acc}/balance",
                             form={"csrf": csrf, "amount_usd": "100", "direction": "credit"})
    assert resp.status == 403 and cg.gw.account(acc)["balance_micros"] == before
    # another account's key: neither revocable nor visible
    resp = page.request.post(f"{cg.url}/keys/{other_key_id}/revoke", form={"csrf": csrf})
    assert resp.status == 404
    assert cg.gw.call(cg.gw.app[CONSOLE].store.get_key(other_key_id)).revoked is False
    assert page.goto(f"{cg.url}/logs?key={other_key_id}").status == 404
    assert page.request.get(f"{cg.url}/logs.csv?key={other_key_id}").status == 404


def test_session_cookie_flags_sign_out_and_secure_behind_tls(console_gw, new_context) -> None:
    cg = console_gw
    ctx = new_context()
    page = ctx.new_page()
    sign_in(page, cg, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    page.wait_for_url(cg.url + "/")
    cookie = [c for c in ctx.cookies() if c["name"] == "ro_console"][0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    assert cookie["path"] == "/console"
    stored = cg.gw.call(cg.gw.app[CONSOLE].store.console_session(cookie["value"], 0))   # by raw token: no
    assert stored is None
    # behind a TLS-terminating proxy the cookie is Secure
    fresh = new_context()
    fresh.new_page().goto(cg.url + "/login")
    token = [c for c in fresh.cookies() if c["name"] == "ro_console_login"][0]["value"]
    req = urllib.request.Request(cg.url + "/login", method="POST", data=(
        f"csrf={token}&email={OPERATOR_EMAIL}&password={OPERATOR_PASSWORD}").encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"ro_console_login={token}",
        "X-Forwarded-Proto": "https"})
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        opener.open(req)
    except urllib.error.HTTPError as exc:
        assert exc.code == 303
        set_cookie = exc.headers["Set-Cookie"]
    assert "ro_console=" in set_cookie and "Secure" in set_cookie and "HttpOnly" in set_cookie
    # sign out ends the session on the server, not just in the browser
    page.goto(cg.url + "/")
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r".*/login.*"))
    ctx.add_cookies([{**cookie}])
    page.goto(cg.url + "/keys")
    assert "/login" in page.url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_password_change(user_setup, new_context) -> None:
    cg, _, _ = user_setup
    page = new_context().new_page()
    sign_in(page, cg, USER_EMAIL, USER_PASSWORD)
    page.goto(cg.url + "/password")
    shoot(page, "password")
    page.fill("input[name=current]", "wrong-current-pw")
    page.fill("input[name=password]", "new-password-456")
    page.fill("input[name=again]", "new-password-456")
    page.click("button[type=submit].primary")
    assert "The current password is wrong" in page.inner_text("main")
    page.fill("input[name=current]", USER_PASSWORD)
    page.fill("input[name=password]", "new-password-456")
    page.fill("input[name=again]", "new-password-456")
    page.click("button[type=submit].primary")
    assert "Password changed" in page.inner_text("main")
    page.goto(cg.url + "/keys")                           # the new session works
    assert page.url == cg.url + "/keys"
    other = new_context().new_page()
    sign_in(other, cg, USER_EMAIL, USER_PASSWORD)
    assert "Wrong email or password." in other.inner_text("main")
    sign_in(other, cg, USER_EMAIL, "new-password-456")
    other.wait_for_url(cg.url + "/")


def test_everything_but_charts_and_streaming_works_without_javascript(user_setup, new_context) -> None:
    cg, _, _ = user_setup
    page = new_context(java_script_enabled=False).new_page()
    sign_in(page, cg, USER_EMAIL, USER_PASSWORD)
    page.wait_for_url(cg.url + "/")
    page.goto(cg.url + "/keys")
    page.fill("input[name=name]", "nojs")
    page.click("text=Create key")
    secret = page.input_value("#new-key")
    assert secret.startswith("sk-ro-")
    page.goto(cg.url + "/playground")
    page.fill("textarea[name=prompt]", "Hello without scripts")
    page.click("text=Send")
    assert page.inner_text("#answer-model") and page.inner_text("#answer-text")
    assert page.inner_text("#answer-cost").startswith("$")
    check_no_secrets(page, cg, (secret,))
    page.goto(cg.url + "/logs")
    page.wait_for_timeout(200)
    page.reload()
    assert "Console playground" in page.inner_text("table.logs")      # billed and logged like any request
    page.goto(cg.url + "/activity")
    assert "Console playground" in page.inner_text("main")


def test_the_console_can_be_turned_off(gateway) -> None:
    gw = gateway(console=False)
    for path in ("/console/login", "/"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(gw.url + path, timeout=10)
        assert err.value.code == 404


def test_the_home_page_is_the_console(gateway) -> None:
    gw = gateway()
    with urllib.request.urlopen(gw.url + "/", timeout=10) as resp:     # follows the redirects
        assert resp.url.startswith(gw.url + "/console/") and resp.status == 200
        assert b"sign in" in resp.read().lower()


BAD_FORMS = {    # bodies no browser sends: each was a 500 with a traceback (aiohttp's request.post() raising)
    "multipart without a boundary": ("multipart/form-data", b"zzz", {}),
    "multipart with a nameless field": ("multipart/form-data; boundary=zzz",
                                       b'--zzz\r\nContent-Disposition: form-data; name="email"\r\n\r\nx\r\n--zzz', {}),
    "bytes that are not UTF-8": ("application/x-www-form-urlencoded", b"email=\xff\xfe&password=%ff", {}),
    "an unknown charset": ("application/x-www-form-urlencoded; charset=klingon", b"email=a", {}),
    "gzip that is not gzip": ("application/x-www-form-urlencoded", b"email=a", {"Content-Encoding": "gzip"}),
}


@pytest.mark.parametrize("name", sorted(BAD_FORMS))
def test_a_malformed_form_is_a_400_page(user_setup, name) -> None:
    """Sign-in (no session yet) and a signed-in action (the CSRF check reads the form first): 400 pages."""
    import httpx2
    cg, acc, _ = user_setup
    content_type, body, extra = BAD_FORMS[name]
    with httpx2.Client(base_url=cg.url, timeout=30) as http:
        login = http.get("/login")
        resp = http.post("/login", content=body, headers={"Content-Type": content_type, **extra})
        assert resp.status_code == 400, resp.text[:300]
        assert "could not be read" in resp.text and "Traceback" not in resp.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
        ok = http.post("/login", data={"csrf": csrf, "email": USER_EMAIL, "password": USER_PASSWORD, "next": "/console/"})
        assert ok.status_code == 303, ok.text[:300]
        resp = http.post("/keys", content=body, headers={"Content-Type": content_type, **extra})
        assert resp.status_code == 400 and "could not be read" in resp.text, resp.text[:300]
        assert http.get("/keys").status_code == 200          # the session still works
    assert cg.gw.call(cg.gw.app[CONSOLE].store.list_keys(acc)) == []

"""Sign-in, sign-out and password change."""
from __future__ import annotations

import re

from aiohttp import web

from ..errors import InvalidRequest, RateLimited
from ..services.auth import CLIENT_ADDRESS
from . import security
from .forms import read_form
from .users import SignInRefused, Viewer
from .web import (BASE, CONSOLE, COOKIE, LOGIN_CSRF_COOKIE, Console, clear_session_cookie, error_page, page,
                  render, secure_request, see_other, set_session_cookie)

__all__ = ["add_auth_routes"]


_NEXT = re.compile(r"/console/[!-~]{0,2000}")      # printable ASCII: what a browser's own URL holds


def _safe_next(raw: str | None) -> str:
    """Only a path inside the console (no open redirect to another site). Printable ASCII only: a
    CR, LF or NUL cannot go in a Location header (aiohttp dropped the connection after the session
    was made), a tab is stripped by browsers, and a backslash or a '..' segment may leave /console."""
    path = (raw or "").split("?", 1)[0]
    if (raw and _NEXT.fullmatch(raw) and "\\" not in raw
            and ".." not in path.split("/") and "%2e" not in path.lower()):
        return raw
    return BASE + "/"


def _login_form(request: web.Request, *, error: str = "", status: int = 200, email: str = "") -> web.Response:
    """The sign-in form carries a pre-session CSRF token that must match a cookie (double submit),
    so another site cannot sign a browser in to an account of its choosing."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not security.looks_like_token(token):
        token = security.new_token()
    resp = render(request, "login.html", status=status, login_csrf=token, error=error, email=email,
                  next=_safe_next(request.query.get("next")))
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, path=BASE, httponly=True, secure=secure_request(request),
                    samesite="Strict", max_age=3600)
    return resp


async def login_get(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    if await c.users.viewer(request.cookies.get(COOKIE)):
        return see_other(_safe_next(request.query.get("next")))
    return _login_form(request)


async def login_post(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    try:
        form = await read_form(request)
    except InvalidRequest as exc:
        return _login_form(request, error=exc.message, status=400)
    email, password = str(form.get("email", ""))[:300], str(form.get("password", ""))[:500]
    if not security.same(str(form.get("csrf", "")), request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_form(request, error="The form's security token is missing or out of date. Try again.",
                           status=403, email=email)
    ip = CLIENT_ADDRESS.get() or request.remote or "unknown"    # behind a proxy: client_ip_header's
    try:
        token, viewer = await c.users.sign_in(email, password, ip)
    except SignInRefused as exc:
        status = 429 if exc.retry_after_s else 401
        resp = _login_form(request, error=exc.message, status=status, email=email)
        if exc.retry_after_s:
            resp.headers["Retry-After"] = str(int(exc.retry_after_s) + 1)
        return resp
    resp = see_other(_safe_next(str(form.get("next", ""))))
    set_session_cookie(resp, request, token, c.users.session_ttl_s)
    resp.del_cookie(LOGIN_CSRF_COOKIE, path=BASE)
    return resp


@page()
async def logout(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    await c.users.sign_out(viewer)
    resp = see_other(f"{BASE}/login", "Signed out.")
    clear_session_cookie(resp)
    return resp


@page()
async def password_get(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    return render(request, "password.html", viewer=viewer, error="")


@page()
async def password_post(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    form = await read_form(request)
    current, new, again = (str(form.get(k, ""))[:500] for k in ("current", "password", "again"))
    try:
        if new != again:
            raise InvalidRequest("The two new passwords differ", param="again")
        token, viewer = await c.users.change_password(viewer, current, new)
    except (InvalidRequest, RateLimited) as exc:
        resp = render(request, "password.html", status=exc.status, viewer=viewer, error=exc.message)
        resp.headers.update(exc.headers)
        return resp
    resp = see_other(f"{BASE}/password", "Password changed. Other sessions were signed out.", viewer)
    set_session_cookie(resp, request, token, c.users.session_ttl_s)
    return resp


async def not_found(request: web.Request) -> web.StreamResponse:
    c = request.app[CONSOLE]
    viewer = await c.users.viewer(request.cookies.get(COOKIE))
    return error_page(request, 404, "Not found", "There is no such page.", viewer)


def add_auth_routes(app: web.Application) -> None:
    app.router.add_get(f"{BASE}/login", login_get)
    app.router.add_post(f"{BASE}/login", login_post)
    app.router.add_post(f"{BASE}/logout", logout)
    app.router.add_get(f"{BASE}/password", password_get)
    app.router.add_post(f"{BASE}/password", password_post)

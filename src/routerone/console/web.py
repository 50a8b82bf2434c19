"""The console's HTTP plumbing: templates, the session check on every page, CSRF on every POST,
security headers, and HTML error pages. Pages themselves live in pages_*.py."""
from __future__ import annotations

import functools
import hashlib
import hmac
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from ..catalog import Catalog
from ..errors import InvalidRequest, NotFound, RouterOneError
from ..http.transport_security import secure_request
from ..routing.health import Health
from ..routing.planner import Planner
from ..services.accounts import AccountsService
from ..services.chat import ChatService
from ..settings import Settings
from ..store.base import Store
from . import security
from .activity import RollupCache
from .forms import read_form
from .users import ConsoleUsers, Viewer

__all__ = ["Console", "CONSOLE", "page", "render", "see_other", "COOKIE", "usd", "usd_decimal", "when",
           "path_int", "add_security_headers", "clip", "isolate", "reveal",
           "without_invisible"]

COOKIE = "ro_console"
LOGIN_CSRF_COOKIE = "ro_console_login"
BASE = "/console"

_SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                                "form-action 'self'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(slots=True)
class Console:
    """What the console's pages use; built once in create_app."""
    settings: Settings
    store: Store
    accounts: AccountsService
    catalog: Catalog
    health: Health
    planner: Planner
    chat: ChatService
    users: ConsoleUsers
    templates: jinja2.Environment
    activity_cache: "RollupCache | None" = None     # set by add_console


CONSOLE: web.AppKey[Console] = web.AppKey("routerone_console", Console)
Handler = Callable[[web.Request, Console, Viewer], Awaitable[web.StreamResponse]]


def usd_decimal(micros: int) -> str:
    """Integer micro-dollars as an exact decimal string with six places ("-0.000001"): integer
    arithmetic, as a float (micros / 1e6) rounds past 2**53 micros and would need rounding to print."""
    whole, frac = divmod(abs(micros), 1_000_000)
    return f"{'-' if micros < 0 else ''}{whole}.{frac:06d}"


def usd(micros: int | None) -> str:
    """For pages: "$1,234.50", "$0.000001", "-$0.999999"; every micro-dollar shown, never rounded
    (a balance of $0.999999 must not read "$1.00" next to a below-$1 warning), at least 2 places."""
    if micros is None:
        return "—"
    whole, frac = divmod(abs(micros), 1_000_000)
    cents = f"{frac:06d}".rstrip("0").ljust(2, "0")
    return f"{'-' if micros < 0 else ''}${whole:,}.{cents}"


_BIDI_CLASSES = frozenset({"R", "AL", "RLE", "RLO", "LRE", "LRO", "PDF", "RLI", "LRI", "FSI", "PDI"})


def isolate(text: str) -> str:
    """Text with right-to-left letters or bidi controls between FSI and PDI (Unicode isolates): an
    unclosed U+202E in a name otherwise reverses the rest of its line ("Account abc‮def created."
    read "Account abc .detaerc fed"). Other text is returned as it is."""
    if any(unicodedata.bidirectional(ch) in _BIDI_CLASSES for ch in text):
        return "\u2068" + text + "\u2069"
    return text


# Characters that show nothing (or nothing but a change of direction): zero-width spaces and
# joiners, bidi marks and controls, word joiner and invisible operators, BOM, soft hyphen, tag
# characters, variation selectors, fillers (Hangul, Khmer, Mongolian) and the grapheme joiner.
_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
                        "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
                        "\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef]")
_MARK_OPEN, _MARK_CLOSE = "\u27e8", "\u27e9"          # ⟨U+200B⟩


def _marker(m: re.Match) -> str:
    ch, s, i = m.group(), m.string, m.start()
    before = s[i - 1] if i else ""
    after = s[i + 1] if i + 1 < len(s) else ""
    # emoji keep theirs: a presentation selector after a symbol ("❤️"), a joiner between two ("👨‍👩‍👧")
    if ch in "\ufe0e\ufe0f" and before and unicodedata.category(before) == "So":
        return ch
    if (ch == "\u200d" and after and unicodedata.category(after) == "So"
            and before and (before == "\ufe0f" or unicodedata.category(before) in ("So", "Sk"))):
        return ch
    return f"{_MARK_OPEN}U+{ord(ch):04X}{_MARK_CLOSE}"


def reveal(text: object) -> str:
    """Stored text with each invisible character shown as a marker, "ad⟨U+200B⟩min": otherwise a
    lookalike name ("admin" and "ad\u200bmin", a key, an account, a console user's email) cannot
    be told from the real one in a list. Text, not markup: templates escape it as any other."""
    text = "" if text is None else str(text)
    return _INVISIBLE.sub(_marker, text)


def without_invisible(text: str) -> str:
    """The text with its invisible characters (those reveal marks) left out."""
    return _INVISIBLE.sub("", text)


def clip(text: object, max_chars: int = 100) -> str:
    """Stored text with its invisible characters revealed (see reveal), shortened for display
    ("NNNN…", never cutting a marker in half) and isolated (see isolate): a name the store holds
    may be longer than the 200 characters the admin API and console accept (an older version,
    SQL), and a list must not carry 100,000 of them. Detail pages show the full value."""
    text = "" if text is None else str(text)
    shown = reveal(text[:max_chars + 1])       # a character is at least one shown character
    if len(shown) > max_chars:
        shown = shown[:max_chars - 1]
        opened = shown.rfind(_MARK_OPEN)
        if opened > shown.rfind(_MARK_CLOSE):     # cut inside a marker: cut before it
            shown = shown[:opened]
        shown += "…"
    return isolate(shown)


def when(ts: float | None) -> str:
    if not ts:
        return "—"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("routerone.console", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["usd"] = usd
    env.filters["when"] = when
    env.filters["clip"] = clip
    env.filters["reveal"] = reveal
    env.filters["num"] = lambda n: "—" if n is None else f"{n:,}"
    env.filters["ms"] = lambda v: "—" if v is None else f"{v:,.0f} ms"
    env.globals["base"] = BASE
    return env


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response under /console (static files, the CSV export, the
    playground's stream and JSON errors, aiohttp's own 403/405s) gets the pages' security headers.
    Static files keep their caching (no Cache-Control: no-store)."""
    path = request.path
    if path != "/" and path != BASE and not path.startswith(BASE + "/"):
        return
    static = path.startswith(BASE + "/static/")
    for name, value in _SECURITY_HEADERS.items():
        if not (static and name == "Cache-Control"):
            response.headers.setdefault(name, value)


def render(request: web.Request, template: str, *, status: int = 200, viewer: Viewer | None = None,
           **ctx) -> web.Response:
    c = request.app[CONSOLE]
    html = c.templates.get_template(template).render(
        viewer=viewer, csrf=viewer.csrf if viewer else "", path=request.path,
        notice=_notice(request, viewer), **ctx)
    return web.Response(text=html, status=status, content_type="text/html", headers=_SECURITY_HEADERS)


PUBLIC_NOTICES = frozenset({"Signed out."})      # shown to anyone, signed in or not


def _notice_sig(csrf: str, notice: str) -> str:
    return hmac.new(csrf.encode(), notice.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:32]


def _notice(request: web.Request, viewer: Viewer | None) -> str:
    """The `notice` in the query string, only if this console wrote it: one of PUBLIC_NOTICES, or
    signed (see_other) with the viewer's session CSRF token. Anything else is dropped, so a link
    from elsewhere cannot put its own words ("call this number") on a console page."""
    notice = request.query.get("notice", "")
    if not notice or len(notice) > 300:
        return ""
    if notice in PUBLIC_NOTICES:
        return notice
    if viewer is not None and security.same(request.query.get("sig"), _notice_sig(viewer.csrf, notice)):
        return notice
    return ""


def see_other(location: str, notice: str | None = None, viewer: Viewer | None = None) -> web.Response:
    """A 303 to `location`; a `notice` to show there is signed for `viewer`'s session (or must be
    one of PUBLIC_NOTICES)."""
    if notice:
        params = {"notice": notice}
        if viewer is not None:
            params["sig"] = _notice_sig(viewer.csrf, notice)
        location += ("&" if "?" in location else "?") + urlencode(params)
    return web.Response(status=303, headers={"Location": location, **_SECURITY_HEADERS})


def error_page(request: web.Request, status: int, title: str, message: str,
               viewer: Viewer | None = None) -> web.Response:
    return render(request, "error.html", status=status, viewer=viewer, title=title, message=message)


def page(role: str = "user") -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Every console page and action goes through here: a valid session (else the sign-in page),
    the role (operator pages refuse users with 403), and on POST the session's CSRF token (403)."""
    def deco(fn: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(fn)
        async def handler(request: web.Request) -> web.StreamResponse:
            c = request.app[CONSOLE]
            viewer = await c.users.viewer(request.cookies.get(COOKIE))
            if viewer is None:
                if request.method != "GET":
                    return error_page(request, 401, "Signed out", "Your session has ended. Sign in again.")
                return see_other(f"{BASE}/login?next={quote(request.raw_path)}")    # as sent: ASCII
            if role == "operator" and not viewer.is_operator:
                return error_page(request, 403, "Not allowed", "This page is for operators.", viewer)
            if request.method == "POST":
                try:
                    form = await read_form(request)
                except InvalidRequest as exc:
                    return error_page(request, exc.status, "Could not do that", exc.message, viewer)
                token = form.get("csrf") or request.headers.get("x-csrf-token")
                if not security.same(token if isinstance(token, str) else None, viewer.csrf):
                    return error_page(request, 403, "Refused",
                                      "The form's security token is missing or out of date. "
                                      "Reload the page and try again.", viewer)
            try:
                return await fn(request, c, viewer)
            except RouterOneError as exc:
                return error_page(request, exc.status, "Could not do that", exc.message, viewer)
        return handler
    return deco


def set_session_cookie(resp: web.StreamResponse, request: web.Request, token: str, max_age_s: float) -> None:
    resp.set_cookie(COOKIE, token, path=BASE, httponly=True, secure=secure_request(request),
                    samesite="Strict", max_age=int(max_age_s))


def clear_session_cookie(resp: web.StreamResponse) -> None:
    resp.del_cookie(COOKIE, path=BASE)


_ROW_ID = re.compile(r"[0-9]{1,18}")


def path_int(request: web.Request, name: str) -> int:
    """A numeric path segment ("key_id"); anything else is a 404, never a 500."""
    raw = request.match_info[name]
    if not _ROW_ID.fullmatch(raw):     # not str.isdigit(): "²" passed it and int() raised (a 500), "٣" was 3
        raise NotFound(f"No such {name.replace('_id', '')}")
    return int(raw)


def now() -> float:
    return time.time()

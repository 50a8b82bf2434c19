"""Stored data that someone other than the viewing operator controls, rendered in a real browser:
account and key names and ledger notes (admin API), console user emails, model ids an upstream's
`GET /v1/models` lists, and usage rows (routing reasons, error types). Every console page must show
such text as text: no script runs (no dialog, no Content-Security-Policy report, no element the data
made), the page keeps its width (long unbroken names wrap or scroll inside their table), and the
hostile text is on the page, escaped, not dropped."""
from __future__ import annotations

import csv
import io
import json
import time

import pytest

from routerone.console.web import CONSOLE
from routerone.store.base import UsageRecord
from routerone.testing.fake_box import FakeBox

from conftest import LAPTOP, OPERATOR_EMAIL, OPERATOR_PASSWORD, PHONE, ConsoleGateway, sign_in

PASSWORD = "hostile-password-1"
EMAIL = "<svg/onload=alert('email')>@evil.test"
# model ids an upstream lists: printable, no spaces (what discovery keeps), so HTML-ish by slashes
MODEL_IMG = "<img/src=x/onerror=alert('model')>"
MODEL_SCRIPT = "</script><script>alert('model2')</script>"
MODEL_LONG = "m" * 256                                  # the longest id discovery keeps, no break in it
ACCOUNT = "<script>alert('account')</script>\u202eevil\u200b" + "A" * 150     # 200 characters
# as pages show it: its invisible characters as markers (session 13), so no longer reversed; 207
# characters shown, so a heading shows 199 and "…" (the full name is under "Full name")
ACCOUNT_SHOWN = "<script>alert('account')</script>\u27e8U+202E\u27e9evil\u27e8U+200B\u27e9" + "A" * 150
ACCOUNT_HEADING = ACCOUNT_SHOWN[:199] + "…"
KEY_XSS = "\"><img src=x onerror=alert('key')>"
KEY_LONG = "K" * 200                                    # the admin API's longest name, no break in it
KEY_CONTROL = "ctl\x01\x07\x1b[2J\x7f\r\nname\u2028end"     # control characters (no NUL: refused)
NOTE = "</td></tr></table><script>alert('note')</script>"
HUGE_NAME = "N" * 100_000
REASON = "</script><img src=x onerror=alert('reason')>"
USAGE_ROWS = [(MODEL_IMG, 200, None), (MODEL_SCRIPT, 502, REASON), (MODEL_LONG, 200, None)]
USER_PAGES = ["/", "/keys", "/credits", "/logs", "/activity", "/models", "/playground"]
OPERATOR_PAGES = ["/operator/accounts", "/operator/users", "/operator/providers", "/operator/routing",
                  "/operator/activity"]
# what the data could have made if it were markup: none of these is on any console page
INJECTED = "main img, main svg, main iframe, main object, main b, script:not([src]):not(#chart-data)"


@pytest.fixture
def box():
    b = FakeBox([MODEL_IMG, MODEL_SCRIPT, MODEL_LONG, "plain-model"]).start()
    yield b
    b.stop()


@pytest.fixture
def hostile(gateway, fake_upstream, box):
    """A gateway whose keyless provider `box` lists hostile model ids, an account full of hostile
    names, and usage rows for them. Returns (console gateway, account id)."""
    gw = gateway(providers={"openai": (fake_upstream.base_url, fake_upstream.api_key), "box": (box.base_url, None)})
    cg = ConsoleGateway(gw)
    admin_account = gw.admin("GET", "/admin/accounts")["data"][0]["id"]
    cg.create_user(OPERATOR_EMAIL, OPERATOR_PASSWORD, account_id=admin_account, role="operator")
    acc = gw.admin("POST", "/admin/accounts", {"name": ACCOUNT})["data"]["id"]
    gw.admin("POST", f"/admin/accounts/{acc}/credit", {"amount_micros": 5_000_000, "note": NOTE})
    cg.create_user(EMAIL, PASSWORD, account_id=acc)
    keys = [gw.admin("POST", "/admin/keys", {"account_id": acc, "name": name,
                                             **({"allowed_models": [MODEL_IMG]} if name == KEY_XSS else {})})["data"]
            for name in (KEY_XSS, KEY_LONG, KEY_CONTROL)]
    store = gw.app[CONSOLE].store                                            # type: ignore[index]
    t = time.time() - 120
    rows = [UsageRecord(request_id=f"r-{i}", key_id=keys[i % 3]["id"], account_id=acc, requested_model=model,
                        routed_model=model, provider="box", cost_micros=1_234, created_at=t + i, status=status,
                        error_type=error, route_reason=REASON, fallbacks=MODEL_SCRIPT)
            for i, (model, status, error) in enumerate(USAGE_ROWS)]
    gw.call(store.insert_usage(rows))
    gw.call(store.create_account(HUGE_NAME))    # past the services' 200: what an older version or SQL could store
    return cg, acc


def _watch(page) -> list[str]:
    """Everything the page must not do: a dialog (alert/confirm/prompt), a CSP report, a JS error."""
    bad: list[str] = []
    page.on("dialog", lambda d: (bad.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("console", lambda m: bad.append(f"console {m.type}: {m.text}")
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: bad.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)   # e.g. a src= the data made
    page.on("pageerror", lambda e: bad.append(f"pageerror: {e}"))
    return bad


def _check(page, url: str, bad: list[str]) -> str:
    resp = page.goto(url)
    assert resp is not None and resp.status == 200, (url, resp and resp.status)
    page.wait_for_load_state("load")
    assert page.locator(INJECTED).count() == 0, (url, page.locator(INJECTED).evaluate_all(
        "els => els.map(e => e.outerHTML.slice(0, 120))"))
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        page.wait_for_timeout(300)            # charts redraw for the new width (console.js, on resize)
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        culprits = page.evaluate("""(w) => [...document.querySelectorAll('body *')].filter(e =>
            e.getBoundingClientRect().right > w).slice(0, 4).map(e => e.tagName + '.' + e.className + ' ' +
            Math.round(e.getBoundingClientRect().right) + ' ' + (e.textContent || '').slice(0, 40))""", size["width"])
        assert wide <= size["width"], f"{culprits} {url} is {wide}px wide at {size['width']}px: hostile text broke the layout"
    page.set_viewport_size(LAPTOP)
    assert bad == [], (url, bad)
    return page.inner_text("body")


def test_hostile_stored_text_is_shown_as_text_on_every_page(hostile, new_context) -> None:
    cg, acc = hostile
    user = new_context().new_page()
    bad = _watch(user)
    user.goto(cg.url + "/login")        # the email is not one the browser's own check lets through
    user.evaluate("() => document.querySelector('main form').noValidate = true")
    user.fill("input[name=email]", EMAIL)
    user.fill("input[name=password]", PASSWORD)
    user.click("button[type=submit]")
    user.wait_for_url(cg.url + "/")
    seen = {path: _check(user, cg.url + path, bad) for path in USER_PAGES}
    assert EMAIL in seen["/"] and ACCOUNT_HEADING in seen["/"]
    assert KEY_XSS in seen["/keys"] and KEY_LONG in seen["/keys"]
    assert NOTE in seen["/credits"] and "ctl" in seen["/keys"]
    csv_text = user.request.get(cg.url + "/logs.csv").text()          # the export stays one row per request
    assert len(list(csv.reader(io.StringIO(csv_text)))) == 1 + len(USAGE_ROWS)
    assert MODEL_IMG in seen["/logs"] and REASON in seen["/logs"] and MODEL_SCRIPT in seen["/logs"]
    assert MODEL_SCRIPT in seen["/activity"] and KEY_XSS in seen["/activity"]
    assert MODEL_IMG in seen["/models"] and KEY_XSS in seen["/models"]
    user.goto(cg.url + "/keys")                      # the revoke confirmation quotes the name as text
    bad.clear()
    user.locator(f"tr:has-text('{KEY_LONG}') >> text=Revoke").click()
    assert any(KEY_LONG in b for b in bad) and not user.locator(INJECTED).count()

    op = new_context().new_page()
    bad = _watch(op)
    sign_in(op, cg, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    op.wait_for_url(cg.url + "/")
    seen = {path: _check(op, cg.url + path, bad) for path in [*OPERATOR_PAGES, f"/operator/accounts/{acc}"]}
    assert ACCOUNT_SHOWN[:99] + "…" in seen["/operator/accounts"] and EMAIL in seen["/operator/users"]
    assert MODEL_IMG in seen["/operator/providers"] and MODEL_LONG in seen["/operator/providers"]
    page = seen[f"/operator/accounts/{acc}"]
    assert EMAIL in page and KEY_XSS in page and NOTE in page and ACCOUNT_HEADING in page


def test_a_100k_character_name_is_shortened_and_the_full_value_is_on_its_page(hostile, new_context) -> None:
    cg, _ = hostile
    huge_id = [a["id"] for a in cg.gw.admin("GET", "/admin/accounts")["data"] if a["name"] == HUGE_NAME][0]
    op = new_context().new_page()
    bad = _watch(op)
    sign_in(op, cg, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    op.wait_for_url(cg.url + "/")
    _check(op, cg.url + "/operator/accounts", bad)
    link = op.locator(f"a[href$='/operator/accounts/{huge_id}']")
    assert len(link.inner_text()) <= 120 and link.inner_text().endswith("…")      # shortened in the list
    assert len(op.content()) < len(HUGE_NAME)                                     # not sent whole in the list
    _check(op, f"{cg.url}/operator/accounts/{huge_id}", bad)
    assert op.locator("h1").bounding_box()["height"] < 200                     # the heading is not a wall of text
    assert HUGE_NAME in op.text_content("main")                                   # the full value is reachable
    op.click("text=Full name")
    assert op.locator("details.fullname").evaluate("d => d.open")


def test_a_right_to_left_override_in_a_name_does_not_reorder_the_text_after_it(hostile, new_context) -> None:
    """U+202E in an account name, unclosed: without isolation it reverses the rest of the line, so
    the heading's "#id" moves to the left of the name and a notice reads backwards."""
    cg, acc = hostile
    op = new_context().new_page()
    sign_in(op, cg, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    op.wait_for_url(cg.url + "/")
    op.goto(cg.url + "/operator/accounts")
    op.fill("input[name=name]", "abc\u202edef")
    op.click("text=Create account")
    op.wait_for_selector("p.notice")
    # the x of each word of the notice, in reading order: left to right
    xs = op.evaluate(WORD_XS, ["p.notice", ["Account", "def", "created"]])
    assert xs == sorted(xs), f"the notice reads backwards after the name: {xs}"
    name_x = op.evaluate(WORD_XS, ["h1", ["def"]])[0]
    assert op.locator("h1 span.muted").bounding_box()["x"] > name_x, "the #id moved before the name"


# the left edge of each word (first occurrence in the element's text nodes), as laid out
WORD_XS = """([sel, words]) => {
    const el = document.querySelector(sel), out = [];
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT), nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    for (const word of words) {
        const node = nodes.find(n => n.textContent.includes(word)), i = node.textContent.indexOf(word);
        const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + word.length);
        out.push(r.getBoundingClientRect().left);
    }
    return out; }"""


UPSTREAM_HTML = "<img src=x onerror=alert('upstream')></p><script>alert('upstream2')</script>"


def _html_upstream_app():
    """An upstream whose error messages and answers are HTML: model `says-html` answers with it
    (plain and streamed), `fails-html` refuses with it (a 400, passed on to the client)."""
    from aiohttp import web

    async def models(request):
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "x"} for m in ("says-html", "fails-html")]})

    async def chat(request):
        body = await request.json()
        if body["model"] == "fails-html":
            return web.json_response({"error": {"message": UPSTREAM_HTML, "type": "invalid_request_error",
                                                "param": None, "code": UPSTREAM_HTML}}, status=400)
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        if not body.get("stream"):
            return web.json_response({"id": "c", "object": "chat.completion", "created": 1, "model": body["model"],
                                      "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                                   "message": {"role": "assistant", "content": UPSTREAM_HTML}}],
                                      "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in ({"choices": [{"index": 0, "delta": {"role": "assistant", "content": UPSTREAM_HTML},
                                    "finish_reason": None}]},
                      {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, {"choices": [], "usage": usage}):
            chunk.update({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": body["model"]})
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.mark.parametrize("javascript", [True, False])
def test_html_in_an_upstreams_answer_or_error_is_text_in_the_playground(gateway, fake_upstream, new_context,
                                                                       javascript) -> None:
    from routerone.testing.threaded import ThreadedServer
    with ThreadedServer(_html_upstream_app) as up:
        gw = gateway(providers={"htmlbox": (up.url + "/v1", None)})
        cg = ConsoleGateway(gw)
        acc = gw.admin("POST", "/admin/accounts", {"name": "p", "balance_micros": 5_000_000})["data"]["id"]
        cg.create_user("p@html.test", PASSWORD, account_id=acc)
        page = new_context(java_script_enabled=javascript).new_page()
        bad = _watch(page)
        sign_in(page, cg, "p@html.test", PASSWORD)
        page.wait_for_url(cg.url + "/")
        for model, where in (("says-html", "#answer-text"), ("fails-html", "#answer-text" if javascript else "p.error")):
            page.goto(cg.url + "/playground")
            page.select_option("select[name=model]", model)
            page.fill("textarea[name=prompt]", "hello")
            page.click("text=Send")
            deadline = time.monotonic() + 15
            while UPSTREAM_HTML not in (page.locator(where).text_content() or ""):
                assert time.monotonic() < deadline, (model, page.locator(where).text_content())
                page.wait_for_timeout(100)
            assert page.locator(INJECTED).count() == 0
            assert [b for b in bad if not (model == "fails-html" and b.startswith("400 "))] == [], bad

"""Browser fixtures for the console: Debian's Chromium driven headless by Playwright (no browser
download), a gateway in front of the fake upstream with an operator console user, and helpers that
sign in, take laptop and phone screenshots, and check that no secret reached a page.

Screenshots go to tests/e2e/console/screenshots/ (git-ignored), `<page>-laptop.png` (1366x768) and
`<page>-phone.png` (390x844). They are for people (no test reads them) and take ~1 s a page on a busy
machine (~18 s of the console tests' ~60 s): `ROUTERONE_TEST_SCREENSHOTS=0` leaves them out, as
.ci/run does unless it is set."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from routerone.console.web import CONSOLE
from routerone.testing.harness import ADMIN_KEY, Gateway

CHROMIUM = os.environ.get("ROUTERONE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOTS = Path(__file__).parent / "screenshots"
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
OPERATOR_EMAIL = "ops@example.com"
OPERATOR_PASSWORD = "operator-password-1"


@pytest.fixture(scope="module")
def browser():
    """Per test module, not per session: Playwright's sync API keeps an event loop running in this
    thread while it is open, which would break every asyncio test that runs after it."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI is set, so the console browser tests must run", pytrace=False)
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class ConsoleGateway:
    gw: Gateway

    @property
    def url(self) -> str:
        return self.gw.url + "/console"

    def create_user(self, email: str, password: str, *, account_id: int, role: str = "user") -> None:
        users = self.gw.app[CONSOLE].users                      # type: ignore[index]
        self.gw.call(users.create(email, password, account_id=account_id, role=role))

    def secrets(self) -> list[str]:
        """Strings that must never appear in a page."""
        return [ADMIN_KEY, self.gw.settings.providers["openai"].api_key or "", "$argon2"]


@pytest.fixture
def console_gw(gateway) -> ConsoleGateway:
    gw = gateway()
    cg = ConsoleGateway(gw)
    admin_account = gw.admin("GET", "/admin/accounts")["data"][0]["id"]
    cg.create_user(OPERATOR_EMAIL, OPERATOR_PASSWORD, account_id=admin_account, role="operator")
    return cg


@pytest.fixture
def new_context(browser) -> Iterator:
    contexts = []

    def make(**opts):
        ctx = browser.new_context(viewport=LAPTOP, **opts)
        ctx.set_default_timeout(30_000)    # the machine may be busy
        contexts.append(ctx)
        return ctx
    yield make
    for ctx in contexts:
        ctx.close()


def sign_in(page, cg: ConsoleGateway, email: str, password: str) -> None:
    page.goto(cg.url + "/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def check_no_secrets(page, cg: ConsoleGateway, extra: tuple[str, ...] = ()) -> None:
    html = page.content()
    cookies = [c["value"] for c in page.context.cookies() if c["name"] == "ro_console"]
    for secret in [*cg.secrets(), *cookies, *extra]:
        assert secret and secret not in html, f"a secret reached {page.url}"


def shoot(page, name: str) -> None:
    """Full-page screenshots of the current page at laptop and phone widths (unless
    ROUTERONE_TEST_SCREENSHOTS=0)."""
    if os.environ.get("ROUTERONE_TEST_SCREENSHOTS", "1") == "0":
        return
    SCREENSHOTS.mkdir(exist_ok=True)
    for label, size in (("laptop", LAPTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(300)            # charts redraw for the new width (console.js, on resize)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(LAPTOP)

"""The operator's Providers page, in a real browser: a keyless vendor template (vllm, ollama: no key
to give) was labelled "no credentials", as if a key were missing; it says "keyless" now, and how to
turn it on, while a vendor that needs a key and has none still says "no credentials"; one with a key
and `enabled = false` said "no credentials" too and says "disabled" now (session 13). The built-in demo
provider, off because a provider is configured, said "no credentials" (it takes none); it says it is off
and how to turn it on (session 16)."""
from __future__ import annotations

from pathlib import Path

from conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD, ConsoleGateway, sign_in

from routerone.settings import ProviderSettings, Settings
from routerone.testing.harness import Gateway


def _statuses(page, cg) -> dict[str, str]:
    sign_in(page, cg, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    page.wait_for_url(cg.url + "/")
    page.goto(cg.url + "/operator/providers")
    return {row.query_selector("span.muted").inner_text(): row.query_selector_all("td")[2].inner_text()
            for row in page.query_selector_all("section.card:first-of-type tbody tr")}


def test_keyless_templates_are_labelled_keyless_not_missing_credentials(console_gw, new_context) -> None:
    cg = console_gw
    status = _statuses(new_context().new_page(), cg)
    for name in ("vllm", "ollama"):
        assert status[name] == f"keyless, off (add [providers.{name}])", status
    assert status["openai"] == "configured"
    assert status["demo"] == 'off (demo = "on" turns it on)', status     # demo = "auto", openai configured
    needs_key = [s for n, s in status.items() if n not in ("vllm", "ollama", "openai", "demo")]
    assert needs_key and all(s in ("no credentials", "configured") for s in needs_key), status


def test_a_provider_with_a_key_and_enabled_false_says_disabled(tmp_path: Path, fake_upstream, new_context) -> None:
    providers = {"openai": ProviderSettings(api_key="sk-fake-upstream-0123456789", base_url=fake_upstream.base_url),
                 "anthropic": ProviderSettings(api_key="sk-ant-off-0123456789", enabled=False),
                 "mistral": ProviderSettings(enabled=False)}
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'off.sqlite'}", demo="off", providers=providers)
    with Gateway(settings) as gw:
        cg = ConsoleGateway(gw)
        admin_account = gw.admin("GET", "/admin/accounts")["data"][0]["id"]
        cg.create_user(OPERATOR_EMAIL, OPERATOR_PASSWORD, account_id=admin_account, role="operator")
        page = new_context().new_page()
        status = _statuses(page, cg)
        assert status["anthropic"] == "disabled (enabled = false)", status
        assert status["mistral"] == "disabled (enabled = false)", status
        assert status["openai"] == "configured"
        assert status["demo"] == 'off (demo = "on" turns it on)', status
        assert "sk-ant-off-0123456789" not in page.content()
        page.close()

"""The operator's Providers page, in a real browser: a keyless vendor template (vllm, ollama: no key
to give) was labelled "no credentials", as if a key were missing; it says "keyless" now, and how to
turn it on, while a vendor that needs a key and has none still says "no credentials"."""
from __future__ import annotations

from conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD, sign_in


def test_keyless_templates_are_labelled_keyless_not_missing_credentials(console_gw, new_context) -> None:
    cg = console_gw
    page = new_context().new_page()
    sign_in(page, cg, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    page.wait_for_url(cg.url + "/")
    page.goto(cg.url + "/operator/providers")
    status = {row.query_selector("span.muted").inner_text(): row.query_selector_all("td")[2].inner_text()
              for row in page.query_selector_all("section.card:first-of-type tbody tr")}
    for name in ("vllm", "ollama"):
        assert status[name] == f"keyless, off (add [providers.{name}])", status
    assert status["openai"] == "configured"
    needs_key = [s for n, s in status.items() if n not in ("vllm", "ollama", "openai", "demo")]
    assert needs_key and all(s in ("no credentials", "configured") for s in needs_key), status

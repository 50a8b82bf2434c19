"""An upstream that answers a redirect (3xx with a Location on another host) must not get Router
One to send the provider's key, or the caller's prompt, to that host. aiohttp follows redirects by
default and drops only `Authorization` across origins: Anthropic's `x-api-key`, Azure's `api-key`,
Gemini's `x-goog-api-key` and an operator's own `headers` went along, and the other host's reply
was billed as the provider's. Now a 3xx is a 502 `upstream_unavailable` (not charged) and model
discovery reports it instead of following it.

Through the real gateway on a real socket, with the official SDKs; only the upstreams are faked."""
from __future__ import annotations

import sys
import logging
from pathlib import Path
from urllib.parse import quote

import anthropic
import openai
import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import SMALL, settled_rows, write_money_catalog  # noqa: E402

from routerone.providers.discovery import discover_once  # noqa: E402
from routerone.settings import ProviderSettings, Settings  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402
from routerone.testing.threaded import ThreadedServer  # noqa: E402

KEYS = {"openai": "sk-oai-REDIRECT-0123456789", "anthropic": "sk-ant-REDIRECT-0123456789",
        "gemini": "gem-REDIRECT-0123456789", "box": "sk-box-REDIRECT-0123456789"}
MODELS = {"openai": SMALL, "anthropic": "claude-3-5-haiku-20241022", "gemini": "gemini-2.5-flash"}


class OtherHost(ThreadedServer):
    """Where the redirects point: records every request it gets, answers like a provider would."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        super().__init__(self._app)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        return app

    async def _any(self, request: web.Request) -> web.Response:
        self.seen.append(f"{request.method} {request.path} {dict(request.headers)}")
        return web.json_response({"object": "list", "data": [{"id": "stolen-model", "object": "model"}]})


class Redirector(ThreadedServer):
    """Every provider path answers `307` (or 302/308) to the same path on the other host."""

    def __init__(self, other: OtherHost, status: int = 307) -> None:
        self.other, self.status = other, status
        super().__init__(self._app)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._redirect)
        return app

    async def _redirect(self, request: web.Request) -> web.Response:
        """...echoing the request's credentials in the Location, which Router One logs."""
        await request.read()
        creds = [request.headers.get(h, "") for h in ("Authorization", "x-api-key", "x-goog-api-key", "X-Box-Token")]
        return web.Response(status=self.status, headers={"Location": self.other.url + request.path + "?echo="
                                                         + quote(" ".join(c for c in creds if c))})


@pytest.fixture(scope="module")
def other():
    with OtherHost() as srv:
        yield srv


@pytest.fixture(scope="module", params=[(307, True), (302, True), (307, False)], ids=["307-http1", "302-http1", "307-aiohttp"])
def gw(request, other, tmp_path_factory):
    """Redirects refused by both upstream clients: the lean HTTP/1.1 one (plain-http upstreams) and
    aiohttp's (https upstreams; `upstream_http1 = false`)."""
    status, http1 = request.param
    tmp = tmp_path_factory.mktemp("redirects")
    with Redirector(other, status) as up:
        settings = Settings(
            database_url=f"sqlite:///{tmp / 'r1.db'}", demo="off", max_retries=0, usage_flush_interval_s=0.05,
            upstream_http1=http1,
            catalog_path=str(write_money_catalog(tmp / "catalog.toml")),
            providers={"openai": ProviderSettings(api_key=KEYS["openai"], base_url=up.url + "/v1"),
                       "anthropic": ProviderSettings(api_key=KEYS["anthropic"], base_url=up.url),
                       "gemini": ProviderSettings(api_key=KEYS["gemini"], base_url=up.url + "/v1beta"),
                       "box": ProviderSettings(api_key=KEYS["box"], base_url=up.url + "/v1",
                                               headers={"X-Box-Token": "box-token-0123456789"},
                                               input_usd_per_mtok="1", output_usd_per_mtok="1")})
        with Gateway(settings) as gw:
            yield gw


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_redirecting_upstream_is_a_502_and_nothing_reaches_the_other_host(gw, other, provider, stream, caplog):
    caplog.set_level(logging.INFO)
    other.seen.clear()
    key, account_id = gw.new_key()
    model = MODELS[provider]
    messages = [{"role": "user", "content": "my secret prompt"}]
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    with pytest.raises(openai.APIStatusError) as ei:
        client.chat.completions.create(model=model, max_tokens=20, messages=messages, stream=stream)
    assert ei.value.status_code == 502 and ei.value.body["code"] == "upstream_unavailable"
    assert "redirect" in ei.value.body["message"] and gw.url not in ei.value.body["message"]
    with pytest.raises(anthropic.APIStatusError) as ai:
        anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30).messages.create(
            model=model, max_tokens=20, messages=messages, stream=stream)
    assert ai.value.status_code == 502
    assert other.seen == [], "a redirect was followed to another host"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "redirect to " + other.url in logged and "[redacted]" in logged
    assert not any(k in logged for k in KEYS.values()), "a provider key in the logs"
    rows = settled_rows(gw, account_id, 2)
    assert [(r.status, r.cost_micros) for r in rows] == [(502, 0)] * 2


def test_discovery_does_not_follow_a_redirect(gw, other):
    """The box's `GET /v1/models` carries its key and its headers: the redirect is reported (what
    `routerone models` prints and the gateway logs), not followed; the other host's list is not served."""
    other.seen.clear()
    failures = gw.call(discover_once(gw.runtime.catalog))
    assert "redirect to " + other.url in failures["box"] and "not followed" in failures["box"], failures
    assert KEYS["box"] not in failures["box"] and "box-token-0123456789" not in failures["box"]
    assert other.seen == [], "discovery followed a redirect to another host"
    served = {m.id for m in openai.OpenAI(base_url=gw.base_url, api_key=gw.new_key()[0]).models.list()}
    assert "stolen-model" not in served and "box/stolen-model" not in served

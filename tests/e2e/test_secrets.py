"""Provider credentials never reach a client, the admin API, metrics or the logs."""
from __future__ import annotations

import logging
import urllib.request

import openai
import pytest

from routerone.testing import fake_openai
from routerone.testing.harness import Gateway
from routerone.testing.threaded import ThreadedServer

PROVIDER_KEY = "sk-provider-TOPSECRET-0123456789"


def _get(url: str, key: str) -> str:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode() + str(dict(r.headers))


def test_provider_key_is_never_shown(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    # the upstream wants a different key, so it answers 401 (and its body names what it got)
    with ThreadedServer(lambda: fake_openai.make_app(api_key="sk-the-right-one")) as up:
        gw = Gateway.for_upstreams(str(tmp_path / "r.db"), {"openai": (up.url + "/v1", PROVIDER_KEY)},
                                   max_retries=0)
        with gw:
            key, _ = gw.new_key()
            client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
            with pytest.raises(openai.APIStatusError) as exc:
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            assert exc.value.status_code == 502
            assert exc.value.body["code"] == "upstream_auth_failed"
            seen = [exc.value.response.text, str(dict(exc.value.response.headers))]
            with pytest.raises(openai.APIStatusError):
                list(client.chat.completions.create(model="gpt-4o", stream=True,
                                                    messages=[{"role": "user", "content": "hi"}]))
            for path in ("/v1/models", "/metrics", "/admin/health", "/admin/usage", "/admin/keys"):
                seen.append(_get(gw.url + path, gw.settings.admin_key))
            seen.append(repr(gw.runtime.catalog.vendors["openai"]))
    seen.extend(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert all(PROVIDER_KEY not in s for s in seen)
    assert any("/admin/keys" in s or "prefix" in s for s in seen)    # the scan did read those pages

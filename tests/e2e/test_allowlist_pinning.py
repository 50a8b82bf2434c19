"""A key's allowlist entry `provider/model` pins the provider: the key's requests for that model (by
its bare name, `provider/model`, or through `auto`) are served only by that provider's deployments,
and failover stays among them. A bare model name keeps meaning any provider. Two fake upstreams
serve the same model name `gpt-4o`."""
from __future__ import annotations

import json
import urllib.request

import openai
import pytest

from routerone.testing import fake_openai
from routerone.testing.harness import Gateway
from routerone.testing.threaded import ThreadedServer

CATALOG = """
replace_shipped_models = true

[[model]]
id = "gpt-4o"
provider = "openai"
upstream = "up-openai"
context_window = 100000
max_output = 100
quality = 0.9
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"

[[model]]
id = "m-other"
provider = "together"
upstream = "up-other"
context_window = 100000
max_output = 100
quality = 0.95
input_usd_per_mtok = "0.1"
output_usd_per_mtok = "0.2"

[[deployment]]
model = "gpt-4o"
provider = "together"
upstream = "up-together"
weight = 50
"""
HI = [{"role": "user", "content": "hi"}]


def _faults(server: ThreadedServer, faults: list[dict]) -> None:
    req = urllib.request.Request(server.url + "/_control/faults", data=json.dumps({"faults": faults}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=5).read()


def _seen(server: ThreadedServer) -> list[str]:
    return [r["model"] for r in server.app["fake"].requests]


@pytest.fixture
def env(tmp_path):
    """A = provider openai (gpt-4o), B = provider together (gpt-4o, weighted 50:1 over A, and m-other);
    `client(models)`: an SDK client on a new key with that allowlist."""
    (tmp_path / "catalog.toml").write_text(CATALOG)
    with ThreadedServer(fake_openai.make_app) as a, ThreadedServer(fake_openai.make_app) as b:
        gw = Gateway.for_upstreams(str(tmp_path / "r.db"),
                                   {"openai": (a.url + "/v1", "sk-a"), "together": (b.url + "/v1", "sk-b")},
                                   catalog_path=str(tmp_path / "catalog.toml"), max_retries=1)
        with gw:
            def client(models: list[str]) -> openai.OpenAI:
                key, _ = gw.new_key(allowed_models=models)
                return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
            yield a, b, client


@pytest.mark.parametrize("name", ["gpt-4o", "openai/gpt-4o"])
def test_a_provider_model_entry_serves_the_model_only_through_that_provider(env, name):
    a, b, client = env
    c = client(["openai/gpt-4o"])
    for _ in range(10):      # the together deployment weighs 50 times more: without the pin B answers most
        raw = c.chat.completions.with_raw_response.create(model=name, messages=HI)
        assert raw.headers["x-routerone-provider"] == "openai"
    assert _seen(b) == [] and _seen(a) == ["up-openai"] * 10


def test_failover_stays_within_the_pinned_provider(env):
    a, b, client = env
    _faults(a, [{"status": 503}] * 2)
    with pytest.raises(openai.APIStatusError) as exc:
        client(["openai/gpt-4o"]).chat.completions.create(model="gpt-4o", messages=HI)
    assert exc.value.status_code >= 500
    assert _seen(b) == []


def test_the_other_providers_deployment_is_refused_to_a_pinned_key(env):
    a, b, client = env
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client(["openai/gpt-4o"]).chat.completions.create(model="together/gpt-4o", messages=HI)
    assert exc.value.body["code"] == "model_not_allowed"
    assert _seen(a) == [] and _seen(b) == []


def test_auto_with_a_pinned_key_considers_only_that_providers_deployments(env):
    a, b, client = env
    c = client(["openai/gpt-4o", "auto"])
    for i in range(6):
        raw = c.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": f"hi {i}"}])
        assert (raw.headers["x-routerone-model"], raw.headers["x-routerone-provider"]) == ("gpt-4o", "openai")
    assert _seen(b) == []


def test_a_bare_model_entry_still_means_any_provider(env):
    a, b, client = env
    _faults(a, [{"status": 503}] * 20)
    c = client(["gpt-4o"])
    for _ in range(3):          # A fails every time: B (the same model, another provider) answers
        raw = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
        assert raw.headers["x-routerone-provider"] == "together"
    assert "up-together" in _seen(b)


def test_two_pinned_providers_share_the_model(env):
    a, b, client = env
    _faults(a, [{"status": 503}])
    c = client(["openai/gpt-4o", "together/gpt-4o"])
    seen = {c.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI).headers["x-routerone-provider"]
            for _ in range(3)}
    assert "together" in seen


@pytest.mark.parametrize("entry,providers", [("*/gpt-4o", {"openai", "together"}), ("open*/gpt-4o", {"openai"}),
                                             ("tog*/gpt-4*", {"together"})])
def test_a_pattern_in_the_provider_part_pins_the_providers_it_matches(env, entry, providers):
    """`*/gpt-4o` allowed nothing (a 403 for every request: no provider is named `*`), where before
    this session's pinning it allowed gpt-4o through any provider; a provider pattern now pins the
    providers it matches."""
    a, b, client = env
    c = client([entry])
    seen = {c.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI).headers["x-routerone-provider"]
            for _ in range(12)}
    assert seen <= providers and seen, seen
    if providers == {"openai"}:
        assert _seen(b) == []

"""OpenAI-compatible vendors are rows of data: URL, auth header, renamed and dropped params."""
from __future__ import annotations

import orjson
import pytest

from routerone.catalog import load_catalog
from routerone.errors import UnsupportedParameter
from routerone.providers.openai_compat import OpenAICompatAdapter
from routerone.settings import ProviderSettings, Settings
from routerone.wire.chat import validate_body

BODY = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 5,
        "seed": 7, "logit_bias": {"1": 2}, "top_k": 3}


def build(vendor: str, body: dict | None = None, **conf):
    settings = Settings(demo="off", providers={vendor: ProviderSettings(api_key="sk-secret", **conf)})
    cat = load_catalog(settings)
    dep = next(m for m in cat.models.values() if m.provider == vendor).deployments[0] if vendor != "azure" else None
    if dep is None:
        from routerone.providers.base import Deployment
        dep = Deployment("gpt-4o", cat.vendors["azure"], "my-gpt4o-deployment")
    req = OpenAICompatAdapter().build_request(validate_body(dict(BODY if body is None else body)), dep, stream=True)
    return req, orjson.loads(req.body)


def test_azure_is_data_deployment_url_api_key_header_and_version():
    req, body = build("azure", base_url="https://acme.openai.azure.com", api_version="2024-10-21")
    assert req.url == ("https://acme.openai.azure.com/openai/deployments/my-gpt4o-deployment/chat/completions"
                       "?api-version=2024-10-21")
    assert req.headers["api-key"] == "sk-secret" and "Authorization" not in req.headers
    assert body["stream_options"] == {"include_usage": True}


def test_mistral_renames_drops_hints_and_refuses_what_it_lacks():
    req, body = build("mistral", {**{k: v for k, v in BODY.items() if k != "logit_bias"}, "user": "u-1"})
    assert req.url == "https://api.mistral.ai/v1/chat/completions"
    assert req.headers["Authorization"] == "Bearer sk-secret"
    assert body["max_tokens"] == 5 and "max_completion_tokens" not in body
    assert body["random_seed"] == 7 and "seed" not in body
    assert "user" not in body and body["top_k"] == 3       # a hint dropped; unknown extras pass through
    with pytest.raises(UnsupportedParameter) as exc:       # logit_bias changes the answer: refused, not dropped
        build("mistral")
    assert exc.value.param == "logit_bias"


def test_openai_passes_everything_through():
    _, body = build("openai")
    for k in ("max_completion_tokens", "seed", "logit_bias", "top_k"):
        assert body[k] == BODY[k]


@pytest.mark.parametrize("conf, renamed", [({}, True), ({"api_key": "sk-box"}, True),
                                           ({"prices": "openai", "api_key": "sk-proxy"}, False)])
def test_an_operator_named_server_gets_the_cap_as_max_tokens_unless_it_is_a_priced_proxy(conf, renamed):
    """Ollama reads only `max_tokens`; a proxy in front of OpenAI (`prices = "openai"`) keeps
    `max_completion_tokens`, which OpenAI's reasoning models require."""
    from routerone.providers.base import Deployment
    settings = Settings(demo="off", providers={"box": ProviderSettings(base_url="http://box:11434/v1", **conf)})
    vendor = load_catalog(settings).vendors["box"]
    req = OpenAICompatAdapter().build_request(validate_body(dict(BODY)), Deployment("m", vendor, "m"), stream=False)
    body = orjson.loads(req.body)
    assert (body.get("max_tokens"), body.get("max_completion_tokens")) == ((5, None) if renamed else (None, 5))


@pytest.mark.parametrize("conf, says", [
    ({"embedding_models": ("nomic*",)}, "no wildcards"),
    ({"embedding_models": ("nomic",), "api_key": "sk-box"}, "input_usd_per_mtok"),
    ({"embedding_models": ("nomic",), "protocol": "anthropic"}, "openai protocol")])
def test_embedding_models_that_could_not_be_served_are_a_start_up_error(conf, says):
    from routerone.settings import SettingsError
    settings = Settings(demo="off", providers={"box": ProviderSettings(base_url="http://box:11434/v1", **conf)})
    with pytest.raises(SettingsError, match=says):
        load_catalog(settings)


def test_a_servers_embedding_models_are_embedders_not_chat_models():
    from routerone.embedding_catalog import load_embedding_models
    settings = Settings(demo="off", providers={"box": ProviderSettings(base_url="http://box:11434/v1",
                                                                       embedding_models=("nomic-embed-text:latest",))})
    cat = load_catalog(settings)
    assert not cat.providers["box"].wants("nomic-embed-text:latest") and cat.providers["box"].wants("llama3.2:latest")
    emb = load_embedding_models(cat)
    for mid in ("nomic-embed-text:latest", "box/nomic-embed-text:latest"):
        assert emb[mid].configured and emb[mid].info.price.input_micros_per_mtok == 0
        assert emb[mid].info.deployments[0].upstream_model == "nomic-embed-text:latest"


def test_a_known_paid_vendor_takes_no_embedding_models():
    from routerone.settings import SettingsError
    with pytest.raises(SettingsError, match="built in"):
        load_catalog(Settings(demo="off", providers={"openai": ProviderSettings(
            api_key="sk-x", embedding_models=("my-embedder",))}))

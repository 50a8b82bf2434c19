"""The catalog: every model priced from genai-prices or Router One's own data, converted exactly to
integer micro-dollars; operator-named providers; strict rows; discovered models' default profile."""
from __future__ import annotations

import datetime as dt

import pytest

from routerone.billing.pricebook import lookup_price, vendor_models
from routerone.billing.prices import Price
from routerone.catalog import DEFAULT_PROFILE, CatalogError, discovered_model, load_catalog
from routerone.catalog_rows import _ROW_TYPES
from routerone.providers.discovery import DiscoveryError, _parse
from routerone.providers.vendors import shipped
from routerone.settings import ProviderSettings, Settings
from routerone.wire.types import Usage

ALL_KEYS = {name: ProviderSettings(api_key="k") for name in shipped("vendors.toml") if name != "demo"}


def test_every_shipped_model_has_a_price_from_one_source_or_the_other():
    cat = load_catalog(Settings(demo="on", providers=ALL_KEYS))
    rows = shipped("models.toml")["model"]
    assert {r["id"] for r in rows} == set(cat.models)
    for m in cat.models.values():
        assert m.price_source in ("genai-prices", "catalog"), m.id
        assert m.price.input_micros_per_mtok > 0 and m.price.output_micros_per_mtok > 0, m.id
        assert m.profile == "catalog", m.id          # and every shipped row has its own capabilities
    by_source = {m.id: m.price_source for m in cat.models.values()}
    assert by_source["demo-small"] == "catalog" and by_source["gpt-4o"] == "genai-prices"


def test_shipped_rows_only_hold_what_genai_prices_lacks():
    for r in shipped("models.toml")["model"]:
        priced_here = any(k.endswith("_usd_per_mtok") for k in r)
        assert priced_here == (r["provider"] == "demo"), r["id"]
        assert set(r) <= set(_ROW_TYPES), r["id"]


def test_prices_are_exact_integer_micro_dollars():
    gpt = lookup_price("openai", "gpt-4o")
    assert gpt == Price(2_500_000, 10_000_000, 1_250_000)
    assert lookup_price("openai", "gpt-4o-mini").cached_input_micros_per_mtok == 75_000   # $0.075 exactly
    assert lookup_price("openai", "no-such-model") is None and lookup_price(None, "gpt-4o") is None


def test_tiered_price_charges_the_whole_long_request_at_the_higher_rate():
    pro = lookup_price("google", "gemini-2.5-pro")
    assert pro.long_context_from_tokens == 200_000 and pro.long_context is not None
    short = pro.cost_micros(Usage(prompt_tokens=200_000, completion_tokens=0))
    long = pro.cost_micros(Usage(prompt_tokens=200_001, completion_tokens=0))
    assert short == 200_000 * pro.input_micros_per_mtok // 1_000_000
    assert long == -(-200_001 * pro.long_context.input_micros_per_mtok // 1_000_000) > 2 * short - 10
    assert pro.worst_case_micros(300_000, 10) == pro.long_context.worst_case_micros(300_000, 10)


def test_time_of_day_prices_use_the_highest_and_dated_prices_the_current():
    ds = lookup_price("deepseek", "deepseek-chat")     # off-peak discount: charge the standard price
    assert ds.input_micros_per_mtok == 270_000 and ds.output_micros_per_mtok == 1_100_000
    # claude-opus-4-6 dropped its long-context tier on 2026-03-13 (genai-prices' dated prices)
    before = lookup_price("anthropic", "claude-opus-4-6", today=dt.date(2026, 3, 12))
    after = lookup_price("anthropic", "claude-opus-4-6", today=dt.date(2026, 3, 13))
    assert before.long_context is not None and before.long_context.input_micros_per_mtok == 10_000_000
    assert after.long_context is None and after.input_micros_per_mtok == 5_000_000


def test_every_priced_vendor_model_converts():
    n = 0
    for name, row in shipped("vendors.toml").items():
        for mid, price in vendor_models(row.get("prices")):
            assert isinstance(price.input_micros_per_mtok, int) and price.input_micros_per_mtok >= 0, (name, mid)
            n += 1
    assert n > 500     # the catalog's size across the shipped vendors


def test_operator_named_provider_with_explicit_models_and_default_profile():
    s = Settings(providers={"gpubox": ProviderSettings(base_url="http://127.0.0.1:9/v1", models=("llama-3-8b",),
                                                       discover=False)})
    cat = load_catalog(s)
    m = cat.resolve("llama-3-8b")
    assert m.provider == "gpubox" and m.profile == "default" and m.price == Price() and m.price_source == "keyless"
    assert (m.context_window, m.max_output, m.quality) == (DEFAULT_PROFILE["context_window"],
                                                           DEFAULT_PROFILE["max_output"], DEFAULT_PROFILE["quality"])
    assert cat.resolve("gpubox/llama-3-8b").id == "llama-3-8b"
    assert not cat.vendors["demo"].configured                     # a provider exists: no demo


def test_paid_vendor_named_model_without_price_is_an_error():
    s = Settings(providers={"openai": ProviderSettings(api_key="k", models=("gpt-4o", "my-finetune"))})
    with pytest.raises(CatalogError, match="my-finetune"):
        load_catalog(s)
    s = Settings(providers={"openai": ProviderSettings(api_key="k", models=("gpt-4o", "my-finetune"),
                                                       input_usd_per_mtok="3", output_usd_per_mtok="12")})
    cat = load_catalog(s)
    assert cat.resolve("my-finetune").price == Price(3_000_000, 12_000_000)
    assert cat.resolve("my-finetune").price_source == "provider"
    assert {m.id for m in cat.available()} == {"gpt-4o", "my-finetune"}      # narrowed to what was named


def test_known_vendor_wildcard_enables_priced_models():
    cat = load_catalog(Settings(providers={"openai": ProviderSettings(api_key="k", models=("gpt-4.1*",))}))
    ids = {m.id for m in cat.available()}
    assert {"gpt-4.1", "gpt-4.1-mini"} <= ids and "gpt-4o" not in ids
    assert all(m.price_source == "genai-prices" for m in cat.available())


def test_catalog_row_without_context_window_gets_defaults_not_keyerror(tmp_path):
    p = tmp_path / "cat.toml"
    p.write_text('[[model]]\nid = "tiny"\nprovider = "box"\n')
    cat = load_catalog(Settings(catalog_path=str(p), providers={"box": ProviderSettings(base_url="http://x/v1")}))
    m = cat.resolve("tiny")
    assert m.context_window == DEFAULT_PROFILE["context_window"] and m.profile == "default"


def test_unknown_price_refused_on_a_keyed_provider_unless_set():
    s = Settings(providers={"paid": ProviderSettings(base_url="http://x/v1", api_key="k")})
    entry = load_catalog(s).providers["paid"]
    assert discovered_model(entry, "llama") is None
    s = Settings(providers={"paid": ProviderSettings(base_url="http://x/v1", api_key="k", input_usd_per_mtok="0")})
    assert discovered_model(load_catalog(s).providers["paid"], "llama").price == Price()


def test_discovery_parses_only_what_it_can_trust():
    listing = _parse(b'{"data": [{"id": "a", "max_model_len": 4096}, {"id": "b", "max_model_len": true}, {"x": 1}, 3, '
                     b'{"id": "a b"}, {"id": "a"}, {"id": "c\\u0000"}]}', "u")
    assert listing.models == [("a", 4096), ("b", None)]
    assert (listing.refused, listing.first_refused) == (2, "a b")      # left out, and said (discovery's log)
    for bad in (b"nope", b"[]", b'{"data": 1}', b'{"object": "list"}'):
        with pytest.raises(DiscoveryError, match="not an OpenAI model list"):
            _parse(bad, "u")


def test_provider_setting_types_and_protocols():
    cat = load_catalog(Settings(providers={
        "claude-proxy": ProviderSettings(base_url="https://proxy.example/anthropic", protocol="anthropic", api_key="k",
                                         headers={"x-team": "a"}),
        "az": ProviderSettings(base_url="https://acme.openai.azure.com", protocol="azure", api_key="k")}))
    v = cat.vendors["claude-proxy"]
    assert (v.protocol, v.auth, dict(v.headers)) == ("anthropic", "x-api-key", {"x-team": "a"})
    az = cat.vendors["az"]
    assert (az.protocol, az.auth, az.query["api-version"]) == ("openai", "api-key", "2024-10-21")
    assert not cat.providers["az"].discover and not cat.providers["claude-proxy"].discover


def test_usd_prices_in_settings_are_exact():
    s = Settings(providers={"box": ProviderSettings(base_url="http://x/v1", input_usd_per_mtok="0.000001",
                                                    output_usd_per_mtok="1.5")})
    assert load_catalog(s).providers["box"].unknown_price == Price(1, 1_500_000)


def test_operator_named_provider_of_a_vendor_protocol_uses_that_vendors_prices():
    s = Settings(providers={
        "claude-proxy": ProviderSettings(base_url="https://proxy.example", protocol="anthropic", api_key="k",
                                         models=("claude-sonnet-4-20250514",)),
        "oai-proxy": ProviderSettings(base_url="https://proxy.example/v1", api_key="k", prices="openai",
                                      models=("gpt-4o-mini",), discover=False)})
    cat = load_catalog(s)
    assert cat.resolve("claude-proxy/claude-sonnet-4-20250514").price == lookup_price("anthropic", "claude-sonnet-4-20250514")
    assert cat.resolve("oai-proxy/gpt-4o-mini").price == Price(150_000, 600_000, 75_000)


@pytest.mark.parametrize("name, text", [
    ("cat.json", '{"aliases": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("cat.toml", "[aliases]\na = " + "[" * 100_000 + "]" * 100_000 + "\n"),
])
def test_a_catalog_nested_too_deep_is_a_catalog_error_not_a_traceback(tmp_path, name, text):
    """json and tomllib raised RecursionError: `routerone models` (and serve) ended in a traceback."""
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(CatalogError, match=f"{name}.*nested too deep"):
        load_catalog(Settings(catalog_path=str(p)))


@pytest.mark.parametrize("key, value", [("aliases", "[1" + ", 1" * 500_000 + "]"), ("fallbacks", "[" * 950 + "]" * 950),
                                        ("aliases", '"gpt-4o", "b": ' + "[" * 950 + "]" * 950)])
def test_a_catalog_value_of_the_wrong_type_is_shown_shortened(tmp_path, key, value):
    """A 1 MB alias target was a 1.5 MB error line (and one nested 950 deep could pass its repr's depth)."""
    p = tmp_path / "cat.json"
    p.write_text(f'{{"{key}": {{"a": {value}}}}}')
    with pytest.raises(CatalogError, match=f"{key}") as exc:
        load_catalog(Settings(catalog_path=str(p)))
    assert len(str(exc.value)) < 300

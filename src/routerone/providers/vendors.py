"""Providers as data: the shipped vendor rows (`data/vendors.toml`) merged with the operator's
`[providers.<any-name>]` tables into one `ProviderEntry` per provider.

A known vendor name starts from that vendor's row (URL, auth style, quirks, where its prices come
from); any other name starts from its `protocol`'s defaults (openai unless set) and needs a
`base_url`. Choices made here, documented in the README:
- a Gemini `base_url` without a version path gets `/v1beta` appended, with a warning (every call
  would otherwise be a misleading 404);
- a model with no known price is served at the provider's `input/output_usd_per_mtok`; without
  them, at 0 when the provider has no API key (self-hosted), else it is refused (never silently
  free on a paid account).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from ..billing.prices import Price, price_to_micros
from ..settings import PROVIDER_ENV_KEYS, ProviderSettings, Settings, SettingsError
from .base import Vendor

__all__ = ["ProviderEntry", "build_providers", "shipped", "keyless_templates"]

# what a provider named by the operator starts from, per protocol
_PROTOCOL_DEFAULTS: dict[str, dict[str, Any]] = {
    "openai": {"protocol": "openai", "auth": "bearer"},
    "anthropic": {"protocol": "anthropic", "auth": "x-api-key"},
    "gemini": {"protocol": "gemini", "auth": "x-goog-api-key"},
    "azure": {"protocol": "openai", "auth": "api-key", "chat_path": "/openai/deployments/{model}/chat/completions",
              "query": {"api-version": "2024-10-21"}},
}
# an operator-named OpenAI-protocol provider with no `prices` (a self-hosted server, not a proxy in front
# of a paid vendor) gets the cap as `max_tokens`, which every such server reads: Ollama reads only it
# (ollama/ollama openai/openai.go ChatCompletionRequest) and ignored `max_completion_tokens`
_SELF_HOSTED_RENAME = {"max_completion_tokens": "max_tokens"}
_KNOWN_PROTOCOL = {"azure": "azure"}
# whose prices an operator-named provider of this protocol charges, unless it says (`prices`)
_PROTOCOL_PRICES = {"anthropic": "anthropic", "gemini": "google", "azure": "azure"}   # shipped vendor rows whose `protocol` setting is not their wire protocol


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    vendor: Vendor
    known: bool                           # a shipped vendor row, not an operator-named provider
    prices_id: str | None                 # the vendor's id in genai-prices
    discover: bool
    patterns: tuple[str, ...]             # the operator's model names / wildcards; () = all
    unknown_price: Price | None           # for models without a known price; None = refuse them
    discovery_interval_s: float = 300.0
    timeouts: tuple[float | None, ...] = (None, None, None, None)   # connect, first byte, idle, stream
    rpm: int | None = None                # upstream caps for every deployment on this provider
    tpm: int | None = None
    enabled: bool = True                  # false: `enabled = false` turned it off (its key, if any, dropped)
    embedding_models: tuple[str, ...] = ()   # served on /v1/embeddings (embedding_catalog), never as chat models

    @property
    def name(self) -> str:
        return self.vendor.name

    def wants(self, model: str) -> bool:
        """A chat model this provider serves (of those it lists or the catalog knows)."""
        if model in self.embedding_models:
            return False
        return not self.patterns or any(fnmatch.fnmatchcase(model, p) for p in self.patterns)

    @property
    def exact_models(self) -> tuple[str, ...]:
        return tuple(p for p in self.patterns if not any(c in p for c in "*?["))


def shipped(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("routerone.providers").joinpath("data").joinpath(name).read_text())


@functools.cache
def keyless_templates() -> frozenset[str]:
    """Shipped vendors that take no key (vllm, ollama): off until a [providers.<name>] table names them."""
    return frozenset(n for n, row in shipped("vendors.toml").items() if not row.get("needs_key", True) and n != "demo")


def _vendor_from_row(name: str, raw: dict[str, Any]) -> Vendor:
    return Vendor(name=name, protocol=raw["protocol"], base_url=raw.get("base_url", ""),
                  auth=raw.get("auth", "bearer"), chat_path=raw.get("chat_path", "/chat/completions"),
                  query=dict(raw.get("query", {})), rename=dict(raw.get("rename", {})),
                  drop=tuple(raw.get("drop", ())), refuse=tuple(raw.get("refuse", ())),
                  stream_usage=raw.get("stream_usage", True),
                  needs_key=raw.get("needs_key", True), label=raw.get("label", name))


def _gemini_url(name: str, url: str, warnings: list[str]) -> str:
    path = urlsplit(url).path.rstrip("/")
    if path.endswith(("/v1beta", "/v1", "/v1alpha")):
        return url
    fixed = url.rstrip("/") + "/v1beta"
    warnings.append(f"providers.{name}.base_url: {url!r} has no API version path; using {fixed!r}")
    return fixed


def _unknown_price(name: str, conf: ProviderSettings, vendor: Vendor) -> Price | None:
    if conf.input_usd_per_mtok is None and conf.output_usd_per_mtok is None:
        return Price() if not vendor.needs_key and not vendor.api_key else None
    where = f"providers.{name}"
    return Price(price_to_micros(conf.input_usd_per_mtok or 0, what=f"{where}.input_usd_per_mtok"),
                 price_to_micros(conf.output_usd_per_mtok or 0, what=f"{where}.output_usd_per_mtok"))


def _entry(name: str, raw: dict[str, Any] | None, conf: ProviderSettings, port: int,
           warnings: list[str], named: bool) -> ProviderEntry:
    """`named`: the operator wrote a [providers.<name>] table (keyless vendors such as vllm are
    templates, off until named)."""
    known = raw is not None
    if raw is None:
        if not conf.base_url:
            raise SettingsError(f"providers.{name}.base_url: required for a provider that is not a known vendor "
                                f"(known: {', '.join(sorted(n for n in shipped('vendors.toml') if n != 'demo'))})")
        raw = {**_PROTOCOL_DEFAULTS[conf.protocol or "openai"], "needs_key": False, "label": name}
        if (conf.protocol or "openai") == "openai" and not conf.prices:
            raw["rename"] = _SELF_HOSTED_RENAME
    elif conf.protocol is not None and conf.protocol != _KNOWN_PROTOCOL.get(name, raw["protocol"]):
        raw = {**raw, **_PROTOCOL_DEFAULTS[conf.protocol]}
    v = _vendor_from_row(name, raw)
    query = {**v.query, "api-version": conf.api_version} if conf.api_version else v.query
    v = dataclasses.replace(v, api_key=conf.api_key or v.api_key, base_url=conf.base_url or v.base_url,
                            query=query, headers={**v.headers, **conf.headers})
    if v.protocol == "gemini":
        v = dataclasses.replace(v, base_url=_gemini_url(name, v.base_url, warnings))
    if not conf.enabled or (known and not v.needs_key and name != "demo" and not named):
        v = dataclasses.replace(v, api_key=None, needs_key=True)     # off: disabled, or a keyless template
    discover = conf.discover if conf.discover is not None else \
        raw.get("discover", not known and v.protocol == "openai" and "{model}" not in v.chat_path)
    try:
        price = _unknown_price(name, conf, v)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    prices_id = conf.prices or raw.get("prices") or (None if known else _PROTOCOL_PRICES.get(conf.protocol or ""))
    _check_embedding_models(name, conf, v, known, price)
    return ProviderEntry(v, known, prices_id, bool(discover) and conf.enabled, conf.models, price,
                         conf.discovery_interval_s,
                         (conf.connect_timeout_s, conf.first_byte_timeout_s, conf.idle_timeout_s, conf.stream_timeout_s),
                         conf.rpm, conf.tpm,
                         conf.enabled, conf.embedding_models)


def _check_embedding_models(name: str, conf: ProviderSettings, v: Vendor, known: bool, price: Price | None) -> None:
    """`embedding_models` names a self-hosted server's embedders: an OpenAI-protocol provider the
    operator named or a keyless template (vllm, ollama), with a price for them (keyless: 0; else
    `input_usd_per_mtok`)."""
    if not conf.embedding_models:
        return
    where = f"providers.{name}.embedding_models"
    if (known and name not in keyless_templates()) or v.protocol != "openai" or "{model}" in v.chat_path:
        raise SettingsError(f"{where}: only for a self-hosted server (a provider you name that speaks the openai "
                            "protocol, or the vllm / ollama template); a known vendor's embedding models are built in")
    if price is None:
        raise SettingsError(f"{where}: a provider with an API key needs input_usd_per_mtok to price them")
    for m in conf.embedding_models:
        if not m or not m.isprintable() or " " in m or "," in m or any(c in m for c in "*?["):
            raise SettingsError(f"{where}: {m!r} is not a model name (exact names, no wildcards)")


def build_providers(settings: Settings, port: int) -> tuple[dict[str, ProviderEntry], list[str]]:
    """Every shipped vendor plus every operator-named provider; warnings for what was fixed up."""
    rows = shipped("vendors.toml")
    warnings: list[str] = []
    out: dict[str, ProviderEntry] = {}
    for name in [*rows, *(n for n in settings.providers if n not in rows)]:
        out[name] = _entry(name, rows.get(name), settings.providers.get(name, ProviderSettings()), port, warnings,
                           named=name in settings.providers)
    for name, conf in settings.providers.items():
        warning = _serves_nothing(out[name], conf)
        if warning:
            warnings.append(f"providers.{name}: {warning}")
    return out, warnings


def _serves_nothing(e: ProviderEntry, conf: ProviderSettings) -> str | None:
    """Why a provider table the operator wrote serves no model, said at start: each was silent (and
    with no other provider, the demo answered instead)."""
    if not conf.enabled:
        return None
    if not e.vendor.configured:       # `[providers.openai] base_url = "http://my-box/v1"` and no key
        var = PROVIDER_ENV_KEYS.get(e.name)
        return (f"off: it needs an API key (api_key = ...{f', or {var} in the environment' if var else ''}); "
                "a server that takes no key is a provider of another name, e.g. [providers.mybox]")
    if not e.known and not e.discover and not e.exact_models:
        why = "discover = false" if conf.discover is False else f"no model discovery for protocol {e.vendor.protocol}"
        return f"serves no model ({why}): name them, e.g. models = [\"my-model\"]"
    return None

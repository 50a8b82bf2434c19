"""`[providers.<name>]` tables: ProviderSettings and their checks, plus provider keys taken from the
environment variables users already have (OPENAI_API_KEY, ...). Re-exported by `routerone.settings`.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .billing.prices import price_to_micros
from .settings_readers import SettingsError, _check_url, _coerce, _f, _resolve_secret, _type_of

__all__ = ["ProviderSettings", "PROTOCOLS", "PROVIDER_ENV_KEYS"]

PROTOCOLS = ("openai", "anthropic", "gemini", "azure")


@dataclass(frozen=True)
class ProviderSettings:
    """One `[providers.<name>]` table. The name is the operator's; known vendor names
    (providers/data/vendors.toml) start from that vendor's defaults."""
    base_url: str | None = _f(None, "where the provider is, e.g. `http://gpu-box:8000/v1` (required for a new name)")
    api_key: str | None = _f(None, "credential; `{\"$env\" = \"NAME\"}` to read it from the environment")
    protocol: str | None = _f(None, "openai (default) \\| anthropic \\| gemini \\| azure")
    api_version: str | None = _f(None, "Azure `api-version` query parameter")
    headers: Mapping[str, str] = _f(dict, "extra HTTP headers sent with every upstream request")
    enabled: bool = _f(True, "false: the provider and its models are off (even with a key in the environment)")
    models: tuple[str, ...] = _f(tuple, "models to serve: exact names or wildcards (`\"llama-*\"`); empty = all "
                                 "discovered (plus the catalog's for known vendors)")
    embedding_models: tuple[str, ...] = _f(tuple, "models this server serves on `/v1/embeddings` (exact names; a model "
                                           "list does not say which models embed): served there, not as chat models")
    discover: bool | None = _f(None, "ask the provider's `GET /models` for its models (default: on for "
                               "OpenAI-protocol providers that are not a known paid vendor)")
    discovery_interval_s: float = _f(300.0, "how often discovered model lists are refreshed")
    prices: str | None = _f(None, "whose list prices apply, as a genai-prices provider id (e.g. `openai` for a proxy "
                            "in front of OpenAI); default: the vendor's own, or the protocol's vendor")
    input_usd_per_mtok: str | None = _f(None, "price (USD per 1M input tokens) of this provider's models that have "
                                        "no known price; default 0 for a keyless provider, else such models are refused")
    output_usd_per_mtok: str | None = _f(None, "same, per 1M output tokens")
    connect_timeout_s: float | None = _f(None, "overrides `connect_timeout_s` for this provider")
    first_byte_timeout_s: float | None = _f(None, "overrides `first_byte_timeout_s` for this provider")
    idle_timeout_s: float | None = _f(None, "overrides `idle_timeout_s` for this provider")
    stream_timeout_s: float | None = _f(None, "overrides `stream_timeout_s` for this provider")
    rpm: int | None = _f(None, "upstream requests per minute cap for every deployment on this provider")
    tpm: int | None = _f(None, "upstream tokens per minute cap")


# Provider credentials the way users already have them in their environment.
PROVIDER_ENV_KEYS = {
    "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY", "deepseek": "DEEPSEEK_API_KEY", "mistral": "MISTRAL_API_KEY",
    "together": "TOGETHER_API_KEY", "openrouter": "OPENROUTER_API_KEY", "azure": "AZURE_OPENAI_API_KEY",
}


_PROVIDER_FIELDS = {f.name: f for f in dataclasses.fields(ProviderSettings)}


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")    # an RFC 9110 token


def _check_prices_id(name: str, raw: Any) -> None:
    """`prices` names a genai-prices provider: anything else (a typo, a number) silently priced the
    provider's models from nowhere (its own prices, or none: keyless or refused)."""
    from .billing.pricebook import price_provider_ids
    known = price_provider_ids()
    if not isinstance(raw, str) or raw not in known:
        got = repr(raw) if isinstance(raw, str) else f"{raw!r} (a {type(raw).__name__})"
        raise SettingsError(f"providers.{name}.prices: {got[:80]} is not a genai-prices provider id "
                            f"(known: {', '.join(sorted(known))})")


def _provider(name: str, conf: Any, env: Mapping[str, str]) -> ProviderSettings:
    if not isinstance(conf, dict):
        raise SettingsError(f"providers.{name}: expected a table")
    values: dict[str, Any] = {}
    for k, v in conf.items():
        key = f"providers.{name}.{k}"
        if k not in _PROVIDER_FIELDS:
            raise SettingsError(f"{key}: unknown setting (known: {', '.join(sorted(_PROVIDER_FIELDS))})")
        t = _type_of(_PROVIDER_FIELDS[k])
        values[k] = _coerce(key, _resolve_secret(v, key, env), t)
    p = ProviderSettings(**values)
    if p.protocol is not None and p.protocol not in PROTOCOLS:
        raise SettingsError(f"providers.{name}.protocol: {p.protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if p.base_url is not None:
        _check_url(f"providers.{name}.base_url", p.base_url, ("http", "https"))
    if name == "demo" and set(conf) - {"enabled"}:
        raise SettingsError("providers.demo: 'demo' is Router One's built-in demo provider (see the `demo` "
                            "setting); give your provider another name")
    for h, v in p.headers.items():
        if not _HEADER_NAME.fullmatch(h):
            raise SettingsError(f"providers.{name}.headers: {h!r} is not a valid HTTP header name")
        if any(c < " " and c != "\t" or c == "\x7f" for c in v):
            raise SettingsError(f"providers.{name}.headers.{h}: a header value may not hold line breaks or "
                                "other control characters")
    if "prices" in conf and p.prices is not None:
        _check_prices_id(name, conf["prices"])
    for k in ("input_usd_per_mtok", "output_usd_per_mtok"):
        raw = getattr(p, k)
        if raw is not None:
            try:
                price_to_micros(raw, what=f"providers.{name}.{k}")
            except ValueError as exc:
                raise SettingsError(str(exc)) from None
    for k in ("discovery_interval_s", "connect_timeout_s", "first_byte_timeout_s", "idle_timeout_s",
              "stream_timeout_s", "rpm", "tpm"):
        v = getattr(p, k)
        if v is not None and v <= 0:
            raise SettingsError(f"providers.{name}.{k}: must be > 0, got {v}")
    if p.discovery_interval_s < 0.1:     # 1e-300: a GET /models to the provider as fast as the loop turns
        raise SettingsError(f"providers.{name}.discovery_interval_s: must be >= 0.1, got {p.discovery_interval_s}")
    return p


def _providers(raw: Any, env: Mapping[str, str]) -> dict[str, ProviderSettings]:
    if raw is not None and not isinstance(raw, dict):
        raise SettingsError("providers: expected a table of provider name -> settings")
    out = {str(name): _provider(str(name), conf, env) for name, conf in (raw or {}).items()}
    for name in out:
        if not name or "/" in name or any(c.isspace() or not c.isprintable() for c in name):
            shown = name if name.isprintable() else repr(name)
            raise SettingsError(f"providers.{shown}: a provider name may not be empty or contain '/', spaces "
                                "or control characters")
    from_env = set()
    for name, var in PROVIDER_ENV_KEYS.items():
        if env.get(var) and not (name in out and out[name].api_key):
            out[name] = dataclasses.replace(out.get(name, ProviderSettings()), api_key=env[var])
            from_env.add(name)
    for name, p in out.items():
        # a two-line secret file reached the Authorization header (aiohttp's "header injection"
        # traceback); the key itself is never printed
        if p.api_key and any(c < " " and c != "\t" or c == "\x7f" for c in p.api_key):
            where = f" (from {PROVIDER_ENV_KEYS[name]})" if name in from_env else ""
            raise SettingsError(f"providers.{name}.api_key{where}: a key may not hold line breaks or other control "
                                "characters (a secret file of more than one line?)")
    return out

"""The one settings object, built once from ROUTERONE_* env vars and an optional TOML/YAML file.

Precedence: defaults < file (ROUTERONE_CONFIG or --config) < environment. Secrets in the file may be
written as ``{"$env": "NAME"}`` or ``{"$file": "/path"}`` instead of the value itself. Every error
names the offending key.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = ["Settings", "ProviderSettings", "SettingsError", "load_settings"]

ENV_PREFIX = "ROUTERONE_"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class ProviderSettings:
    """Operator overrides for one provider (vendor) entry: credentials and where to reach it."""
    api_key: str | None = None
    base_url: str | None = None
    api_version: str | None = None
    rpm: int | None = None          # per-deployment upstream caps (requests / tokens per minute)
    tpm: int | None = None
    enabled: bool = True


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = "sqlite:///routerone.db"
    redis_url: str | None = None
    limiter: str = "auto"                     # auto | memory | redis
    redis_failure_policy: str = "open"        # open (fall back to local limits) | closed (reject)
    workers: int = 1
    admin_key: str | None = None              # bootstrap admin key (else one is created and printed)
    max_body_bytes: int = 20 * 1024 * 1024
    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float = 120.0
    idle_timeout_s: float = 120.0
    stream_hold_ms: int = 3000                # stream failover budget before the first content token
    max_retries: int = 2
    cooldown_failures: int = 3
    cooldown_s: float = 30.0
    auth_cache_ttl_s: float = 30.0
    reservation_ttl_s: int = 900
    reservation_sweep_interval_s: float = 10.0
    abandoned_stream_drain_s: float = 30.0
    usage_flush_interval_s: float = 0.2
    usage_batch_size: int = 200
    default_rpm: int | None = None
    default_tpm: int | None = None
    default_concurrency: int | None = None
    routing_strategy: str = "balanced"        # balanced | quality | cost | latency
    willingness_to_pay: float = 0.5
    catalog_path: str | None = None           # operator catalog override (TOML/JSON)
    demo: str = "auto"                        # auto (only when no provider has credentials) | on | off
    log_level: str = "info"
    log_requests: bool = False                # one JSON line per request (failures are always logged)
    log_content: bool = False                 # include prompt and completion text in those lines
    # client-facing guards (see SECURITY.md): timeouts, caps, body complexity, failed-auth limit
    client_header_timeout_s: float = 15.0     # request head must arrive within this (also idle keep-alive)
    client_body_timeout_s: float = 60.0       # whole request body must arrive within this
    client_write_timeout_s: float = 30.0      # a response write to a client that does not read: give up
    max_in_flight_requests: int = 4096        # beyond: 503 server_busy (health and metrics exempt)
    max_messages: int = 10000                 # per chat request
    max_content_parts: int = 10000            # per chat request, all messages together
    max_json_values: int = 250000             # per request body over 1 MiB (an upper-bound count, see wire/chat.py)
    auth_cache_max_entries: int = 10000       # cached keys (valid, and separately as many unknown ones)
    auth_failures_per_ip_per_minute: int = 60  # failed authentications per client address; 0 = no limit
    client_ip_header: str | None = None       # e.g. X-Forwarded-For behind a proxy (rightmost address)
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


_CHOICES = {
    "limiter": {"auto", "memory", "redis"},
    "redis_failure_policy": {"open", "closed"},
    "routing_strategy": {"balanced", "quality", "cost", "latency"},
    "demo": {"auto", "on", "off"},
    "log_level": {"debug", "info", "warning", "error"},
}

# Provider credentials the way users already have them in their environment.
PROVIDER_ENV_KEYS = {
    "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY", "deepseek": "DEEPSEEK_API_KEY", "mistral": "MISTRAL_API_KEY",
    "together": "TOGETHER_API_KEY", "openrouter": "OPENROUTER_API_KEY", "azure": "AZURE_OPENAI_API_KEY",
}


def _resolve_secret(value: Any, key: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict) and len(value) == 1 and ("$env" in value or "$file" in value):
        if "$env" in value:
            name = value["$env"]
            if name not in env:
                raise SettingsError(f"{key}: environment variable {name!r} is not set")
            return env[name]
        try:
            return Path(value["$file"]).read_text().strip()
        except OSError as exc:
            raise SettingsError(f"{key}: cannot read secret file {value['$file']!r}: {exc}") from exc
    return value


def _coerce(key: str, raw: Any, target: type) -> Any:
    if raw is None:
        return None
    try:
        if target is bool:
            if isinstance(raw, bool):
                return raw
            s = str(raw).strip().lower()
            if s in {"1", "true", "yes", "on"}:
                return True
            if s in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if target is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if target is float:
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{key}: expected {target.__name__}, got {raw!r}") from None


_FIELD_TYPES: dict[str, type] = {}
for _f in dataclasses.fields(Settings):
    if _f.name == "providers":
        continue
    _t = str(_f.type).replace(" | None", "")
    _FIELD_TYPES[_f.name] = {"int": int, "float": float, "bool": bool}.get(_t, str)


def _read_file(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SettingsError(f"config file {path!r}: {exc}") from exc
    try:
        if p.suffix in {".yaml", ".yml"}:
            import yaml
            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # noqa: BLE001 - parser errors vary by library; report them by file
        raise SettingsError(f"config file {path!r} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path!r}: top level must be a table/mapping")
    return data


def _providers(raw: Any, env: Mapping[str, str]) -> dict[str, ProviderSettings]:
    out: dict[str, ProviderSettings] = {}
    if raw is not None and not isinstance(raw, dict):
        raise SettingsError("providers: expected a table of provider name -> settings")
    known = {f.name: f for f in dataclasses.fields(ProviderSettings)}
    for name, conf in (raw or {}).items():
        if not isinstance(conf, dict):
            raise SettingsError(f"providers.{name}: expected a table")
        values: dict[str, Any] = {}
        for k, v in conf.items():
            key = f"providers.{name}.{k}"
            if k not in known:
                raise SettingsError(f"{key}: unknown setting (known: {', '.join(sorted(known))})")
            v = _resolve_secret(v, key, env)
            t = str(known[k].type).replace(" | None", "")
            values[k] = _coerce(key, v, {"int": int, "bool": bool}.get(t, str))
        out[name] = ProviderSettings(**values)
    for name, var in PROVIDER_ENV_KEYS.items():
        if env.get(var) and not (name in out and out[name].api_key):
            out[name] = dataclasses.replace(out.get(name, ProviderSettings()), api_key=env[var])
    return out


def load_settings(config_path: str | None = None, env: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    env = os.environ if env is None else env
    config_path = config_path or env.get(ENV_PREFIX + "CONFIG")
    file_data = _read_file(config_path) if config_path else {}
    values: dict[str, Any] = {}
    for k, v in file_data.items():
        if k == "providers":
            continue
        if k not in _FIELD_TYPES:
            raise SettingsError(f"{k}: unknown setting in {config_path}")
        values[k] = _coerce(k, _resolve_secret(v, k, env), _FIELD_TYPES[k])
    for name, t in _FIELD_TYPES.items():
        var = ENV_PREFIX + name.upper()
        if var in env:
            values[name] = _coerce(var, env[var], t)
    for k, v in overrides.items():
        if v is not None:
            values[k] = v
    for k, allowed in _CHOICES.items():
        if k in values and values[k] not in allowed:
            raise SettingsError(f"{k}: {values[k]!r} is not one of {', '.join(sorted(allowed))}")
    for k in ("port", "workers", "max_body_bytes", "max_in_flight_requests", "max_messages", "max_content_parts", "max_json_values",
              "auth_cache_max_entries", "client_header_timeout_s", "client_body_timeout_s", "client_write_timeout_s"):
        if k in values and values[k] is not None and values[k] < 1:
            raise SettingsError(f"{k}: must be >= 1, got {values[k]}")
    return Settings(**values, providers=_providers(file_data.get("providers"), env))

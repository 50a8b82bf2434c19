"""The one settings object, built once from ROUTERONE_* env vars and an optional TOML/YAML file.

Precedence: defaults < file (ROUTERONE_CONFIG or --config) < environment. Secrets in the file may be
written as ``{"$env": "NAME"}`` or ``{"$file": "/path"}`` instead of the value itself. Every error
names the offending key and value; values are range-checked here, once, so nothing later has to.
Each field's `doc` metadata is the README's configuration reference (`settings_reference.py`).
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .http.forwarded import LOOPBACK, TrustedProxies
from .settings_providers import PROTOCOLS, PROVIDER_ENV_KEYS, ProviderSettings, _providers
from .settings_readers import (MAX_FILE_BYTES, SettingsError, _check_url, _coerce, _f, _read_file,
                               _resolve_secret, _type_of, read_text_file, unique_keys)

__all__ = ["Settings", "ProviderSettings", "SettingsError", "load_settings", "PROTOCOLS", "read_text_file",
           "unique_keys", "PROVIDER_ENV_KEYS", "ENV_PREFIX", "MAX_FILE_BYTES"]

ENV_PREFIX = "ROUTERONE_"


@dataclass(frozen=True)
class Settings:
    host: str = _f("127.0.0.1", "address to listen on")
    port: int = _f(8080, "TCP port, 1..65535", min=1, max=65535)
    database_url: str = _f("sqlite:///routerone.db", "`sqlite:///path.db` or `postgresql://user@host/db`")
    redis_url: str | None = _f(None, "`redis://host:6379/0`: shared limits, sticky conversations and "
                                     "deployment cooldowns across workers and hosts")
    limiter: str = _f("auto", "auto (Redis when redis_url is set; else in-process, shared memory with "
                              "`--workers N`) \\| memory \\| redis")
    redis_failure_policy: str = _f("open", "open (fall back to local limits) \\| closed (reject) when Redis is down")
    workers: int = _f(1, "processes sharing the port, 1..256; without redis_url their limits live in shared memory",
                      min=1, max=256)
    limiter_entries: int = _f(524_288, "shared-memory limiter (`--workers N`, no Redis): rate-limit log entries "
                              "it holds, about 64 bytes each; one per limited request and scope per window",
                              min=1024, max=1 << 28)
    drain_timeout_s: float = _f(30.0, "on SIGTERM, how long in-flight requests and streams may finish", min=0)
    admin_key: str | None = _f(None, "bootstrap admin key: `sk-` then printable ASCII, 20 to 200 characters in all (else one is created and "
                                     "printed once); a new value revokes the admin key an earlier value registered")
    max_body_bytes: int = _f(20 * 1024 * 1024, "largest request body accepted", min=1)
    connect_timeout_s: float = _f(10.0, "upstream connect timeout", min=0.001)
    first_byte_timeout_s: float = _f(120.0, "upstream time to first byte", min=0.001)
    idle_timeout_s: float = _f(120.0, "longest pause inside an upstream stream (keep-alive comments and pings do not count as activity)", min=0.001)
    stream_timeout_s: float = _f(3600.0, "longest an upstream reply may take in all, from the request sent to its last byte, "
                                 "however steadily it arrives (long reasoning answers: 128k tokens at ~50 tokens/s "
                                 "is ~45 min)", min=0.001)
    upstream_http1: bool = _f(True, "plain-http upstreams (vLLM, Ollama, a sidecar) through Router One's lean "
                              "HTTP/1.1 client; false: through aiohttp's client, as https upstreams always are")
    stream_hold_ms: int = _f(3000, "stream failover budget before the first content token", min=0)
    max_retries: int = _f(2, "upstream attempts beyond the first, 0..10", min=0, max=10)
    cooldown_failures: int = _f(3, "consecutive failures that cool a deployment down (for every "
                                              "instance on `redis_url`'s Redis, every worker of `--workers N`)", min=1)
    cooldown_s: float = _f(30.0, "how long a cooled-down deployment is skipped", min=0)
    retry_budget_tokens: int = _f(10, "retry budget per deployment and process, 0..1000 (0 = off): a retryable "
                                  "failure takes a token, a success gives back `retry_budget_token_ratio`; the "
                                  "same deployment is retried only while over half are left", min=0, max=1000)
    retry_budget_token_ratio: float = _f(0.1, "tokens a success gives back, 0.001..1", min=0.001, max=1)
    auth_cache_ttl_s: float = _f(30.0, "how long a key lookup is cached", min=0)
    reservation_ttl_s: int = _f(900, "a balance hold not renewed for this long is released (a call still running renews its own)", min=1)
    reservation_sweep_interval_s: float = _f(10.0, "how often stale holds are swept", min=0.01)
    abandoned_stream_drain_s: float = _f(30.0, "how long an abandoned stream is drained for its usage", min=0)
    usage_flush_interval_s: float = _f(0.2, "usage rows are written at least this often", min=0.001)
    usage_batch_size: int = _f(200, "usage rows per write", min=1)
    default_rpm: int | None = _f(None, "requests per minute for keys without their own limit", min=1)
    default_tpm: int | None = _f(None, "tokens per minute for keys without their own limit", min=1)
    default_concurrency: int | None = _f(None, "concurrent requests for keys without their own limit", min=1)
    routing_strategy: str = _f("balanced", "`auto`'s default: balanced \\| quality \\| cost \\| latency")
    willingness_to_pay: float = _f(0.5, "the balanced router's knob, 0 (cheapest) .. 1 (strongest)", min=0, max=1)
    catalog_path: str | None = _f(None, "operator catalog file (TOML/JSON: `[[model]]`, `[[deployment]]`, "
                                  "`[aliases]`, `[fallbacks]`)")
    demo: str = _f("auto", "auto (only when no provider is configured) \\| on \\| off")
    log_level: str = _f("info", "debug \\| info \\| warning \\| error")
    log_requests: bool = _f(False, "one JSON log line per request (failures are always logged)")
    log_content: bool = _f(False, "include prompt and completion text in those lines")
    console: bool = _f(True, "serve the web console at /console (same process and port)")
    responses_retention_days: int = _f(30, "stored `/v1/responses` responses (their whole input chain and output) "
                                       "are deleted this many days after they were made, 0..36500 (0 = kept "
                                       "until deleted); `store: false` stores nothing", min=0, max=36500)
    responses_purge_interval_s: float = _f(3600.0, "how often expired stored responses are deleted (in batches; "
                                           "an expired one is a 404 at once)", min=0.01)
    responses_store: bool = _f(True, "false: `/v1/responses` stores nothing (no request, chain or output), whatever "
                               "`store` a request sends; every response says `\"store\": false`, and "
                               "`previous_response_id`, `GET /v1/responses/{id}`, `input_items` and `cancel` are a "
                               "400 `response_storage_disabled` (DELETE still deletes one stored before)")
    # client-facing guards (see SECURITY.md): timeouts, caps, body complexity, failed-auth limit
    client_header_timeout_s: float = _f(15.0, "request head must arrive within this (also idle keep-alive)", min=1)
    client_body_timeout_s: float = _f(60.0, "whole request body must arrive within this", min=1)
    client_write_timeout_s: float = _f(30.0, "a response write to a client that does not read: give up", min=1)
    max_in_flight_requests: int = _f(4096, "beyond: 503 server_busy (health and metrics exempt)", min=1)
    max_body_bytes_in_flight: int = _f(1 << 30, "request bodies held in memory at once, all requests; a body "
                                       "of 1 MiB or more beyond it: 503 server_busy", min=1)
    max_messages: int = _f(10000, "per chat request", min=1)
    max_content_parts: int = _f(10000, "per chat request, all messages together", min=1)
    max_json_values: int = _f(250000, "per request body over 1 MiB (an upper-bound count, see wire/chat.py)", min=1)
    auth_cache_max_entries: int = _f(10000, "cached keys (valid, and separately as many unknown ones)", min=1)
    auth_failures_per_ip_per_minute: int = _f(60, "failed authentications per client address; 0 = no limit", min=0)
    client_ip_header: str | None = _f(None, "e.g. X-Forwarded-For behind a proxy (rightmost address); read only "
                                            "from a peer in `trusted_proxies`")
    trusted_proxies: tuple[str, ...] = _f(LOOPBACK, "peers whose forwarded headers count (`X-Forwarded-Proto: "
                                          "https` for HSTS and the console's Secure cookies, `client_ip_header`): "
                                          "addresses or CIDRs, `*` = any peer; from any other peer its own "
                                          "address and the real transport decide")
    providers: Mapping[str, ProviderSettings] = _f(dict, "`[providers.<name>]` tables, see below")

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


_CHOICES = {
    "limiter": {"auto", "memory", "redis"},
    "redis_failure_policy": {"open", "closed"},
    "routing_strategy": {"balanced", "quality", "cost", "latency"},
    "demo": {"auto", "on", "off"},
    "log_level": {"debug", "info", "warning", "error"},
}
_URL_SCHEMES = {"database_url": ("sqlite", "postgresql", "postgres"), "redis_url": ("redis", "rediss", "unix")}


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "providers"}


def _choice_from_bool(key: str, value: bool) -> str:
    """YAML reads `demo: off` as the boolean false (YAML 1.1), which became "demo: 'False' is not one of
    auto, off, on"; a setting whose choices are on/off takes the boolean as meant, others say to quote."""
    allowed = _CHOICES[key]
    if {"on", "off"} <= allowed:
        return "on" if value else "off"
    raise SettingsError(f"{key}: got the boolean {str(value).lower()}; write one of {', '.join(sorted(allowed))} "
                        f"as a quoted string, e.g. {key} = \"{sorted(allowed)[0]}\"")


def _check_combinations(values: dict[str, Any]) -> None:
    """Settings that cannot go together: found at start, for every subcommand (limiter = "redis"
    without redis_url was a traceback from `serve`)."""
    limiter = values.get("limiter", "auto")
    if limiter == "redis" and not values.get("redis_url"):
        raise SettingsError("limiter: 'redis' needs redis_url (ROUTERONE_REDIS_URL), e.g. redis://127.0.0.1:6379/0")
    if limiter == "memory" and values.get("workers", 1) > 1:
        raise SettingsError(f"workers: --workers {values['workers']} cannot use limiter = \"memory\" (each "
                            "process would keep its own limits); use limiter = \"auto\" (shared memory between "
                            "the workers, or Redis when redis_url is set) or \"redis\"")


MIN_ADMIN_KEY_CHARS = 16     # a generated key is 49 (sk-ro- and 43 random characters)


def _check_admin_key(value: str | None) -> None:
    """An operator's admin_key opens the whole admin API: "admin" (or an empty secret file) was
    registered as it. Shorter than MIN_ADMIN_KEY_CHARS is refused; the value is never printed."""
    if value is not None and len(value) < MIN_ADMIN_KEY_CHARS:
        raise SettingsError(f"admin_key: must be at least {MIN_ADMIN_KEY_CHARS} characters, got {len(value)}; "
                            "use a random one (e.g. sk-ro-admin-$(openssl rand -hex 24)) or leave admin_key "
                            "unset for a generated one")
    if value is not None and not _SIGNS_IN.fullmatch(value):
        raise SettingsError("admin_key: a bearer token is read as a key only when it starts with 'sk-' and is 20 "
                            "to 200 printable ASCII characters (no spaces at either end), so this one could never "
                            "sign in; use e.g. sk-ro-admin-$(openssl rand -hex 24)")


# what services/keys.looks_like_key lets through and an HTTP client can send (printable ASCII; the
# header's outer spaces are not part of it)
_SIGNS_IN = re.compile(r"sk-[ -~]{16,196}[!-~]")


def _check_range(key: str, f: dataclasses.Field, value: Any) -> None:
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if value is None or (lo is None and hi is None):
        return
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise SettingsError(f"{key}: must be {span}, got {value}")



def load_settings(config_path: str | None = None, env: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    env = os.environ if env is None else env
    config_path = config_path or env.get(ENV_PREFIX + "CONFIG")
    file_data = _read_file(config_path) if config_path else {}
    values: dict[str, Any] = {}
    for k, v in file_data.items():
        if k == "providers":
            continue
        if k not in _FIELDS:
            raise SettingsError(f"{k}: unknown setting in {config_path}")
        if k in _CHOICES and isinstance(v, bool):
            v = _choice_from_bool(k, v)
        values[k] = _coerce(k, _resolve_secret(v, k, env), _type_of(_FIELDS[k]))
    for name, f in _FIELDS.items():
        var = ENV_PREFIX + name.upper()
        if var in env:
            values[name] = _coerce(var, env[var], _type_of(f))
    for k, v in overrides.items():
        if v is not None:
            values[k] = v
    for k, allowed in _CHOICES.items():
        if isinstance(values.get(k), str):          # ROUTERONE_LOG_LEVEL=DEBUG, routing_strategy = "Cost"
            values[k] = values[k].strip().lower()
        if k in values and values[k] not in allowed:
            raise SettingsError(f"{k}: {values[k]!r} is not one of {', '.join(sorted(allowed))}")
    for k, v in values.items():
        _check_range(k, _FIELDS[k], v)
    _check_combinations(values)
    _check_admin_key(values.get("admin_key"))
    try:
        TrustedProxies(values.get("trusted_proxies", ()))
    except ValueError as exc:
        raise SettingsError(f"trusted_proxies: {exc}") from None
    for k, schemes in _URL_SCHEMES.items():
        # an empty redis_url is no Redis (as unset); an empty database_url names no database (it
        # reached the store as a traceback)
        if values.get(k) or (k == "database_url" and values.get(k) == ""):
            _check_url(k, values[k], schemes)
    return Settings(**values, providers=_providers(file_data.get("providers"), env))

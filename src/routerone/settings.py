"""The one settings object, built once from ROUTERONE_* env vars and an optional TOML/YAML file.

Precedence: defaults < file (ROUTERONE_CONFIG or --config) < environment. Secrets in the file may be
written as ``{"$env": "NAME"}`` or ``{"$file": "/path"}`` instead of the value itself. Every error
names the offending key and value; values are range-checked here, once, so nothing later has to.
Each field's `doc` metadata is the README's configuration reference (`settings_reference.py`).
"""
from __future__ import annotations

import dataclasses
import errno
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from .billing.prices import price_to_micros
from .yaml_config import yaml_without_repeats

__all__ = ["Settings", "ProviderSettings", "SettingsError", "load_settings", "PROTOCOLS", "read_text_file"]

ENV_PREFIX = "ROUTERONE_"
PROTOCOLS = ("openai", "anthropic", "gemini", "azure")


class SettingsError(ValueError):
    pass


def _f(default: Any, doc: str, **kw: Any) -> Any:
    if callable(default) and not isinstance(default, (int, float, str, bool)):
        return field(default_factory=default, metadata={"doc": doc, **kw})
    return field(default=default, metadata={"doc": doc, **kw})


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
    rpm: int | None = _f(None, "upstream requests per minute cap for every deployment on this provider")
    tpm: int | None = _f(None, "upstream tokens per minute cap")


@dataclass(frozen=True)
class Settings:
    host: str = _f("127.0.0.1", "address to listen on")
    port: int = _f(8080, "TCP port, 1..65535", min=1, max=65535)
    database_url: str = _f("sqlite:///routerone.db", "`sqlite:///path.db` or `postgresql://user@host/db`")
    redis_url: str | None = _f(None, "`redis://host:6379/0`: shared limits and sticky conversations across "
                                     "workers and hosts")
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
    upstream_http1: bool = _f(True, "plain-http upstreams (vLLM, Ollama, a sidecar) through Router One's lean "
                              "HTTP/1.1 client; false: through aiohttp's client, as https upstreams always are")
    stream_hold_ms: int = _f(3000, "stream failover budget before the first content token", min=0)
    max_retries: int = _f(2, "upstream attempts beyond the first, 0..10", min=0, max=10)
    cooldown_failures: int = _f(3, "consecutive failures that cool a deployment down", min=1)
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
    client_ip_header: str | None = _f(None, "e.g. X-Forwarded-For behind a proxy (rightmost address)")
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

# Provider credentials the way users already have them in their environment.
PROVIDER_ENV_KEYS = {
    "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY", "deepseek": "DEEPSEEK_API_KEY", "mistral": "MISTRAL_API_KEY",
    "together": "TOGETHER_API_KEY", "openrouter": "OPENROUTER_API_KEY", "azure": "AZURE_OPENAI_API_KEY",
}


MAX_FILE_BYTES = 64 * 1024 * 1024     # a config, catalog or secret file: far above any real one


def read_text_file(path: str) -> str:
    """A config, catalog or secret file as UTF-8 text, read up to MAX_FILE_BYTES: a file without an
    end (/dev/zero) was read until memory ran out. Larger is an OSError (EFBIG), as unreadable is;
    so is a file that is not a regular one (a FIFO blocked start-up for ever, waiting for a writer;
    a directory, a device such as /dev/tty): opened without blocking, and looked at before reading."""
    if "\x00" in path:                  # open() raises ValueError on it
        raise OSError(errno.EINVAL, "a path with a NUL byte", path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file ({_file_kind(mode)})", path)
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_FILE_BYTES // 2**20} MiB", path)
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")   # newlines as read_text() reads them


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"


def _resolve_secret(value: Any, key: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict) and len(value) == 1 and ("$env" in value or "$file" in value):
        (kind, where), = value.items()
        if not isinstance(where, str) or not where or "\x00" in where:
            what = "an environment variable name" if kind == "$env" else "a file path"
            raise SettingsError(f"{key}: {kind} must be {what} (a non-empty string), got {where!r}")
        if kind == "$env":
            if where not in env:
                raise SettingsError(f"{key}: environment variable {where!r} is not set")
            return env[where]
        try:
            return read_text_file(where).strip()
        except OSError as exc:
            raise SettingsError(f"{key}: cannot read secret file {where!r}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SettingsError(f"{key}: secret file {where!r} is not UTF-8 text") from None
    return value


def _type_of(f: dataclasses.Field) -> str:
    return str(f.type).replace(" | None", "").split("[")[0]


def _coerce(key: str, raw: Any, target: str) -> Any:
    if raw is None:
        return None
    try:
        if target == "bool":
            if isinstance(raw, bool):
                return raw
            s = str(raw).strip().lower()
            if s in {"1", "true", "yes", "on"}:
                return True
            if s in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if target in ("int", "float") and isinstance(raw, str) and not raw.isascii():
            raise ValueError(raw)        # int() and float() read other scripts' digits ("\uff18\uff10" = 80)
        if target == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if target == "float":
            if isinstance(raw, bool):
                raise ValueError(raw)
            v = float(raw)
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError(raw)
            return v
        if target == "tuple":
            items = raw.split(",") if isinstance(raw, str) else raw
            if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
                raise ValueError(raw)
            return tuple(i.strip() for i in items if i.strip())
        if target == "Mapping":
            if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
                raise ValueError(raw)
            return {str(k): v for k, v in raw.items()}
        if isinstance(raw, (dict, list)):
            raise ValueError(raw)
        return str(raw)
    except (TypeError, ValueError):
        want = {"tuple": "a list of strings", "Mapping": "a table of strings"}.get(target, target)
        # a secret of the wrong type (a list, a table) is named by its type: its value is never printed
        got = f"a {type(raw).__name__}" if key.rsplit(".", 1)[-1] in _SECRET_KEYS else repr(raw)
        if len(got) > 120:               # `port = "<1 MB>"` was a 1 MB error line
            got = f"{got[:100]}... (a {type(raw).__name__} of {len(raw):,} {'characters' if isinstance(raw, str) else 'items'})"
        raise SettingsError(f"{key}: expected {want}, got {got}") from None


_SECRET_KEYS = {"admin_key", "api_key", "headers", "database_url", "redis_url"}


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "providers"}
_PROVIDER_FIELDS = {f.name: f for f in dataclasses.fields(ProviderSettings)}


def _read_file(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        text = read_text_file(path)
    except OSError as exc:
        raise SettingsError(f"config file {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"config file {path!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                            f"at offset {exc.start})") from None
    try:
        if p.suffix in {".yaml", ".yml"}:
            data = yaml_without_repeats(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # noqa: BLE001 - parser errors vary by library; report them by file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SettingsError(f"config file {path!r} is not valid: {first}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path!r}: top level must be a table/mapping")
    return data


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object_pairs_hook: a key given twice is an error, not the last one silently (TOML
    already refuses it)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {k!r} is given twice")
        out[k] = v
    return out


def _without_password(url: str) -> str:
    """A URL as an error message may show it: a password in it masked."""
    return re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", url)


def _check_url(key: str, url: str, schemes: tuple[str, ...]) -> None:
    shown = _without_password(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise SettingsError(f"{key}: {shown!r} is not a valid URL ({_without_password(str(exc))})") from None
    if parts.scheme not in schemes or (parts.scheme in ("http", "https", "redis", "rediss") and not parts.hostname):
        raise SettingsError(f"{key}: {shown!r} is not a valid URL (expected {' or '.join(s + '://' for s in schemes)}...)")
    if parts.scheme == "sqlite" and (not url.startswith("sqlite:///") or len(url) == len("sqlite:///")):
        raise SettingsError(f"{key}: {shown!r} names no SQLite file (expected sqlite:///path.db, or "
                            "sqlite:////absolute/path.db)")


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
    for k in ("discovery_interval_s", "connect_timeout_s", "first_byte_timeout_s", "idle_timeout_s", "rpm", "tpm"):
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
    for k, schemes in _URL_SCHEMES.items():
        # an empty redis_url is no Redis (as unset); an empty database_url names no database (it
        # reached the store as a traceback)
        if values.get(k) or (k == "database_url" and values.get(k) == ""):
            _check_url(k, values[k], schemes)
    return Settings(**values, providers=_providers(file_data.get("providers"), env))

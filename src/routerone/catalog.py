"""The model catalog: providers and models as data, resolved against the operator's settings.

Where each fact comes from:
- prices: pydantic's genai-prices (`billing/pricebook.py`); a `[[model]]` row may set its own;
- context window, output cap, capabilities, routing quality: `providers/data/models.toml` for the
  models Router One knows; any other model (discovered, or named in a provider's `models = [...]`)
  gets `DEFAULT_PROFILE`, marked `profile = "default"` so nobody mistakes it for measured data;
- models of an OpenAI-compatible provider: its `GET /models` (`providers/discovery.py`), merged in
  with `Catalog.set_discovered` while serving.

An operator file (`catalog_path`, TOML or JSON) replaces or adds `[[model]]` rows (or, with
`replace_shipped_models = true`, is the whole list), adds `[[deployment]]` rows (more places to
serve a public model, with weights and caps), `[aliases]` (name -> model) and `[fallbacks]`
(model -> ordered fallback models). A model is reachable as `<model>` when that name is unique and
always as `<provider>/<model>`.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from .billing.prices import Price
from .billing.pricebook import lookup_context_window, vendor_models
from .catalog_rows import CatalogError, price_for, read_catalog_file, row_fields
from .errors import ModelNotFound, echo
from .providers.base import Deployment, Vendor
from .providers.demo import demo_state
from .providers.transport import Timeouts
from .providers.vendors import ProviderEntry, build_providers, shipped
from .settings import Settings

__all__ = ["ModelInfo", "Catalog", "load_catalog", "AUTO_MODEL", "DEFAULT_PROFILE", "CatalogError",
           "discovered_model", "MAX_ALLOW_PATTERNS", "MAX_PATTERN_STARS", "allowlist_pattern_error"]

AUTO_MODEL = "auto"
# A key's `*` patterns are compiled into one regex on its first request, on the event loop: 1,000
# patterns with many `*` took ~1.5-1.9 s; 32 of 200 chars with 16 `*` each take ~10 ms (measured on a
# loaded 2-core box; plain ids are a set lookup and cost nothing). Checked where keys are made/changed.
MAX_ALLOW_PATTERNS = 32
MAX_PATTERN_STARS = 16


def allowlist_pattern_error(models: Iterable[str]) -> str | None:
    """Why an allowlist's `*` patterns would be slow to compile (too many, or one with too many `*`),
    or None: the rest of a sentence that starts with what holds the list ("'allowed_models' ...")."""
    patterns = [m for m in dict.fromkeys(models) if "*" in m]
    if len(patterns) > MAX_ALLOW_PATTERNS:
        return (f"may hold at most {MAX_ALLOW_PATTERNS} '*' patterns, got {len(patterns)} (name the models, "
                "or use fewer, wider patterns)")
    starry = next((p for p in patterns if p.count("*") > MAX_PATTERN_STARS), None)
    if starry is not None:
        shown = starry if len(starry) <= 60 else starry[:60] + "..."
        return f"may hold patterns of at most {MAX_PATTERN_STARS} '*' each, got {starry.count('*')} in {shown!r}"
    return None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    provider: str
    context_window: int
    max_output: int
    price: Price
    deployments: tuple[Deployment, ...]
    default_max_tokens: int | None = None    # used when the caller gives none and the protocol needs one
    tools: bool = True
    vision: bool = False
    json_schema: bool = True
    stream_usage: bool = True
    quality: float = 0.5
    label: str = ""
    profile: str = "catalog"                 # where capabilities/quality come from: catalog | default
    price_source: str = "catalog"            # genai-prices | catalog | provider | keyless

    @property
    def output_cap(self) -> int:
        return self.default_max_tokens or self.max_output


# What a model Router One has no data for is assumed to be (documented in the README). Tools and JSON
# schema pass through (the upstream answers for itself); images are not sent to it by `auto`.
DEFAULT_PROFILE = {"context_window": 32768, "max_output": 4096, "tools": True, "vision": False,
                   "json_schema": True, "quality": 0.5}


def discovered_model(entry: ProviderEntry, upstream: str, *, context_window: int | None = None,
                     public_id: str | None = None) -> ModelInfo | None:
    """A model Router One has no row for; None when it has no price and must not be served free."""
    price, source = price_for(entry, upstream, None)
    if price is None:
        return None
    ctx = context_window or lookup_context_window(entry.prices_id, upstream) or DEFAULT_PROFILE["context_window"]
    mid = public_id or upstream
    return ModelInfo(id=mid, provider=entry.name, context_window=int(ctx),
                     max_output=min(DEFAULT_PROFILE["max_output"], int(ctx)), price=price,
                     deployments=(Deployment(mid, entry.vendor, upstream, rpm=entry.rpm, tpm=entry.tpm),),
                     tools=DEFAULT_PROFILE["tools"],
                     vision=DEFAULT_PROFILE["vision"], json_schema=DEFAULT_PROFILE["json_schema"],
                     quality=DEFAULT_PROFILE["quality"], profile="default", price_source=source)


class Catalog:
    """Public model names -> ModelInfo, with aliases and `provider/model` names.

    `static`: rows of the catalog files. `named`: models a provider's `models = [...]` names that no
    row describes. `discovered`: what each provider's `GET /models` listed last; `set_discovered`
    swaps a provider's list in, and readers on the event loop always see one consistent state (the
    dicts are rebuilt, then assigned). A named or discovered model whose name another usable model
    also has is reachable only as `<provider>/<model>`."""

    def __init__(self, models: dict[str, ModelInfo], vendors: dict[str, Vendor],
                 aliases: dict[str, str] | None = None, fallbacks: dict[str, list[str]] | None = None, *,
                 providers: dict[str, ProviderEntry] | None = None, warnings: Iterable[str] = (),
                 named: dict[str, list[ModelInfo]] | None = None, demo_why: str = "") -> None:
        self.static = dict(models)
        self.demo_why = demo_why          # one sentence: whether the offline demo serves, and why
        self.named = {p: tuple(ms) for p, ms in (named or {}).items()}
        self.vendors = vendors
        self.providers = providers or {}
        self.aliases = aliases or {}
        self.fallbacks = fallbacks or {}   # model -> ordered fallback models
        self.warnings = list(warnings)
        self.discovered: dict[str, tuple[ModelInfo, ...]] = {}
        self.discovery_failing: frozenset[str] = frozenset()   # providers whose last `GET /models` failed
        self._allow_cache: dict[tuple[str, ...], tuple] = {}
        self._rebuild()

    def _rebuild(self) -> None:
        models = dict(self.static)
        qualified: dict[str, ModelInfo] = {}
        pool = [(p, m) for src in (self.named, self.discovered) for p, ms in src.items() for m in ms]
        counts = Counter(m.id for _, m in pool)
        counts.update(mid for mid, m in models.items() if any(d.vendor.configured for d in m.deployments))
        for prov, m in pool:
            if counts[m.id] > 1 or m.id == AUTO_MODEL:       # ambiguous (or the router's name): only `provider/model`
                q = f"{prov}/{m.id}"
                qualified[q] = dataclasses.replace(
                    m, id=q, deployments=tuple(dataclasses.replace(d, model=q) for d in m.deployments))
            else:
                models[m.id] = m
        usable = [m for m in (*models.values(), *qualified.values())
                  if any(d.vendor.configured for d in m.deployments)]
        avail = [m for m in usable if m.provider != "demo"] or usable   # the demo only while nothing real is
        self.models, self.qualified, self._available = models, qualified, avail

    def set_discovered(self, provider: str, models: Iterable[ModelInfo]) -> None:
        self.discovered = {**self.discovered, provider: tuple(models)}
        self._rebuild()

    def timeouts(self, defaults: Timeouts) -> dict[str, Timeouts]:
        """Providers with their own connect / first-byte / idle / stream timeouts (the rest use `defaults`)."""
        out = {}
        for name, e in self.providers.items():
            if any(v is not None for v in e.timeouts):
                c, f, i, s = e.timeouts
                out[name] = Timeouts(c or defaults.connect_s, f or defaults.first_byte_s, i or defaults.idle_s,
                                     s or defaults.stream_s)
        return out

    def available(self) -> list[ModelInfo]:
        """Models with at least one deployment whose vendor is usable (credentials present). The
        demo's models only while no real model is (`auto` never picks the demo next to a provider;
        with demo = "on" they still answer when named)."""
        return self._available

    def allows(self, allowlist: Sequence[str], model: ModelInfo) -> bool:
        """A key's allowlist lets it call `model` (a resolved model) through at least one deployment."""
        return self.permitted(allowlist, model) is not None

    def permitted(self, allowlist: Sequence[str], model: ModelInfo) -> ModelInfo | None:
        """`model` with only the deployments a key's allowlist ([]: every model) lets it use, or None.

        Named by its id, by an alias of it, or by a `*` pattern (`gpt-4o*`) matching the id: every
        deployment (any provider). Named as `<provider>/<id>` (or `<provider>/<alias>`, or a pattern
        `<provider>/gpt-4o*`) only: that provider's deployments, so the key's requests, their failover
        and `auto` never reach another provider serving the same model; a pattern in the provider part
        (`*/gpt-4o`, `open*/gpt-4o`) pins the providers it matches. None when none of them is usable."""
        if not allowlist or model.id in allowlist:
            return model
        ids, patterns, pins, pin_globs = self._allow_rules(allowlist)
        if model.id in ids or (patterns is not None and patterns.match(model.id) is not None):
            return model
        providers = pins.get(model.id, frozenset())
        provider_globs = [p for p, glob in pin_globs if glob.match(model.id)]
        if not providers and not provider_globs:
            return None
        deps = tuple(d for d in model.deployments
                     if d.vendor.name in providers or any(p.match(d.vendor.name) for p in provider_globs))
        if not any(d.vendor.configured for d in deps):
            return None
        return model if len(deps) == len(model.deployments) else dataclasses.replace(model, deployments=deps)

    def _allow_rules(self, allowlist: Sequence[str]) -> tuple[frozenset[str], re.Pattern | None,
                                                            dict[str, frozenset[str]],
                                                            list[tuple[re.Pattern, re.Pattern]]]:
        """An allowlist as the ids any provider may serve, one regex of its `*` patterns, and the
        providers each `<provider>/<model>` entry pins (exact model id -> exact providers; else
        (provider regex, model regex) pairs),
        made once per allowlist (a 1,000-entry list checked entry by entry cost 1.4 ms per model,
        18 ms per `auto` request over 13 models)."""
        key = allowlist if isinstance(allowlist, tuple) else tuple(allowlist)
        rules = self._allow_cache.get(key)
        if rules is None:
            ids = frozenset(self.aliases.get(e, e) for e in key)
            globs = [fnmatch.translate(e) for e in key if "*" in e]
            pins: dict[str, set[str]] = {}
            pin_globs: list[tuple[re.Pattern, re.Pattern]] = []
            for e in key:
                provider, _, rest = e.partition("/")
                if not rest:
                    continue
                if "*" in provider or "*" in rest:
                    model_glob = rest if "*" in rest else self.aliases.get(rest, rest)
                    pin_globs.append((re.compile(fnmatch.translate(provider)), re.compile(fnmatch.translate(model_glob))))
                else:
                    pins.setdefault(self.aliases.get(rest, rest), set()).add(provider)
            rules = (ids, re.compile("|".join(globs)) if globs else None,
                     {m: frozenset(ps) for m, ps in pins.items()}, pin_globs)
            if len(self._allow_cache) >= 4096:
                self._allow_cache.clear()
            self._allow_cache[key] = rules
        return rules

    def unknown_models(self, names: Iterable[str], also: Iterable[str] = ()) -> list[str]:
        """The allowlist entries that name no model this catalog knows (configured or not) nor one of
        the ids `also` (the embedding models): not `auto`, an id, an alias, a `provider/model` name,
        nor a `*` pattern matching one of them. A typo made a key that could call nothing."""
        ids = {*also, *self.static, *self.models, *self.qualified,
               *(m.id for src in (self.named, self.discovered) for ms in src.values() for m in ms)}
        ids |= {f"{d.vendor.name}/{mid}" for mid, m in self.static.items() for d in m.deployments}

        def known(name: str) -> bool:
            if name == AUTO_MODEL or name in ids or name in self.aliases:
                return True
            if "*" in name:
                return any(fnmatch.fnmatchcase(i, name) for i in ids)
            try:
                self.resolve(name)
                return True
            except ModelNotFound:
                return False
        return [n for n in dict.fromkeys(names) if not known(n)]

    def resolve(self, name: str) -> ModelInfo:
        name = self.aliases.get(name, name)
        m = self.models.get(name) or self.qualified.get(name)
        if m is None and "/" in name:
            vendor, _, rest = name.partition("/")
            base = self.models.get(self.aliases.get(rest, rest))
            if base is not None:
                deps = tuple(d for d in base.deployments if d.vendor.name == vendor)
                if deps:
                    m = dataclasses.replace(base, deployments=deps)
        if m is None or not any(d.vendor.configured for d in m.deployments):
            ambiguous = [q for q in self.qualified if q.partition("/")[2] == name]
            hint = f" (served by several providers: use one of {', '.join(sorted(ambiguous))})" if ambiguous else ""
            if not hint and self.discovery_failing:     # the provider's name only: its address is not the caller's
                names = ", ".join(f"provider {p}" for p in sorted(self.discovery_failing))
                hint = f" (the model list of {names} could not be read: its models are served once it answers)"
            raise ModelNotFound(f"The model '{echo(name)}' does not exist or is not configured on this gateway{hint}",
                                param="model")
        return m


_MODEL_ID = re.compile(r"[^,\x00-\x20\x7f]{1,200}")


def _extra_deployments(rows: Iterable[dict], models: dict[str, ModelInfo], vendors: dict[str, Vendor]) -> None:
    for i, row in enumerate(rows):
        where = f"deployment[{i}]"
        if not isinstance(row, dict):
            raise CatalogError(f"{where}: expected a table")
        unknown = set(row) - {"model", "provider", "upstream", "weight", "rpm", "tpm", "append"}
        if unknown:
            raise CatalogError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        m = models.get(row.get("model", ""))
        if m is None or row.get("provider") not in vendors:
            raise CatalogError(f"{where}: needs a known 'model' and 'provider' (got {row.get('model')!r}, "
                               f"{row.get('provider')!r})")
        for k in ("weight", "rpm", "tpm"):     # int("abc") was a traceback; an rpm of "abc" or -1 a 500 a request
            v = row.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise CatalogError(f"{where}.{k}: must be a whole number >= 1, got {v!r}")
        if not isinstance(row.get("upstream", ""), str) or not isinstance(row.get("append", True), bool):
            k = "upstream" if not isinstance(row.get("upstream", ""), str) else "append"
            raise CatalogError(f"{where}.{k}: wrong type {type(row[k]).__name__} ({row[k]!r})")
        dep = Deployment(m.id, vendors[row["provider"]], row.get("upstream", m.id),
                         weight=row.get("weight", 1), rpm=row.get("rpm"), tpm=row.get("tpm"))
        deps = m.deployments if row.get("append", True) else ()
        models[m.id] = dataclasses.replace(m, deployments=deps + (dep,))


def _named_models(entries: dict[str, ProviderEntry], models: dict[str, ModelInfo]) -> dict[str, list[ModelInfo]]:
    """Models a provider's `models = [...]` names that no row describes: exact names, and for a
    known vendor its priced models matching a wildcard (discovery matches the rest)."""
    out: dict[str, list[ModelInfo]] = {}
    for e in entries.values():
        if not e.vendor.configured or not e.patterns:
            continue
        names = list(e.exact_models)
        if e.known and len(names) < len(e.patterns):
            names += [mid for mid, _ in vendor_models(e.prices_id) if e.wants(mid)]
        for name in names:
            if any(d.vendor.name == e.name and d.upstream_model == name for m in models.values() for d in m.deployments):
                continue
            m = discovered_model(e, name)
            if m is None:
                raise CatalogError(f"providers.{e.name}.models: {name!r} has no known price; set "
                                   f"providers.{e.name}.input_usd_per_mtok and output_usd_per_mtok")
            out.setdefault(e.name, []).append(m)
    return out


def load_catalog(settings: Settings, *, port: int | None = None) -> Catalog:
    entries, warnings = build_providers(settings, port or settings.port)
    vendors = {n: e.vendor for n, e in entries.items()}
    usable = [n for n, e in entries.items() if n != "demo" and e.vendor.configured]   # keyless ones too
    demo_on, demo_why = demo_state(settings, usable)
    if not demo_on:
        vendors["demo"] = dataclasses.replace(vendors["demo"], needs_key=True)   # unusable
        entries["demo"] = dataclasses.replace(entries["demo"], vendor=vendors["demo"])
    extra = read_catalog_file(settings.catalog_path) if settings.catalog_path else {}
    rows = [] if extra.get("replace_shipped_models") else list(shipped("models.toml")["model"])
    by_id: dict[str, dict] = {}
    for r in rows:
        by_id[r["id"]] = r
    for i, r in enumerate(extra.get("model", [])):
        if not isinstance(r, dict) or not isinstance(r.get("id"), str):
            raise CatalogError(f"{settings.catalog_path}: model[{i}]: needs an 'id'")
        if not _MODEL_ID.fullmatch(r["id"]) or r["id"] == AUTO_MODEL:   # as the admin API's allowlists name them
            raise CatalogError(f"{settings.catalog_path}: model[{i}].id: {r['id']!r} is not a model id (1 to 200 "
                               f"characters, no commas, spaces or control characters; not {AUTO_MODEL!r})")
        by_id[r["id"]] = {**by_id.get(r["id"], {}), **r}
    models: dict[str, ModelInfo] = {}
    for mid, r in by_id.items():
        entry = entries.get(str(r.get("provider")))
        m = ModelInfo(**row_fields(r, entry, f"model[{mid}]", DEFAULT_PROFILE))
        if entry is not None and entry.patterns and entry.known and not entry.wants(m.deployments[0].upstream_model):
            continue     # the operator narrowed this vendor to some models
        models[mid] = m
    named = _named_models(entries, models)
    _extra_deployments(extra.get("deployment", []), models, vendors)
    for mid, m in list(models.items()):   # provider-level upstream caps apply to every deployment
        deps = []
        for d in m.deployments:
            conf = settings.providers.get(d.vendor.name)
            if conf and (conf.rpm or conf.tpm):
                d = dataclasses.replace(d, rpm=d.rpm or conf.rpm, tpm=d.tpm or conf.tpm)
            deps.append(d)
        models[mid] = dataclasses.replace(m, deployments=tuple(deps))
    return Catalog(models, vendors, dict(extra.get("aliases", {})),
                   {k: list(v) for k, v in extra.get("fallbacks", {}).items()},
                   providers=entries, warnings=warnings, named=named, demo_why=demo_why)

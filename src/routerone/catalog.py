"""The model catalog: vendors and models as data, resolved against the operator's settings.

Shipped data lives in `providers/data/{vendors,models}.toml`; an operator file (`catalog_path`,
same format) replaces or adds `[[model]]` entries (or, with `replace_shipped_models = true`, is the
whole catalog), adds `[[deployment]]` rows (more places to serve a public model, with weights and
caps), `[aliases]` (name -> model) and `[fallbacks]` (model -> ordered fallback models).
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from .billing.prices import Price, usd_to_micros
from .errors import ModelNotFound
from .providers.base import Deployment, Vendor
from .providers.demo import demo_state
from .settings import Settings

__all__ = ["ModelInfo", "Catalog", "load_catalog", "AUTO_MODEL"]

AUTO_MODEL = "auto"


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

    @property
    def output_cap(self) -> int:
        return self.default_max_tokens or self.max_output


def _read(path: Path | str) -> dict[str, Any]:
    p = Path(path)
    text = p.read_text()
    return json.loads(text) if p.suffix == ".json" else tomllib.loads(text)


def _shipped(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("routerone.providers").joinpath("data").joinpath(name).read_text())


def _vendors(settings: Settings, port: int) -> dict[str, Vendor]:
    out: dict[str, Vendor] = {}
    for name, raw in _shipped("vendors.toml").items():
        conf = settings.providers.get(name)
        v = Vendor(name=name, protocol=raw["protocol"], base_url=raw["base_url"],
                   auth=raw.get("auth", "bearer"), chat_path=raw.get("chat_path", "/chat/completions"),
                   query=dict(raw.get("query", {})), rename=dict(raw.get("rename", {})),
                   drop=tuple(raw.get("drop", ())), stream_usage=raw.get("stream_usage", True),
                   needs_key=raw.get("needs_key", True), label=raw.get("label", name))
        if conf is not None:
            v = dataclasses.replace(
                v, api_key=conf.api_key or v.api_key, base_url=conf.base_url or v.base_url,
                query={**v.query, "api-version": conf.api_version} if conf.api_version else v.query)
        out[name] = v
    return out


def _price(raw: dict, where: str) -> Price:
    def get(k: str) -> int | None:
        return usd_to_micros(raw[k], what=f"{where}.{k}") if raw.get(k) is not None else None
    return Price(input_micros_per_mtok=get("input_usd_per_mtok") or 0,
                 output_micros_per_mtok=get("output_usd_per_mtok") or 0,
                 cached_input_micros_per_mtok=get("cached_input_usd_per_mtok"),
                 cache_write_micros_per_mtok=get("cache_write_usd_per_mtok"))


class Catalog:
    """Public model names -> ModelInfo, with aliases and `provider/model` names."""

    def __init__(self, models: dict[str, ModelInfo], vendors: dict[str, Vendor],
                 aliases: dict[str, str] | None = None, fallbacks: dict[str, list[str]] | None = None) -> None:
        self.models = models
        self.vendors = vendors
        self.aliases = aliases or {}
        self.fallbacks = fallbacks or {}   # model -> ordered fallback models

    def available(self) -> list[ModelInfo]:
        """Models with at least one deployment whose vendor is usable (credentials present). The
        demo's models only while no real model is (`auto` never picks the demo next to a provider;
        with demo = "on" they still answer when named)."""
        usable = [m for m in self.models.values() if any(d.vendor.configured for d in m.deployments)]
        real = [m for m in usable if m.provider != "demo"]
        return real or usable

    def resolve(self, name: str) -> ModelInfo:
        name = self.aliases.get(name, name)
        m = self.models.get(name)
        if m is None and "/" in name:
            vendor, _, rest = name.partition("/")
            base = self.models.get(self.aliases.get(rest, rest))
            if base is not None:
                deps = tuple(d for d in base.deployments if d.vendor.name == vendor)
                if deps:
                    m = dataclasses.replace(base, deployments=deps)
        if m is None or not any(d.vendor.configured for d in m.deployments):
            raise ModelNotFound(f"The model '{name}' does not exist or is not configured on this gateway",
                                param="model")
        return m


def _model(raw: dict, vendors: dict[str, Vendor], where: str) -> ModelInfo:
    try:
        vendor = vendors[raw["provider"]]
    except KeyError:
        raise ValueError(f"{where}.provider: unknown provider {raw.get('provider')!r}") from None
    upstream = raw.get("upstream", raw["id"])
    dep = Deployment(raw["id"], vendor, upstream, rpm=raw.get("rpm"), tpm=raw.get("tpm"))
    return ModelInfo(
        id=raw["id"], provider=vendor.name, context_window=int(raw["context_window"]),
        max_output=int(raw["max_output"]), price=_price(raw, where), deployments=(dep,),
        default_max_tokens=raw.get("default_max_tokens"), tools=raw.get("tools", True),
        vision=raw.get("vision", False), json_schema=raw.get("json_schema", True),
        stream_usage=raw.get("stream_usage", True), quality=float(raw.get("quality", 0.5)),
        label=raw.get("label", ""))


def _extra_deployments(rows: Iterable[dict], models: dict[str, ModelInfo],
                       vendors: dict[str, Vendor]) -> None:
    for i, row in enumerate(rows):
        where = f"deployment[{i}]"
        m = models.get(row.get("model", ""))
        if m is None or row.get("provider") not in vendors:
            raise ValueError(f"{where}: needs a known 'model' and 'provider'")
        dep = Deployment(m.id, vendors[row["provider"]], row.get("upstream", m.id),
                         weight=int(row.get("weight", 1)), rpm=row.get("rpm"), tpm=row.get("tpm"))
        deps = m.deployments if row.get("append", True) else ()
        models[m.id] = dataclasses.replace(m, deployments=deps + (dep,))


def load_catalog(settings: Settings, *, port: int | None = None) -> Catalog:
    vendors = _vendors(settings, port or settings.port)
    for name, conf in settings.providers.items():
        if name not in vendors:
            raise ValueError(f"providers.{name}: unknown provider (known: {', '.join(sorted(vendors))})")
    if not demo_state(settings)[0]:
        vendors["demo"] = dataclasses.replace(vendors["demo"], needs_key=True)  # unusable
    extra: dict[str, Any] = _read(settings.catalog_path) if settings.catalog_path else {}
    rows = [] if extra.get("replace_shipped_models") else list(_shipped("models.toml")["model"])
    by_id = {r["id"]: r for r in rows}
    for r in extra.get("model", []):
        by_id[r["id"]] = {**by_id.get(r["id"], {}), **r}
    models = {mid: _model(r, vendors, f"model[{mid}]") for mid, r in by_id.items()}
    _extra_deployments(extra.get("deployment", []), models, vendors)
    # provider-level upstream caps apply to every deployment on that provider
    for mid, m in list(models.items()):
        deps = []
        for d in m.deployments:
            conf = settings.providers.get(d.vendor.name)
            if conf and (conf.rpm or conf.tpm):
                d = dataclasses.replace(d, rpm=d.rpm or conf.rpm, tpm=d.tpm or conf.tpm)
            deps.append(d)
        models[mid] = dataclasses.replace(m, deployments=tuple(deps))
    return Catalog(models, vendors, dict(extra.get("aliases", {})),
                   {k: list(v) for k, v in extra.get("fallbacks", {}).items()})

"""Reading catalog data strictly: `[[model]]` rows and the operator's `catalog_path` file.

Every mistake is a `CatalogError` (a `SettingsError`: the CLI prints it as one line, exit 2) that
names the file, the model and the key: unknown keys (`qualty`), wrong types, a model with no price.
"""
from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

from .billing.pricebook import lookup_price
from .billing.prices import Price, price_to_micros
from .nested_parse import parse_json, parse_toml
from .providers.base import Deployment
from .providers.vendors import ProviderEntry
from .settings import SettingsError, read_text_file, unique_keys

__all__ = ["CatalogError", "read_catalog_file", "row_fields", "price_for"]


class CatalogError(SettingsError):
    pass


_PRICE_KEYS = ("input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok", "cache_write_usd_per_mtok")
_ROW_TYPES: dict[str, type | tuple[type, ...]] = {
    "id": str, "provider": str, "upstream": str, "context_window": int, "max_output": int,
    "default_max_tokens": int, "tools": bool, "vision": bool, "json_schema": bool, "stream_usage": bool,
    "quality": (int, float), "label": str, "rpm": int, "tpm": int,
    **{k: (str, int, float) for k in _PRICE_KEYS},
}
_FILE_KEYS = {"model", "deployment", "aliases", "fallbacks", "replace_shipped_models"}


def read_catalog_file(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        text = read_text_file(path)
    except OSError as exc:
        raise CatalogError(f"catalog_path: cannot read {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(f"catalog_path: {path!r} is not UTF-8 text (offset {exc.start})") from None
    try:
        data = parse_json(text, object_pairs_hook=unique_keys) if p.suffix == ".json" else parse_toml(text)
    except ValueError as exc:       # NestedTooDeep too: "nested too deep"
        raise CatalogError(f"catalog_path: {path!r} is not valid {'JSON' if p.suffix == '.json' else 'TOML'}: "
                           f"{str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"catalog_path: {path!r}: top level must be a table")
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise CatalogError(f"catalog_path: {path!r}: unknown key(s) {', '.join(sorted(unknown))} "
                           f"(known: {', '.join(sorted(_FILE_KEYS))})")
    for key, kind in (("model", list), ("deployment", list), ("aliases", dict), ("fallbacks", dict)):
        if key in data and not isinstance(data[key], kind):
            raise CatalogError(f"catalog_path: {path!r}: {key} must be {'an array of tables' if kind is list else 'a table'}")
    for name, target in data.get("aliases", {}).items():      # a number was a 500 on each request for it
        if not isinstance(target, str):
            raise CatalogError(f"aliases.{name}: must be a model name (a string), got {_shown(target)}")
    for name, chain in data.get("fallbacks", {}).items():     # a string was read as its letters
        if not isinstance(chain, list) or not all(isinstance(m, str) for m in chain):
            raise CatalogError(f"fallbacks.{name}: must be a list of model names, got {_shown(chain)}")
    return data


def _shown(value: Any) -> str:
    """A value for an error line, shortened (reprlib: a few items, a few levels): its repr could be
    megabytes, or nested too deep to write."""
    return _SHORT.repr(value)


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 100


def _check_row(r: dict, where: str) -> None:
    unknown = set(r) - set(_ROW_TYPES)
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_ROW_TYPES))})")
    for k, v in r.items():
        t = _ROW_TYPES[k]
        if not isinstance(v, t) or (isinstance(v, bool) and t is not bool):
            raise CatalogError(f"{where}.{k}: wrong type {type(v).__name__} ({v!r})")
    for k in ("context_window", "max_output", "default_max_tokens", "rpm", "tpm"):
        if k in r and r[k] < 1:
            raise CatalogError(f"{where}.{k}: must be >= 1, got {r[k]}")
    if "quality" in r and not 0 <= r["quality"] <= 1:
        raise CatalogError(f"{where}.quality: must be between 0 and 1, got {r['quality']}")


def _row_price(r: dict, where: str) -> Price | None:
    if not any(k in r for k in _PRICE_KEYS):
        return None
    try:
        def get(k: str) -> int | None:
            return price_to_micros(r[k], what=f"{where}.{k}") if r.get(k) is not None else None
        return Price(input_micros_per_mtok=get("input_usd_per_mtok") or 0,
                     output_micros_per_mtok=get("output_usd_per_mtok") or 0,
                     cached_input_micros_per_mtok=get("cached_input_usd_per_mtok"),
                     cache_write_micros_per_mtok=get("cache_write_usd_per_mtok"))
    except ValueError as exc:
        raise CatalogError(str(exc)) from None


def price_for(entry: ProviderEntry, upstream: str, row_price: Price | None) -> tuple[Price | None, str]:
    """(price, where it came from): the row's own, genai-prices, the provider's setting, or none."""
    if row_price is not None:
        return row_price, "catalog"
    known = lookup_price(entry.prices_id, upstream)
    if known is not None:
        return known, "genai-prices"
    if entry.unknown_price is not None:
        return entry.unknown_price, "keyless" if not entry.vendor.api_key and entry.unknown_price == Price() else "provider"
    return None, ""


def row_fields(r: dict, entry: ProviderEntry | None, where: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The ModelInfo fields of one `[[model]]` row (defaults for what it leaves out)."""
    _check_row(r, where)
    if entry is None:
        raise CatalogError(f"{where}.provider: unknown provider {r.get('provider')!r}")
    upstream = r.get("upstream", r["id"])
    price, source = price_for(entry, upstream, _row_price(r, where))
    if price is None:
        raise CatalogError(f"{where}: no price (not in genai-prices for {entry.name!r}); set input_usd_per_mtok "
                           f"and output_usd_per_mtok in the row or on providers.{entry.name}")
    dep = Deployment(r["id"], entry.vendor, upstream, rpm=r.get("rpm"), tpm=r.get("tpm"))
    has_profile = "context_window" in r and "quality" in r
    return dict(id=r["id"], provider=entry.name,
                context_window=int(r.get("context_window", defaults["context_window"])),
                max_output=int(r.get("max_output", defaults["max_output"])), price=price, deployments=(dep,),
                default_max_tokens=r.get("default_max_tokens"), tools=r.get("tools", defaults["tools"]),
                vision=r.get("vision", defaults["vision"]), json_schema=r.get("json_schema", defaults["json_schema"]),
                stream_usage=r.get("stream_usage", True), quality=float(r.get("quality", defaults["quality"])),
                label=r.get("label", ""), profile="catalog" if has_profile else "default", price_source=source)

"""Prices from pydantic's `genai-prices` (MIT, data shipped inside the wheel, no download at run
time), converted exactly to Router One's integer micro-dollars per 1M tokens.

Only the bundled snapshot is read (`genai_prices.data`): its auto-updater is never started, so
nothing is fetched. Lookups happen at start-up and on discovery refreshes, never per request.

Conversions, all conservative (never charge less than the upstream may):
- a price that changes by date: the latest one already in force today;
- a price that changes by time of day (DeepSeek's off-peak discount): the highest of them;
- tiered prices (whole request dearer above N prompt tokens): `Price.long_context` from the first
  tier's threshold at the highest tier's price;
- a price finer than one micro-dollar per 1M tokens is rounded up to the next micro-dollar.
"""
from __future__ import annotations

import datetime as _dt
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from importlib.metadata import version
from typing import Any, Iterator

from .prices import MICROS_PER_USD, Price

__all__ = ["lookup_price", "lookup_context_window", "vendor_models", "genai_prices_version", "price_provider_ids"]

_FIELDS = {"input_mtok": "input_micros_per_mtok", "output_mtok": "output_micros_per_mtok",
           "cache_read_mtok": "cached_input_micros_per_mtok", "cache_write_mtok": "cache_write_micros_per_mtok"}


def genai_prices_version() -> str:
    return version("genai-prices")


@lru_cache(maxsize=1)
def _providers() -> dict[str, Any]:
    from genai_prices.data import providers   # the bundled snapshot: a Python module, no I/O beyond import
    return {p.id: p for p in providers}


def price_provider_ids() -> frozenset[str]:
    """The provider ids genai-prices knows (what a provider's `prices` setting may name)."""
    return frozenset(_providers())


def _micros(usd_per_mtok: Decimal) -> int:
    return int((Decimal(usd_per_mtok) * MICROS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def _value(v: Any) -> tuple[Decimal, int | None, Decimal]:
    """(base, first tier start, highest tier price) of a plain or tiered price."""
    tiers = getattr(v, "tiers", None)
    if tiers:
        return v.base, min(t.start for t in tiers), max(t.price for t in tiers)
    base = getattr(v, "base", v)
    return base, None, base


def _current(prices: Any, today: _dt.date) -> list[Any]:
    """The ModelPrice objects that may apply now (see the module docstring)."""
    if not isinstance(prices, list):
        return [prices]
    dated = [c for c in prices if type(c.constraint).__name__ != "TimeOfDateConstraint"
             and (c.constraint is None or c.constraint.start_date <= today)]
    timed = [c for c in prices if type(c.constraint).__name__ == "TimeOfDateConstraint"]
    out = [dated[-1].prices] if dated else []
    return out + [c.prices for c in timed]


def _convert(candidates: list[Any]) -> Price | None:
    base: dict[str, int] = {}
    long: dict[str, int] = {}
    start: int | None = None
    for mp in candidates:
        for src, dst in _FIELDS.items():
            v = mp.__dict__.get(src)
            if v is None:
                continue
            b, tier_start, top = _value(v)
            base[dst] = max(base.get(dst, 0), _micros(b))
            long[dst] = max(long.get(dst, 0), _micros(top))
            if tier_start is not None:
                start = tier_start if start is None else min(start, tier_start)
    if "input_micros_per_mtok" not in base or "output_micros_per_mtok" not in base:
        return None   # not a per-token chat price (images, audio hours, ...)
    tier = Price(**long) if start is not None and long != base else None
    return Price(**base, long_context_from_tokens=start if tier else None, long_context=tier)


def _find(provider_id: str, model: str) -> Any | None:
    p = _providers().get(provider_id)
    if p is None:
        return None
    try:
        return p.find_model(model.lower(), all_providers=list(_providers().values()))
    except (LookupError, ValueError):
        return None


def lookup_price(provider_id: str | None, model: str, today: _dt.date | None = None) -> Price | None:
    """The price of `model` at genai-prices provider `provider_id`, or None when it is not known."""
    if not provider_id:
        return None
    m = _find(provider_id, model)
    return _convert(_current(m.prices, today or _dt.date.today())) if m is not None else None


def lookup_context_window(provider_id: str | None, model: str) -> int | None:
    m = _find(provider_id, model) if provider_id else None
    return getattr(m, "context_window", None) if m is not None else None


def vendor_models(provider_id: str | None, today: _dt.date | None = None) -> Iterator[tuple[str, Price]]:
    """Every priced, non-deprecated chat model genai-prices knows at this provider."""
    p = _providers().get(provider_id or "")
    if p is None:
        return
    for m in p.models:
        if getattr(m, "deprecated", False):
            continue
        price = _convert(_current(m.prices, today or _dt.date.today()))
        if price is not None:
            yield m.id, price

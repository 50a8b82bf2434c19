"""Form fields -> typed values, each failure an InvalidRequest naming the field."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Mapping

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ..billing.prices import usd_to_micros
from ..errors import InvalidRequest

__all__ = ["read_form", "text", "opt_int", "opt_usd", "usd_amount", "opt_date", "model_list"]


async def read_form(request: web.Request) -> Mapping:
    """The posted form. One that no browser sends (multipart without a boundary or with a nameless
    field, bytes that are not its charset, an unknown charset, a body that does not match its
    Content-Encoding) is a 400, not a 500 with a traceback."""
    try:
        return await request.post()
    except (ValueError, LookupError, RequestPayloadError):    # UnicodeDecodeError is a ValueError
        raise InvalidRequest("The form could not be read", code="invalid_body") from None


def text(form: Mapping, name: str, *, max_chars: int = 200) -> str:
    value = form.get(name, "")
    value = value.strip() if isinstance(value, str) else ""
    if len(value) > max_chars:
        raise InvalidRequest(f"{name} is longer than {max_chars} characters", param=name)
    if "\x00" in value:      # PostgreSQL's text cannot hold it: a 500 when stored or searched for
        raise InvalidRequest(f"{name} must not contain a NUL character", param=name)
    return value


_DIGITS = re.compile(r"[0-9]{1,30}")
_USD = re.compile(r"[0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30}")     # 12.50, 12, 12., .5


def opt_int(form: Mapping, name: str, *, minimum: int = 1, maximum: int = 10**9) -> int | None:
    raw = text(form, name)
    if not raw:
        return None
    if not _DIGITS.fullmatch(raw):     # int() also reads "١" (1) and "1_0" (10)
        raise InvalidRequest(f"{name} must be a whole number", param=name)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidRequest(f"{name} must be between {minimum} and {maximum}", param=name)
    return value


def opt_usd(form: Mapping, name: str, *, maximum_usd: int = 1_000_000) -> int | None:
    raw = text(form, name).lstrip("$")
    if not raw:
        return None
    try:
        if not _USD.fullmatch(raw):     # Decimal also reads "١٠٠" (100), "1_0" (10) and "1e2" (100)
            raise ValueError(raw)
        if Decimal(raw) > maximum_usd:
            raise InvalidRequest(f"{name} must be at most ${maximum_usd:,}", param=name)
        return usd_to_micros(raw, what=name)
    except (ValueError, InvalidOperation):
        raise InvalidRequest(f"{name} must be a positive amount in dollars, e.g. 12.50", param=name) from None


def usd_amount(form: Mapping, name: str) -> int:
    value = opt_usd(form, name)
    if not value:
        raise InvalidRequest(f"{name} must be a positive amount in dollars, e.g. 12.50", param=name)
    return value


def opt_date(form: Mapping, name: str) -> float | None:
    """'YYYY-MM-DD' -> unix time of that day's start (UTC)."""
    raw = text(form, name, max_chars=10)
    if not raw:
        return None
    try:
        return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise InvalidRequest(f"{name} must be a date like 2026-12-31", param=name) from None


def model_list(form: Mapping, name: str, known: set[str]) -> tuple[str, ...]:
    raw = text(form, name, max_chars=2000)
    models = tuple(dict.fromkeys(m.strip() for m in raw.replace("\n", ",").split(",") if m.strip()))
    unknown = [m for m in models if m not in known]
    if unknown:
        raise InvalidRequest(f"{name}: unknown model(s) {', '.join(unknown[:5])}", param=name)
    return models

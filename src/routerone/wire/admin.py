"""Admin API bodies and query strings: strict pydantic models, parsed from the raw bytes.

Strict means: JSON types only as declared (a bool is not an integer, "5" is not a number, 1.5 is
not an integer; 5.0 is the integer 5, as JSON Schema counts it), ranges
and enums checked, unknown fields refused; every failure is an `InvalidRequest` whose `param`
names the field. Money is given either in micro-dollars (`*_micros`, an integer) or in US dollars
(`*_usd`, a decimal string like "12.50" or a JSON number), exact to the micro-dollar: a sub-micro
amount is refused, never rounded. The same models give the JSON Schemas of /openapi.json, so the
reference cannot drift from what the API accepts.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Mapping, TypeVar

from pydantic import (BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema,
                      model_validator)

from ..errors import InvalidRequest, echo
from ..store.bounds import MAX_AMOUNT_MICROS, MAX_BALANCE_MICROS, MAX_SPEND_CAP_MICROS
from .decimal_text import ascii_decimal

__all__ = ["AccountCreate", "AccountUpdate", "BalanceChange", "KeyCreate", "KeyUpdate", "Empty",
           "ListQuery", "KeysQuery", "UsageQueryParams", "AuditQueryParams", "parse_body", "parse_query",
           "usd_to_micros", "BODY_MODELS", "QUERY_MODELS", "MAX_INT32", "MAX_ID", "MAX_MARKUP_BPS",
           "MAX_PAGE", "MAX_EXPIRES_AT"]

MAX_INT32 = 2**31 - 1            # rpm / tpm / concurrency / markup columns are INTEGER
MAX_ID = 2**63 - 1               # ids are BIGINT
MAX_MARKUP_BPS = 1_000_000       # +10,000%: a price times 101 at most
MAX_PAGE = 100_000               # rows in one listing
MAX_EXPIRES_AT = 253_402_300_799.0   # 9999-12-31T23:59:59Z
MAX_MODELS = 1_000
M = TypeVar("M", bound=BaseModel)

_USD_TEXT = re.compile(r"[0-9]{1,13}(\.[0-9]{1,6}0*)?")
_MODEL_NAME = r"^[^,\x00 \t\n\r]{1,200}$"
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})")
_NO_NUL = r"^[^\x00]*$"


_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def usd_to_micros(value: Any, *, maximum: int = MAX_AMOUNT_MICROS) -> int:
    """A USD amount (decimal string, int, or an exact decimal) -> integer micro-dollars, > 0 and <=
    maximum. Sub-micro amounts raise ValueError (never rounded)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal, float)):
        raise ValueError("must be a decimal string like \"12.50\" or a number")
    if isinstance(value, str):
        if not _USD_TEXT.fullmatch(value):
            raise ValueError("must be a decimal string like \"12.50\": digits, then optionally '.' and at most "
                             "6 decimals (finer than a micro-dollar is refused)")
        value = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        value = Decimal(repr(value))
    try:
        value = Decimal(value)
    except InvalidOperation:
        raise ValueError("is not a number") from None
    if not value.is_finite():
        raise ValueError("must be a finite number")
    if value.adjusted() > 18:           # far above any maximum; 1e999999999 * 10**6 would overflow
        raise ValueError(f"must be more than 0 and at most {maximum / 1e6:.0f} USD")
    micros = value.scaleb(6, _EXACT)     # never rounded (the default context keeps 28 digits)
    if micros != micros.to_integral_value():
        raise ValueError("is more precise than a micro-dollar (at most 6 decimals)")
    if not 0 < micros <= maximum:
        raise ValueError(f"must be more than 0 and at most {maximum / 1e6:.0f} USD")
    return int(micros)


def _usd(maximum: int) -> Any:
    return Annotated[int, PlainValidator(lambda v: usd_to_micros(v, maximum=maximum)), WithJsonSchema({
        "anyOf": [{"type": "string", "pattern": r"^[0-9]{1,13}(\.[0-9]{1,6}0*)?$"},
                  {"type": "number", "exclusiveMinimum": 0, "maximum": maximum / 1e6}],
        "description": f"US dollars, exact to the micro-dollar (at most 6 decimals), at most {maximum / 1e6:.0f}"})]


def _timestamp(value: Any) -> float:
    if isinstance(value, str):
        try:
            if not _RFC3339.fullmatch(value):
                raise ValueError
            dt = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("must be a unix timestamp (seconds) or an RFC 3339 date-time with a time zone") from None
        value = dt.timestamp()
    elif isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError("must be a unix timestamp (seconds) or an RFC 3339 date-time with a time zone")
    try:
        ts = float(value)
    except OverflowError:       # an integer of 309+ digits (JSON sets no size): no float holds it
        ts = math.inf
    if not (math.isfinite(ts) and 0 <= ts <= MAX_EXPIRES_AT):
        raise ValueError(f"must be between 0 and {MAX_EXPIRES_AT:.0f} (year 9999)")
    return ts


_ISO_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
                            r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?)?")
_UNIX_SECONDS = re.compile(r"[0-9]{1,15}(\.[0-9]{1,9})?")
_QUERY_TIME = ("must be unix seconds or an ISO 8601 date or date-time (2026-12-01, 2026-12-01T10:00:00Z, "
               "2026-12-01T10:00:00+02:00; UTC when no offset is given)")


def _query_time(value: Any) -> float:
    """A time bound in a query string: unix seconds, or an ISO 8601 / RFC 3339 date or date-time
    (a date is its UTC midnight; without an offset, UTC), as `routerone usage --since` reads it."""
    if not isinstance(value, str):
        raise ValueError(_QUERY_TIME)
    if _UNIX_SECONDS.fullmatch(value):
        ts = float(value)
    elif _ISO_DATE_TIME.fullmatch(value):
        try:
            dt = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(_QUERY_TIME) from None
        ts = (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
    else:
        raise ValueError(_QUERY_TIME)
    if not 0 <= ts <= MAX_EXPIRES_AT:
        raise ValueError(f"must be between 0 and {MAX_EXPIRES_AT:.0f} (year 9999)")
    return ts


QueryTime = Annotated[float, PlainValidator(_query_time), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": r"^[0-9]{1,15}(\.[0-9]{1,9})?$"}, {"type": "string", "format": "date"},
              {"type": "string", "format": "date-time"}],
    "description": "unix seconds, or an ISO 8601 date or date-time (UTC when no offset is given)"})]
Timestamp = Annotated[float, PlainValidator(_timestamp), WithJsonSchema({
    "anyOf": [{"type": "number", "minimum": 0, "maximum": MAX_EXPIRES_AT},
              {"type": "string", "format": "date-time"}],
    "description": "unix time in seconds, or an RFC 3339 date-time with a time zone"})]
Text = Annotated[str, Field(max_length=1000, pattern=_NO_NUL)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_NUL)]
# a limit of 0 was stored and meant no limit at all (`rpm or default`); 1.. or null (no limit)
Limit = Annotated[int, Field(ge=1, le=MAX_INT32)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
ModelName = Annotated[str, Field(pattern=_MODEL_NAME)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, hide_input_in_errors=True)


def _one_of(data: Any, micros: str, usd: str, *, required: bool) -> Any:
    if isinstance(data, dict):
        if micros in data and usd in data:
            raise InvalidRequest(f"Give either '{micros}' or '{usd}', not both", param=usd)
        if required and micros not in data and usd not in data:
            raise InvalidRequest(f"'{micros}' (or '{usd}') is required", param=micros)
    return data


def _exactly_one(a: str, b: str) -> dict:
    return {"oneOf": [{"required": [a]}, {"required": [b]}]}


def _not_both(a: str, b: str) -> dict:
    return {"not": {"required": [a, b]}}


class _Limits(_Strict):
    rpm: Limit | None = Field(None, description="requests per minute, >= 1 (null: no limit)")
    tpm: Limit | None = Field(None, description="tokens per minute, >= 1 (null: no limit)")
    concurrency: Limit | None = Field(None, description="requests in flight at once, >= 1 (null: no limit)")


class AccountCreate(_Limits):
    """A new account, optionally with an opening balance."""
    model_config = ConfigDict(json_schema_extra=_not_both("balance_micros", "balance_usd"))
    name: Name
    markup_bps: Annotated[int, Field(ge=0, le=MAX_MARKUP_BPS)] = Field(
        0, description="added to every price, in basis points (100 = +1%)")
    balance_micros: Annotated[int, Field(ge=0, le=MAX_BALANCE_MICROS)] | None = Field(
        None, description="opening balance in micro-dollars")
    balance_usd: _usd(MAX_BALANCE_MICROS) | None = Field(None, description="opening balance in US dollars")

    @model_validator(mode="before")
    @classmethod
    def _money(cls, data: Any) -> Any:
        return _one_of(data, "balance_micros", "balance_usd", required=False)


class AccountUpdate(_Limits):
    """Changes to an account: only the fields given change; null removes a limit."""
    markup_bps: Annotated[int, Field(ge=0, le=MAX_MARKUP_BPS)] = Field(
        None, description="added to every price, in basis points")


class BalanceChange(_Strict):
    """A credit or a debit: an amount in micro-dollars or in USD (exactly one), and a note."""
    model_config = ConfigDict(json_schema_extra=_exactly_one("amount_micros", "amount_usd"))
    amount_micros: Annotated[int, Field(ge=1, le=MAX_AMOUNT_MICROS)] | None = Field(
        None, description="the amount in micro-dollars (1,000,000 = $1)")
    amount_usd: _usd(MAX_AMOUNT_MICROS) | None = Field(None, description="the amount in US dollars")
    note: Text = Field("", description="shown in the ledger")

    @model_validator(mode="before")
    @classmethod
    def _money(cls, data: Any) -> Any:
        return _one_of(data, "amount_micros", "amount_usd", required=True)


class _KeyFields(_Limits):
    model_config = ConfigDict(json_schema_extra=_not_both("spend_cap_micros", "spend_cap_usd"))
    spend_cap_micros: Annotated[int, Field(ge=0, le=MAX_SPEND_CAP_MICROS)] | None = Field(
        None, description="the most this key may ever spend (null: no cap)")
    spend_cap_usd: _usd(MAX_SPEND_CAP_MICROS) | None = Field(None, description="the spend cap in USD (null: no cap)")
    allowed_models: Annotated[list[ModelName], Field(max_length=MAX_MODELS)] = Field(
        None, description="model ids this key may use ([]: any model; `provider/model`: only through that "
                          "provider); `auto` routes among them")
    expires_at: Timestamp | None = Field(None, description="when the key stops working (null: never)")

    @model_validator(mode="before")
    @classmethod
    def _money(cls, data: Any) -> Any:
        return _one_of(data, "spend_cap_micros", "spend_cap_usd", required=False)


KeyName = Annotated[str, Field(max_length=200, pattern=_NO_NUL)]
Wtp = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
_STRATEGY = "routing strategy for `auto` with this key (one of the gateway's strategies, e.g. balanced)"
_WTP = ("the balanced router's knob for `auto` with this key, 0 (cheapest) .. 1 (strongest); "
        "a request's `route.willingness_to_pay` or header overrides it")


class KeyCreate(_KeyFields):
    """A new API key for an account; the secret is in the reply, shown once."""
    account_id: Id
    name: KeyName = ""
    role: Literal["user", "admin"] = "user"
    strategy: str | None = Field(None, description=f"{_STRATEGY}; null: the gateway's default")
    willingness_to_pay: Wtp | None = Field(None, description=f"{_WTP}; null: the gateway's default")


class KeyUpdate(_KeyFields):
    """Changes to a key: only the fields given change; null removes a limit, and puts strategy and
    willingness_to_pay back to the gateway's default."""
    name: KeyName = Field(None, description="the key's name")
    strategy: str | None = Field(None, description=f"{_STRATEGY}; null: back to the gateway's default")
    willingness_to_pay: Wtp | None = Field(None, description=f"{_WTP}; null: back to the gateway's default")


class Empty(_Strict):
    """No fields."""


class ListQuery(_Strict):
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100


class KeysQuery(_Strict):
    account_id: Id | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100
    after_id: Id | None = Field(None, description="the previous page's next_after_id: keys newer than that one")


class UsageQueryParams(_Strict):
    account_id: Id | None = None
    key_id: Id | None = None
    model: Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_NUL)] | None = None
    since: QueryTime | None = None
    until: QueryTime | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100


class AuditQueryParams(_Strict):
    target: Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_NUL)] | None = Field(
        None, description='one object, e.g. "account:3" or "key:12"')
    actor: Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_NUL)] | None = Field(
        None, description='e.g. "admin-key:1", "cli", "console:ops@example.com"')
    action: Annotated[str, Field(min_length=1, max_length=100, pattern=_NO_NUL)] | None = Field(
        None, description='e.g. "key.create"; a prefix ending in "." matches a family ("key.")')
    since: QueryTime | None = None
    before_id: Id | None = Field(None, description="paging: entries older than this id (the previous "
                                                   "page's `next_before_id`)")
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


BODY_MODELS: tuple[type[BaseModel], ...] = (AccountCreate, AccountUpdate, BalanceChange, KeyCreate, KeyUpdate, Empty)
QUERY_MODELS: tuple[type[BaseModel], ...] = (ListQuery, KeysQuery, UsageQueryParams, AuditQueryParams)


_PATTERN_MESSAGES = {_NO_NUL: "must not contain a NUL character",
                     _MODEL_NAME: "must be a model id: 1 to 200 characters, no commas, spaces, tabs, newlines or NUL"}


def _loc(parts: tuple) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _raise(exc: ValidationError, where: str) -> None:
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = _loc(err["loc"])
    kind, msg = err["type"], err["msg"].removeprefix("Value error, ").removeprefix("Input ")
    if kind == "string_pattern_mismatch":
        msg = _PATTERN_MESSAGES.get(err.get("ctx", {}).get("pattern"), msg)
    if kind == "extra_forbidden":
        raise InvalidRequest(f"Unknown {where} '{echo(loc)}'", param=echo(loc), code="unknown_parameter") from None
    if kind == "missing":
        raise InvalidRequest(f"'{loc}' is required", param=loc, code="missing_required_parameter") from None
    if kind == "model_type" or not loc:
        raise InvalidRequest("The request body must be a JSON object", param=None) from None
    raise InvalidRequest(f"'{loc}' {msg[0].lower()}{msg[1:]}" if msg else f"'{loc}' is invalid", param=loc) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return out


def parse_body(model: type[M], raw: bytes) -> M:
    """Validate a JSON body (empty means {}). Numbers keep their exact decimal text (for USD). A key
    given twice is refused: which of the two counts would depend on the parser (a proxy or a log may
    read the other one), and an amount must never be ambiguous."""
    try:
        data = json.loads(raw or b"{}", parse_float=Decimal, parse_constant=_reject_constant,
                          object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        key = exc.key[:100]
        raise InvalidRequest(f"The field '{key}' is given more than once", param=key,
                             code="duplicate_parameter") from None
    except (ValueError, RecursionError):
        raise InvalidRequest("The request body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object")
    data = {k: _number(v) if isinstance(v, Decimal) and k not in _DECIMAL_FIELDS else v for k, v in data.items()}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _raise(exc, "field")
    raise AssertionError("unreachable")


_DECIMAL_FIELDS = {"balance_usd", "amount_usd", "spend_cap_usd", "expires_at"}


def _number(v: Decimal) -> int | float:
    """A JSON number: an integral one (5, 5.0, 5e3) is an integer, as JSON Schema counts it."""
    if v.is_finite() and v == v.to_integral_value() and v.adjusted() < 30:
        return int(v)
    return float(v)


def parse_query(model: type[M], query: Mapping[str, str]) -> M:
    """Validate a query string: each parameter once, typed by the model (ints and numbers as text)."""
    data: dict[str, Any] = {}
    for name in query:
        values = query.getall(name) if hasattr(query, "getall") else [query[name]]
        if len(values) > 1:
            raise InvalidRequest(f"Query parameter '{echo(name)}' is given more than once", param=echo(name))
        data[name] = _query_value(model, name, values[0])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _raise(exc, "query parameter")
    raise AssertionError("unreachable")


def _query_value(model: type[BaseModel], name: str, text: str) -> Any:
    field = model.model_fields.get(name)
    if field is None or name in ("since", "until"):         # QueryTime: its own parser
        return text
    kinds = repr(field.annotation)
    is_int = re.search(r"\bint\b", kinds) is not None
    try:
        if is_int:
            if not re.fullmatch(r"[0-9]{1,30}", text):
                raise ValueError
            return int(text)
        if re.search(r"\bfloat\b", kinds):
            value = ascii_decimal(text)     # not float(): it reads "٠.5", "0_5", "nan"
            if value is None:
                raise ValueError
            return value
    except ValueError:
        kind = "an integer" if is_int else "a number"
        raise InvalidRequest(f"Query parameter '{name}' must be {kind}", param=name) from None
    return text

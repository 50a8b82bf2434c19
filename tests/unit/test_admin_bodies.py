"""Property-based tests (hypothesis) of the admin API's body and query parsing: whatever JSON
arrives, the answer is a parsed model within its bounds or an InvalidRequest naming a field,
never another exception; USD amounts are exact to the micro-dollar and never rounded."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routerone.errors import InvalidRequest
from routerone.store.bounds import MAX_AMOUNT_MICROS, MAX_BALANCE_MICROS
from routerone.wire.admin import (BODY_MODELS, QUERY_MODELS, AccountCreate, BalanceChange, KeyCreate, KeyUpdate,
                                  parse_body, parse_query, usd_to_micros)

SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
FIELDS = sorted({name for m in BODY_MODELS for name in m.model_fields} | {"models", "balance", "x"})
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.sampled_from(["12.50", "0.000001", "0.0000001", "1e3", "tomorrow", "2030-01-01T00:00:00Z", "",
                              "demo-small", "a,b", "a\x00b", "balanced", "bogus", "user", "admin"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)


def _check_parsed(model, parsed) -> None:
    for name in ("amount_micros", "amount_usd"):
        v = getattr(parsed, name, None)
        assert v is None or (type(v) is int and 1 <= v <= MAX_AMOUNT_MICROS)
    for name in ("balance_micros", "balance_usd"):
        v = getattr(parsed, name, None)
        assert v is None or (type(v) is int and 0 <= v <= MAX_BALANCE_MICROS)
    for name in ("rpm", "tpm", "concurrency"):
        v = getattr(parsed, name, None)
        assert v is None or (type(v) is int and 1 <= v < 2**31)
    models = getattr(parsed, "allowed_models", None)
    assert models is None or all(m and "," not in m and "\x00" not in m for m in models)
    name = getattr(parsed, "name", None)        # KeyUpdate: None when not given
    assert name is None or "\x00" not in name
    wtp = getattr(parsed, "willingness_to_pay", None)
    assert wtp is None or (type(wtp) in (int, float) and 0 <= wtp <= 1)


@pytest.mark.parametrize("model", BODY_MODELS, ids=lambda m: m.__name__)
@SETTINGS
@given(body=bodies)
def test_any_json_body_is_parsed_or_refused_with_a_named_field(model, body) -> None:
    raw = json.dumps(body).encode()
    try:
        parsed = parse_body(model, raw)
    except InvalidRequest as exc:
        err = exc.to_dict()["error"]
        assert exc.status == 400 and err["type"] == "invalid_request_error" and err["message"]
        assert err["param"] is not None and err["param"].split("[")[0].split(".")[0] in {*body, *model.model_fields}
        return
    assert set(body) <= set(model.model_fields)          # nothing unknown was accepted
    _check_parsed(model, parsed)


@SETTINGS
@given(raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes_are_parsed_or_refused(raw: bytes) -> None:
    for model in (BalanceChange, KeyCreate):
        try:
            parse_body(model, raw)
        except InvalidRequest as exc:
            assert exc.status == 400


@SETTINGS
@given(micros=st.integers(min_value=1, max_value=MAX_AMOUNT_MICROS))
def test_usd_text_is_exact_to_the_micro(micros: int) -> None:
    text = f"{Decimal(micros) / 10**6:.6f}"
    assert usd_to_micros(text) == micros
    assert parse_body(BalanceChange, json.dumps({"amount_usd": text}).encode()).amount_usd == micros
    # a JSON number keeps its decimal text (parsed as Decimal, never through a float)
    assert parse_body(BalanceChange, f'{{"amount_usd": {text}}}'.encode()).amount_usd == micros


@SETTINGS
@given(micros=st.integers(min_value=0, max_value=MAX_AMOUNT_MICROS - 1), extra=st.integers(1, 9))
def test_sub_micro_amounts_are_refused_never_rounded(micros: int, extra: int) -> None:
    text = f"{Decimal(micros) / 10**6:.6f}{extra}"
    with pytest.raises(InvalidRequest) as info:
        parse_body(BalanceChange, json.dumps({"amount_usd": text}).encode())
    assert info.value.param == "amount_usd"
    with pytest.raises(InvalidRequest):
        parse_body(BalanceChange, f'{{"amount_usd": {text}}}'.encode())


@pytest.mark.parametrize("model", QUERY_MODELS, ids=lambda m: m.__name__)
@SETTINGS
@given(query=st.dictionaries(st.sampled_from(["limit", "account_id", "key_id", "since", "model", "target",
                                              "before_id", "x"]), st.text(max_size=25), max_size=4))
def test_any_query_string_is_parsed_or_refused(model, query) -> None:
    try:
        parsed = parse_query(model, query)
    except InvalidRequest as exc:
        assert exc.param in query
        return
    limit = getattr(parsed, "limit", 1)
    assert type(limit) is int and 1 <= limit <= 100_000


def test_examples_from_the_report() -> None:
    for model, body, param in ((KeyUpdate, {"expires_at": "tomorrow"}, "expires_at"),
                               (KeyUpdate, {"allowed_models": "demo-small"}, "allowed_models"),
                               (KeyUpdate, {"allowed_models": ""}, "allowed_models"),
                               (BalanceChange, {"amount_micros": 2**63 - 1}, "amount_micros"),
                               (KeyCreate, {"account_id": 1, "models": []}, "models"),
                               (AccountCreate, {"name": "x", "balance_usd": "0.0000001"}, "balance_usd")):
        with pytest.raises(InvalidRequest) as info:
            parse_body(model, json.dumps(body).encode())
        assert info.value.param == param

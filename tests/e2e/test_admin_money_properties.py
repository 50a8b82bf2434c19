"""Property-based (hypothesis) against a real gateway: any sequence of credits and debits, with
any amounts in micros or USD (valid, huge, negative, sub-micro, of the wrong JSON type), leaves
the account exact: every answer is a 200 or a 400 in the seed's error shape, the balance equals
the sum of the accepted amounts and the ledger's sum, all integers, never above the maximum."""
from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routerone.settings import Settings
from routerone.store.bounds import MAX_AMOUNT_MICROS, MAX_BALANCE_MICROS
from routerone.testing.harness import ADMIN_KEY, Gateway

micros = st.one_of(st.integers(min_value=-10, max_value=10**6), st.integers(min_value=10**14, max_value=2**64),
                   st.sampled_from([MAX_AMOUNT_MICROS, MAX_BALANCE_MICROS, 2**63 - 1, 2**63, 0]))
usd = st.one_of(micros.map(lambda m: f"{Decimal(m) / 10**6:f}"), st.decimals(allow_nan=False, allow_infinity=False,
                                                                              places=7).map(str),
                st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
junk = st.one_of(st.booleans(), st.none(), st.text(max_size=8), st.lists(st.integers(), max_size=2))
amount_field = st.one_of(micros.map(lambda v: {"amount_micros": v}), usd.map(lambda v: {"amount_usd": v}),
                         junk.map(lambda v: {"amount_micros": v}), junk.map(lambda v: {"amount_usd": v}))
operations = st.lists(st.tuples(st.sampled_from(["credit", "debit"]), amount_field), min_size=1, max_size=8)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[Gateway]:
    db = tmp_path_factory.mktemp("money") / "r1.db"
    with Gateway(Settings(database_url=f"sqlite:///{db}", demo="off")) as gw:
        yield gw


def _expected(kind: str, body: dict, balance: int) -> int | None:
    """The amount a correct gateway applies, or None when it must refuse."""
    (name, value), = body.items()
    if name == "amount_micros":
        if type(value) is not int:
            return None
        amount = value
    else:
        if isinstance(value, bool) or not isinstance(value, (str, float, int)):
            return None
        try:
            d = Decimal(value) if isinstance(value, str) else Decimal(repr(value))
        except ArithmeticError:
            return None
        if isinstance(value, str) and ("e" in value.lower() or value.startswith(("-", "+")) or "." in value
                                       and len(value.split(".")[1].rstrip("0")) > 6):
            return None
        m = d * 10**6
        if m != m.to_integral_value():
            return None
        amount = int(m)
    if not 1 <= amount <= MAX_AMOUNT_MICROS:
        return None
    new = balance + amount if kind == "credit" else balance - amount
    return None if new < 0 or new > MAX_BALANCE_MICROS else new - balance


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=operations)
def test_any_credit_and_debit_sequence_keeps_the_account_exact(gateway: Gateway, ops) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}
    with httpx2.Client(base_url=gateway.url, headers=headers, timeout=30) as http:
        aid = http.post("/admin/accounts", json={"name": f"prop-{uuid.uuid4().hex[:12]}"}).json()["data"]["id"]
        balance, accepted = 0, []
        for kind, body in ops:
            r = http.post(f"/admin/accounts/{aid}/{kind}", content=json.dumps(body).encode())
            want = _expected(kind, body, balance)
            assert r.status_code in (200, 400), (kind, body, r.status_code, r.text)
            if r.status_code == 400:
                err = r.json()["error"]
                assert set(err) == {"message", "type", "param", "code"} and err["param"] in ("amount_micros",
                                                                                               "amount_usd"), err
                assert want is None, (kind, body, "refused but valid", err)
                continue
            assert want is not None, (kind, body, "accepted but invalid", r.json())
            balance += want
            accepted.append(want)
            assert r.json()["data"]["balance_micros"] == balance
        acc = http.get(f"/admin/accounts/{aid}").json()["data"]
        ledger = http.get(f"/admin/accounts/{aid}/ledger", params={"limit": "1000"}).json()["data"]
    assert type(acc["balance_micros"]) is int and acc["balance_micros"] == balance == sum(accepted)
    assert sorted(e["amount_micros"] for e in ledger) == sorted(accepted)
    assert 0 <= balance <= MAX_BALANCE_MICROS

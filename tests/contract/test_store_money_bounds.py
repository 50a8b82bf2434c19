"""Both stores refuse a credit or debit that could overflow int64 or is not an exact integer
(defence in depth behind the admin API's own checks), and the ledger stays exact integers."""
from __future__ import annotations

import pytest

from routerone.store.base import Store
from routerone.store.bounds import MAX_AMOUNT_MICROS, MAX_BALANCE_MICROS, AmountOutOfRange

INT64_MAX = 2**63 - 1


async def test_a_huge_credit_is_refused_and_leaves_no_trace(store: Store) -> None:
    acc = await store.create_account("big")
    for amount in (INT64_MAX, MAX_AMOUNT_MICROS + 1, -INT64_MAX):
        with pytest.raises(AmountOutOfRange):
            await store.adjust_balance(acc.id, amount, kind="credit")
    assert await store.ledger(acc.id) == []
    assert (await store.get_account(acc.id)).balance_micros == 0


@pytest.mark.parametrize("amount", [0, 1.5, 10.0, True, "5"])
async def test_amounts_must_be_nonzero_integers(store: Store, amount) -> None:
    acc = await store.create_account("odd")
    with pytest.raises(AmountOutOfRange):
        await store.adjust_balance(acc.id, amount, kind="credit")
    assert await store.ledger_sum(acc.id) == 0


async def test_the_balance_is_capped_and_sums_stay_exact_integers(store: Store) -> None:
    acc = await store.create_account("cap")
    await store.adjust_balance(acc.id, MAX_AMOUNT_MICROS, kind="credit", actor="admin-key:1")
    with pytest.raises(AmountOutOfRange):          # the report's "credit it twice"
        await store.adjust_balance(acc.id, MAX_AMOUNT_MICROS, kind="credit")
    with pytest.raises(AmountOutOfRange):
        await store.adjust_balance(acc.id, 1, kind="credit")
    after = await store.adjust_balance(acc.id, -MAX_AMOUNT_MICROS, kind="debit")
    assert after.balance_micros == 0
    again = await store.adjust_balance(acc.id, MAX_BALANCE_MICROS, kind="credit")
    total = await store.ledger_sum(acc.id)
    assert type(total) is int and total == again.balance_micros == MAX_BALANCE_MICROS
    entries = await store.ledger(acc.id)
    assert all(type(e.amount_micros) is int for e in entries)
    assert [e.actor for e in entries][-1] == "admin-key:1"

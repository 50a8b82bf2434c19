"""Store.withdraw_unspent_grant, on both backends: what is left of a credit grant (the demo's $10) is
taken back by one ledger debit; what was used after the grant used the grant first; never more
than the available balance; asked again, nothing more is taken."""
from __future__ import annotations

import asyncio

from routerone.store.base import NewKey, Reservation, Store

GRANT, WITHDRAWN, ACTOR = "demo credit", "demo credit withdrawn", "system"
FAR_FUTURE_S = 4_102_444_800.0


async def _granted(store: Store, grant_micros: int = 10_000_000):
    acc = await store.create_account("admin")
    await store.adjust_balance(acc.id, grant_micros, kind="credit", note=GRANT, actor="cli")
    return acc


async def _charge(store: Store, acc, amount_micros: int, rid: str) -> None:
    key = await store.create_key(NewKey(account_id=acc.id, key_hash=f"h-{rid}", prefix="r1-x"))
    assert await store.reserve(Reservation(rid, acc.id, key.id, amount_micros, FAR_FUTURE_S))
    await store.settle(rid, amount_micros)


async def _withdraw(store: Store) -> int:
    got = await store.withdraw_unspent_grant(grant_note=GRANT, note=WITHDRAWN, actor=ACTOR)
    assert got is None or got[1] > 0
    return got[1] if got else 0


async def test_the_unspent_grant_is_withdrawn_once_by_one_ledger_debit(store: Store) -> None:
    acc = await _granted(store)
    await _charge(store, acc, 3_000_000, "r1")
    await store.adjust_balance(acc.id, 50_000_000, kind="credit", note="real money")
    assert await store.withdraw_unspent_grant(grant_note=GRANT, note=WITHDRAWN, actor=ACTOR) == (acc.id, 7_000_000)
    assert await _withdraw(store) == 0                      # the second start takes nothing more
    after = await store.get_account(acc.id)
    assert after.balance_micros == 50_000_000 == await store.ledger_sum(acc.id)
    debit = (await store.ledger(acc.id, limit=1))[0]
    assert (debit.kind, debit.amount_micros, debit.note, debit.actor) == ("debit", -7_000_000, WITHDRAWN, ACTOR)


async def test_nothing_is_withdrawn_once_the_grant_is_used_up(store: Store) -> None:
    acc = await _granted(store)
    await store.adjust_balance(acc.id, 5_000_000, kind="credit", note="top-up")
    await _charge(store, acc, 12_000_000, "r1")
    assert await _withdraw(store) == 0
    assert (await store.get_account(acc.id)).balance_micros == 3_000_000


async def test_at_most_the_available_balance_and_the_rest_later(store: Store) -> None:
    acc = await _granted(store)
    key = await store.create_key(NewKey(account_id=acc.id, key_hash="h-held", prefix="r1-x"))
    assert await store.reserve(Reservation("held", acc.id, key.id, 4_000_000, FAR_FUTURE_S))
    assert await _withdraw(store) == 6_000_000               # 4 are held by a request in flight
    await store.settle("held", 1_000_000)                    # it used 1 of them
    assert await _withdraw(store) == 3_000_000
    assert await _withdraw(store) == 0
    assert (await store.get_account(acc.id)).balance_micros == 0 == await store.ledger_sum(acc.id)


async def test_no_grant_no_withdrawal(store: Store) -> None:
    assert await _withdraw(store) == 0                       # no account at all
    acc = await store.create_account("admin")
    await store.adjust_balance(acc.id, 10_000_000, kind="credit", note="top-up")
    assert await _withdraw(store) == 0
    assert (await store.get_account(acc.id)).balance_micros == 10_000_000


async def test_only_the_first_account_is_looked_at(store: Store) -> None:
    first = await store.create_account("admin")
    other = await store.create_account("customer")
    await store.adjust_balance(other.id, 10_000_000, kind="credit", note=GRANT)   # an admin's own note
    assert await _withdraw(store) == 0
    assert (await store.get_account(other.id)).balance_micros == 10_000_000
    assert (await store.get_account(first.id)).balance_micros == 0


async def test_gateways_starting_together_withdraw_it_once(store: Store, store_backend) -> None:
    acc = await _granted(store)
    others = [await store_backend.open() for _ in range(3)]      # the same database, other connections
    got = await asyncio.gather(*(_withdraw(s) for s in [store, *others]))
    assert sorted(got) == [0, 0, 0, 10_000_000]
    assert (await store.get_account(acc.id)).balance_micros == 0


async def _rewrite_charges(store: Store, backend: str, account_id: int, amount_micros: int) -> None:
    """Straight into the table (never done by Router One: the ledger is append-only): the account's
    charges each say `amount_micros`. A withdrawal that sums the ledger again sees the grant as less
    used than it was; one that finds its own earlier, complete withdrawal does not read it."""
    if backend == "sqlite":
        await store._tx(lambda db: db.execute("UPDATE ledger SET amount_micros = ? WHERE account_id = ? "
                                              "AND kind = 'charge'", (amount_micros, account_id)))
    else:
        async with store._tx() as db:
            await db.execute("UPDATE ledger SET amount_micros = $1 WHERE account_id = $2 AND kind = 'charge'",
                             amount_micros, account_id)


async def test_a_start_after_the_complete_withdrawal_does_not_sum_the_ledger_again(store: Store,
                                                                                  store_backend) -> None:
    """Every start with the demo off summed the admin account's ledger since the grant, also long
    after the credit was withdrawn (a sum that grows with every charge). The complete withdrawal's
    entry is looked for first: found, nothing is summed and nothing taken."""
    acc = await _granted(store)
    await _charge(store, acc, 3_000_000, "r1")
    assert await _withdraw(store) == 7_000_000
    await store.adjust_balance(acc.id, 50_000_000, kind="credit", note="real money")
    await _rewrite_charges(store, store_backend.name, acc.id, -1_000_000)
    assert await _withdraw(store) == 0                       # summed again, 2 would have been taken
    assert (await store.get_account(acc.id)).balance_micros == 50_000_000


async def test_after_a_partial_withdrawal_the_rest_is_still_taken(store: Store, store_backend) -> None:
    """A withdrawal held back by a request in flight is noted as partial: the next start still
    sums, and takes the rest once the hold is settled; after that, nothing is summed."""
    acc = await _granted(store)
    key = await store.create_key(NewKey(account_id=acc.id, key_hash="h-held", prefix="r1-x"))
    assert await store.reserve(Reservation("held", acc.id, key.id, 4_000_000, FAR_FUTURE_S))
    assert await _withdraw(store) == 6_000_000
    partial = (await store.ledger(acc.id, limit=1))[0]
    assert partial.note.startswith(WITHDRAWN) and partial.note != WITHDRAWN
    await store.settle("held", 1_000_000)
    assert await _withdraw(store) == 3_000_000
    assert (await store.ledger(acc.id, limit=1))[0].note == WITHDRAWN
    await store.adjust_balance(acc.id, 5_000_000, kind="credit", note="real money")
    await _rewrite_charges(store, store_backend.name, acc.id, 0)
    assert await _withdraw(store) == 0
    assert (await store.get_account(acc.id)).balance_micros == 5_000_000

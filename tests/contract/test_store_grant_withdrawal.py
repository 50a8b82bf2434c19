"""Store.withdraw_unspent_grant, on both backends: what is left of a credit grant (the demo's $10) is
taken back by one ledger debit; what was used after the grant used the grant first; never more
than the available balance; asked again, nothing more is taken."""
from __future__ import annotations

import asyncio

import pytest

from routerone.store import postgres, sqlite
from routerone.store.base import NewKey, Reservation, Store
from routerone.store.migrations import MIGRATIONS

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


async def test_the_complete_withdrawal_is_found_whatever_its_note_says(store: Store, store_backend) -> None:
    """A complete withdrawal was recognised only by its note's exact text (the partial one's differs
    by a suffix): a later version wording the note otherwise would sum the ledger again at every
    start and take what that sum says. It is marked as the grant's withdrawal now (grant_withdrawals),
    whatever its note."""
    acc = await _granted(store)
    await _charge(store, acc, 3_000_000, "r1")
    assert await _withdraw(store) == 7_000_000
    await store.adjust_balance(acc.id, 50_000_000, kind="credit", note="real money")
    await _rewrite_charges(store, store_backend.name, acc.id, -1_000_000)
    reworded = await store.withdraw_unspent_grant(grant_note=GRANT, note="demo credit taken back", actor=ACTOR)
    assert reworded is None                                  # summed again, 2 would have been taken
    assert (await store.get_account(acc.id)).balance_micros == 50_000_000


async def test_an_old_style_complete_withdrawal_still_counts(store: Store, store_backend) -> None:
    """A database written before the marker holds only the complete withdrawal's ledger debit, noted
    `note` by `actor`: that still counts as withdrawn (no second debit, nothing summed)."""
    acc = await _granted(store)
    await _charge(store, acc, 3_000_000, "r1")
    await store.adjust_balance(acc.id, -7_000_000, kind="debit", note=WITHDRAWN, actor=ACTOR)   # as before
    await store.adjust_balance(acc.id, 50_000_000, kind="credit", note="real money")
    await _rewrite_charges(store, store_backend.name, acc.id, -1_000_000)
    assert await _withdraw(store) == 0                       # summed again, 2 would have been taken
    assert (await store.get_account(acc.id)).balance_micros == 50_000_000


async def test_a_partial_withdrawal_is_not_marked_complete(store: Store, store_backend) -> None:
    """Held back by a request in flight, the withdrawal is partial whatever its note: the next start,
    with another note, still takes the rest."""
    acc = await _granted(store)
    key = await store.create_key(NewKey(account_id=acc.id, key_hash="h-held", prefix="r1-x"))
    assert await store.reserve(Reservation("held", acc.id, key.id, 4_000_000, FAR_FUTURE_S))
    assert await _withdraw(store) == 6_000_000
    await store.settle("held", 1_000_000)
    assert await store.withdraw_unspent_grant(grant_note=GRANT, note="reworded", actor=ACTOR) == (acc.id, 3_000_000)
    assert await _withdraw(store) == 0
    assert (await store.get_account(acc.id)).balance_micros == 0


async def test_a_database_from_before_the_marker_upgrades_and_is_not_debited_again(
        store: Store, store_backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Made by the release before 0012_grant_withdrawals, whose complete withdrawal is only a ledger
    debit noted `note` by `actor`: migrated, a start takes nothing more."""
    before = [m for m in MIGRATIONS if m[0] != "0012_grant_withdrawals"]
    assert len(before) == len(MIGRATIONS) - 1
    with monkeypatch.context() as m:
        m.setattr(sqlite, "MIGRATIONS", before)
        m.setattr(postgres, "MIGRATIONS", before)
        old = await store_backend.open("old")
        acc = await _granted(old)
        await _charge(old, acc, 3_000_000, "r1")
        await old.adjust_balance(acc.id, -7_000_000, kind="debit", note=WITHDRAWN, actor=ACTOR)   # as it wrote
        await old.adjust_balance(acc.id, 50_000_000, kind="credit", note="real money")
        await _rewrite_charges(old, store_backend.name, acc.id, -1_000_000)
    upgraded = await store_backend.open("old")               # migrates with today's list
    assert await _withdraw(upgraded) == 0                    # summed again, 2 would have been taken
    assert (await upgraded.get_account(acc.id)).balance_micros == 50_000_000

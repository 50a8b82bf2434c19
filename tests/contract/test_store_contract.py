"""The Store contract: every test runs against SQLiteStore and PostgresStore (see conftest.py)."""
from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

import pytest

from routerone.store.base import (Account, ApiKey, DuplicateAccountName, Limits, NewKey, Reservation, Settlement,
                                  Store, UsageQuery, UsageRecord)
from routerone.store.factory import open_store
from routerone.store.postgres import PostgresStore
from routerone.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from conftest import Backend

FAR_FUTURE_S = 4_102_444_800.0  # 2100-01-01: reservations that never expire within a test


async def _account(store: Store, funded_micros: int = 0, name: str = "acme") -> Account:
    acc = await store.create_account(name)
    if funded_micros:
        acc = await store.adjust_balance(acc.id, funded_micros, kind="credit", note="top-up")
    return acc


async def _key(store: Store, account: Account, *, spend_cap_micros: int | None = None, tag: str = "k") -> ApiKey:
    return await store.create_key(NewKey(account_id=account.id, key_hash=f"hash-{account.id}-{tag}",
                                         prefix=f"r1-{tag}", spend_cap_micros=spend_cap_micros))


def _hold(request_id: str, acc: Account, key: ApiKey, amount_micros: int,
          expires_at: float = FAR_FUTURE_S) -> Reservation:
    return Reservation(request_id, acc.id, key.id, amount_micros, expires_at)


async def _assert_books_balance(store: Store, account_id: int) -> Account:
    acc = await store.get_account(account_id)
    assert acc is not None
    assert await store.ledger_sum(account_id) == acc.balance_micros
    assert acc.balance_micros >= acc.reserved_micros >= 0
    return acc


# -- migrations ---------------------------------------------------------------------------------
async def test_migrate_is_idempotent(store: Store) -> None:
    acc = await _account(store, 500)
    await store.migrate()
    await store.migrate()
    assert await store.get_account(acc.id) == acc
    assert await store.auth_version() == 1


async def test_concurrent_first_migration_applies_once(store: Store, store_backend: Backend) -> None:
    stores = [await store_backend.open("fresh", migrate=False) for _ in range(3)]
    await asyncio.gather(*(s.migrate() for s in stores))
    acc = await _account(stores[0], 100)
    assert await stores[2].get_account(acc.id) == acc
    assert await stores[1].auth_version() == 1  # the seed row was inserted exactly once


@pytest.mark.parametrize(("url", "kind", "where"), [
    ("sqlite:///data/routerone.db", SQLiteStore, "data/routerone.db"),
    ("sqlite:////var/lib/routerone.db", SQLiteStore, "/var/lib/routerone.db"),
    ("sqlite:///:memory:", SQLiteStore, ":memory:"),
    ("postgresql://r1@db:5432/r1", PostgresStore, "postgresql://r1@db:5432/r1"),
    ("postgres://r1@db/r1?search_path=tenant", PostgresStore, "postgres://r1@db/r1?search_path=tenant"),
])
async def test_open_store_picks_the_backend_from_the_url(url: str, kind: type, where: str) -> None:
    store = open_store(url)
    assert isinstance(store, kind)
    assert (store.path if isinstance(store, SQLiteStore) else store.url) == where
    await store.close()


@pytest.mark.parametrize("url", ["mysql://u:hunter2@db/x", "sqlite://relative.db", "sqlite:///", "", "db.sqlite"])
def test_open_store_rejects_other_urls_naming_them(url: str) -> None:
    with pytest.raises(ValueError) as err:
        open_store(url)
    assert repr(url.replace("hunter2", "***")) in str(err.value)
    assert "hunter2" not in str(err.value)


async def test_open_store_memory_sqlite_works() -> None:
    store = open_store("sqlite:///:memory:")
    await store.migrate()
    acc = await store.create_account("mem")
    assert await store.get_account(acc.id) == acc
    await store.close()


# -- accounts and money -------------------------------------------------------------------------
async def test_accounts_crud(store: Store) -> None:
    a = await store.create_account("a", markup_bps=150, limits=Limits(rpm=60, tpm=1000, concurrency=4))
    b = await store.create_account("b")
    assert (a.name, a.markup_bps, a.limits) == ("a", 150, Limits(60, 1000, 4))
    assert (a.balance_micros, a.reserved_micros, a.spent_micros) == (0, 0, 0)
    assert a.created_at > 0
    assert await store.get_account(a.id) == a
    assert await store.get_account(b.id + 1000) is None
    assert [x.id for x in await store.list_accounts()] == [a.id, b.id]

    version = await store.auth_version()
    updated = await store.update_account(a.id, markup_bps=300)
    assert updated is not None and updated.markup_bps == 300 and updated.limits == Limits(60, 1000, 4)
    updated = await store.update_account(a.id, limits=Limits(rpm=10))
    assert updated is not None and updated.markup_bps == 300 and updated.limits == Limits(rpm=10)
    assert await store.auth_version() == version + 2
    assert await store.update_account(b.id + 1000, markup_bps=1) is None


async def test_an_account_name_is_taken_once_case_insensitive_and_trimmed(store: Store) -> None:
    """Two accounts could have one name, and the CLI and console then listed two "Acme"s."""
    acme = await store.create_account("Acme Corp")
    for same in ("Acme Corp", "acme corp", "  ACME CORP\t", "Acme Corp\n"):
        with pytest.raises(DuplicateAccountName) as err:
            await store.create_account(same)
        assert (err.value.account_id, err.value.name) == (acme.id, "Acme Corp")
    assert [a.name for a in await store.list_accounts()] == ["Acme Corp"]
    assert (await store.create_account("Acme Corp 2")).name == "Acme Corp 2"
    assert (await store.create_account("Acme  Corp")).name == "Acme  Corp"      # inner spaces are the name's


async def test_accounts_created_at_once_with_one_name_make_one(store: Store) -> None:
    made = await asyncio.gather(*(store.create_account(f"Race{' ' * i}") for i in range(6)), return_exceptions=True)
    assert sum(isinstance(m, Account) for m in made) == 1, made
    assert sum(isinstance(m, DuplicateAccountName) for m in made) == 5, made
    assert len(await store.list_accounts()) == 1


async def _insert_account_row(store: Store, name: str) -> None:
    """An account as a database from before names were unique holds it (no check on the way in)."""
    sql = "INSERT INTO accounts (name, created_at) VALUES ({p}, 0)"
    if isinstance(store, PostgresStore):
        await (await store._db()).execute(sql.format(p="$1"), name)
    else:
        await store._tx(lambda db: db.execute(sql.format(p="?"), (name,)))


async def test_duplicate_names_an_old_database_holds_keep_working(store: Store) -> None:
    for name in ("old", "OLD ", "old"):
        await _insert_account_row(store, name)
    await store.migrate()                          # no unique index to build: nothing to fail
    ids = [a.id for a in await store.list_accounts()]
    assert len(ids) == 3
    for account_id in ids:
        assert (await store.adjust_balance(account_id, 5, kind="credit")).balance_micros == 5
        assert (await store.update_account(account_id, markup_bps=10)).markup_bps == 10
    with pytest.raises(DuplicateAccountName) as err:
        await store.create_account("Old")
    assert err.value.account_id in ids


async def test_has_accounts_says_whether_any_exists(store: Store) -> None:
    """Start-up's first-start test (cli._bootstrap) listed every account on every start to know."""
    assert await store.has_accounts() is False
    await store.create_account("first")
    assert await store.has_accounts() is True


async def test_credits_and_debits_write_ledger_rows(store: Store) -> None:
    acc = await _account(store)
    await store.adjust_balance(acc.id, 1_000_000, kind="credit", note="stripe")
    after = await store.adjust_balance(acc.id, -250_000, kind="debit", note="refund")
    assert after.balance_micros == 750_000
    entries = await store.ledger(acc.id)
    assert [(e.amount_micros, e.kind, e.note, e.request_id) for e in entries] == [
        (-250_000, "debit", "refund", None), (1_000_000, "credit", "stripe", None)]
    assert all(e.account_id == acc.id and e.created_at > 0 for e in entries)
    assert [e.amount_micros for e in await store.ledger(acc.id, limit=1)] == [-250_000]
    # the next page: entries older than a given one (the console's Credits "Older" link)
    assert [e.note for e in await store.ledger(acc.id, 10, before_id=entries[0].id)] == ["stripe"]
    assert await store.ledger(acc.id, 10, before_id=entries[1].id) == []
    assert await store.ledger_sum(acc.id) == 750_000
    await _assert_books_balance(store, acc.id)
    assert await store.ledger_sum(acc.id + 1000) == 0


async def test_ledger_rows_carry_the_actor(store: Store) -> None:
    acc = await _account(store)
    await store.adjust_balance(acc.id, 5_000, kind="credit", note="top-up", actor="admin-key:7")
    await store.adjust_balance(acc.id, -1_000, kind="debit")
    entries = await store.ledger(acc.id)
    assert [(e.amount_micros, e.actor) for e in entries] == [(-1_000, ""), (5_000, "admin-key:7")]


async def test_audit_log_is_append_only_newest_first(store: Store) -> None:
    assert await store.list_audit() == []
    await store.record_audit("admin-key:1", "account.create", "account:2", '{"name": "acme"}')
    await store.record_audit("console:ops@example.com", "key.revoke", "key:5")
    await store.record_audit("cli", "account.credit", "account:2", '{"amount_micros": 10}')
    entries = await store.list_audit()
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("cli", "account.credit", "account:2"), ("console:ops@example.com", "key.revoke", "key:5"),
        ("admin-key:1", "account.create", "account:2")]
    assert entries[1].detail == "" and entries[2].detail == '{"name": "acme"}'
    assert all(e.created_at > 0 for e in entries) and entries[0].id > entries[1].id > entries[2].id
    assert [e.action for e in await store.list_audit(limit=1)] == ["account.credit"]
    assert [e.action for e in await store.list_audit(target="account:2")] == ["account.credit", "account.create"]


async def test_audit_pages_back_by_id_within_a_target(store: Store) -> None:
    """`before_id`: entries older than that one (an account's console page, 50 a page, to the first)."""
    for i in range(7):
        await store.record_audit("cli", f"step.{i}", "account:2" if i % 2 == 0 else "account:3")
    newest = await store.list_audit(2, target="account:2")
    assert [e.action for e in newest] == ["step.6", "step.4"]
    older = await store.list_audit(2, target="account:2", before_id=newest[-1].id)
    assert [e.action for e in older] == ["step.2", "step.0"]
    assert await store.list_audit(2, target="account:2", before_id=older[-1].id) == []
    assert [e.action for e in await store.list_audit(3, before_id=newest[0].id)] == ["step.5", "step.4", "step.3"]


async def test_debit_beyond_available_is_rejected(store: Store) -> None:
    acc = await _account(store, 100)
    key = await _key(store, acc)
    assert await store.reserve(_hold("r1", acc, key, 60))
    with pytest.raises(ValueError):
        await store.adjust_balance(acc.id, -50, kind="debit")  # balance covers it, available does not
    assert len(await store.ledger(acc.id)) == 1
    after = await store.adjust_balance(acc.id, -40, kind="debit")
    assert (after.balance_micros, after.available_micros) == (60, 0)
    with pytest.raises(KeyError):
        await store.adjust_balance(acc.id + 1000, 10, kind="credit")
    await _assert_books_balance(store, acc.id)


# -- keys ---------------------------------------------------------------------------------------
async def test_key_lifecycle(store: Store) -> None:
    acc, other = await _account(store), await _account(store, name="other")
    key = await store.create_key(NewKey(
        account_id=acc.id, key_hash="h1", prefix="r1-abc", name="ci", role="admin", expires_at=2_000_000_000.0,
        spend_cap_micros=5_000, allowed_models=("gpt-4o", "claude"), limits=Limits(rpm=5), strategy="cheapest"))
    assert (key.account_id, key.prefix, key.name, key.role, key.revoked) == (acc.id, "r1-abc", "ci", "admin", False)
    assert (key.expires_at, key.spend_cap_micros, key.spent_micros, key.reserved_micros) == (2e9, 5_000, 0, 0)
    assert (key.allowed_models, key.limits, key.strategy) == (("gpt-4o", "claude"), Limits(rpm=5), "cheapest")
    plain = await _key(store, other)
    assert plain.allowed_models == () and plain.spend_cap_micros is None and plain.role == "user"

    assert await store.key_by_hash("h1") == key
    assert await store.key_by_hash("nope") is None
    assert await store.get_key(key.id) == key
    assert await store.get_key(plain.id + 1000) is None
    assert [k.id for k in await store.list_keys()] == [key.id, plain.id]
    assert [k.id for k in await store.list_keys(other.id)] == [plain.id]

    version = await store.auth_version()
    updated = await store.update_key(key.id, limits=Limits(tpm=9), spend_cap_micros=7_000,
                                     allowed_models=["o3"], expires_at=2_100_000_000.0)
    assert updated is not None
    assert (updated.limits, updated.spend_cap_micros, updated.allowed_models, updated.expires_at) == (
        Limits(tpm=9), 7_000, ("o3",), 2.1e9)
    assert await store.auth_version() == version + 1

    assert await store.revoke_key(key.id) is True
    assert await store.auth_version() == version + 2
    revoked = await store.key_by_hash("h1")
    assert revoked is not None and revoked.revoked
    assert await store.revoke_key(key.id) is False
    assert await store.update_key(plain.id + 1000, spend_cap_micros=1) is None


# -- reserve and settle -------------------------------------------------------------------------
async def test_reserve_only_within_available_balance(store: Store) -> None:
    acc = await _account(store, 1_000)
    key = await _key(store, acc)
    assert await store.reserve(_hold("a", acc, key, 600))
    assert not await store.reserve(_hold("b", acc, key, 500))
    assert await store.reserve(_hold("c", acc, key, 400))
    assert not await store.reserve(_hold("d", acc, key, 1))
    after = await store.get_account(acc.id)
    assert after is not None and (after.reserved_micros, after.available_micros) == (1_000, 0)
    held_key = await store.get_key(key.id)
    assert held_key is not None and held_key.reserved_micros == 1_000
    assert await store.open_reservations(acc.id) == 2
    assert await store.open_reservations() == 2
    assert await store.settle("b", 100) is None  # the refused hold left no reservation behind


async def test_reserve_only_within_key_spend_cap(store: Store) -> None:
    acc = await _account(store, 10_000)
    key = await _key(store, acc, spend_cap_micros=1_000)
    assert await store.reserve(_hold("a", acc, key, 700))
    assert not await store.reserve(_hold("b", acc, key, 400))
    after = await store.get_account(acc.id)
    assert after is not None and after.reserved_micros == 700  # all or nothing: no account hold left
    await store.settle("a", 500)  # spent 500, hold released
    assert await store.reserve(_hold("c", acc, key, 500))
    assert not await store.reserve(_hold("d", acc, key, 1))
    uncapped = await _key(store, acc, tag="uncapped")
    assert await store.reserve(_hold("e", acc, uncapped, 5_000))


async def test_reserve_with_unknown_key_or_account_holds_nothing(store: Store) -> None:
    acc = await _account(store, 1_000)
    key = await _key(store, acc)
    assert not await store.reserve(Reservation("x", acc.id, key.id + 1000, 100, FAR_FUTURE_S))
    assert not await store.reserve(Reservation("y", acc.id + 1000, key.id, 100, FAR_FUTURE_S))
    after = await store.get_account(acc.id)
    assert after is not None and after.reserved_micros == 0
    assert await store.open_reservations() == 0


async def test_settle_is_idempotent(store: Store) -> None:
    acc = await _account(store, 1_000)
    key = await _key(store, acc)
    assert await store.reserve(_hold("req-1", acc, key, 500))
    first = await store.settle("req-1", 300)
    assert first == Settlement("req-1", 300, 700)
    assert await store.settle("req-1", 300) == first
    assert await store.settle("req-1", 999) == first  # a retry with another cost changes nothing
    after = await _assert_books_balance(store, acc.id)
    assert (after.balance_micros, after.reserved_micros, after.spent_micros) == (700, 0, 300)
    spent_key = await store.get_key(key.id)
    assert spent_key is not None and (spent_key.spent_micros, spent_key.reserved_micros) == (300, 0)
    charges = [e for e in await store.ledger(acc.id) if e.kind == "charge"]
    assert [(e.amount_micros, e.request_id) for e in charges] == [(-300, "req-1")]
    assert await store.open_reservations() == 0


async def test_settle_of_unknown_request_returns_none(store: Store) -> None:
    acc = await _account(store, 1_000)
    assert await store.settle("never-reserved", 100) is None
    assert await store.ledger_sum(acc.id) == 1_000


async def test_charge_is_capped_at_the_reservation(store: Store) -> None:
    acc = await _account(store, 1_000)
    key = await _key(store, acc)
    assert await store.reserve(_hold("r", acc, key, 500))
    assert await store.settle("r", 800) == Settlement("r", 500, 500)
    assert await store.reserve(_hold("zero", acc, key, 100))
    assert await store.settle("zero", 0) == Settlement("zero", 0, 500)  # a free call writes no ledger row
    assert len(await store.ledger(acc.id)) == 2
    await _assert_books_balance(store, acc.id)


async def test_release_expired_frees_holds_and_late_settle_charges_only_what_is_available(store: Store) -> None:
    acc = await _account(store, 1_000)
    key = await _key(store, acc)
    assert await store.reserve(_hold("old", acc, key, 600, expires_at=100.0))
    assert await store.reserve(_hold("live", acc, key, 300, expires_at=200.0))
    assert await store.release_expired(150.0) == 1
    assert await store.release_expired(150.0) == 0
    after = await store.get_account(acc.id)
    assert after is not None and (after.reserved_micros, after.available_micros) == (300, 700)
    freed_key = await store.get_key(key.id)
    assert freed_key is not None and freed_key.reserved_micros == 300
    assert await store.open_reservations(acc.id) == 1

    assert await store.reserve(_hold("new", acc, key, 500))  # only 200 left uncommitted
    late = await store.settle("old", 600)
    assert late == Settlement("old", 200, 800)
    assert await store.settle("old", 600) == late
    after = await _assert_books_balance(store, acc.id)
    assert (after.reserved_micros, after.available_micros) == (800, 0)

    assert await store.settle("live", 300) == Settlement("live", 300, 500)
    assert await store.settle("new", 500) == Settlement("new", 500, 0)
    assert await store.release_expired(150.0) == 0  # settled reservations are never released
    late_nothing_left = await store.reserve(_hold("late", acc, key, 1))
    assert not late_nothing_left
    after = await _assert_books_balance(store, acc.id)
    assert (after.balance_micros, after.spent_micros) == (0, 1_000)


async def test_extend_reservations_keeps_open_holds_from_the_sweep_and_leaves_the_rest(store: Store) -> None:
    acc = await _account(store, 1_000)
    key = await _key(store, acc)
    for rid, amount, expires_at in (("live", 300, 100.0), ("dead", 200, 100.0), ("done", 100, 100.0),
                                    ("later", 50, 900.0)):
        assert await store.reserve(_hold(rid, acc, key, amount, expires_at=expires_at))
    assert await store.settle("done", 100) == Settlement("done", 100, 900)
    assert await store.extend_reservations([], 500.0) == 0
    # only the open one that expires earlier moves: not the settled one, nor one already expiring later
    assert await store.extend_reservations(["live", "done", "later", "unknown"], 500.0) == 1
    assert await store.release_expired(150.0) == 1                  # "dead": not live anywhere
    assert await store.open_reservations(acc.id) == 2
    after = await _assert_books_balance(store, acc.id)
    assert (after.reserved_micros, after.available_micros) == (350, 550)
    assert await store.extend_reservations(["dead"], 800.0) == 0    # an expired hold is not revived
    assert await store.release_expired(600.0) == 1                  # "live" expires at its new time
    assert await store.release_expired(1_000.0) == 1                # "later" kept its own, later one
    after = await _assert_books_balance(store, acc.id)
    assert (after.reserved_micros, after.available_micros) == (0, 900)
    assert (await store.get_key(key.id)).reserved_micros == 0


async def test_extended_hold_settles_as_open_charging_min_of_cost_and_hold(store: Store) -> None:
    acc = await _account(store, 1_000)
    key = await _key(store, acc)
    assert await store.reserve(_hold("long", acc, key, 600, expires_at=100.0))
    assert await store.extend_reservations(["long"], 300.0) == 1
    assert await store.release_expired(200.0) == 0
    assert not await store.reserve(_hold("other", acc, key, 500))   # the held 600 cannot be spent twice
    assert await store.settle("long", 600) == Settlement("long", 600, 400)
    await _assert_books_balance(store, acc.id)


async def test_extend_reservations_many_at_once_and_concurrently_with_settles(
        store: Store, store_backend: Backend) -> None:
    twin = await store_backend.open()
    acc = await _account(store, 100_000)
    key = await _key(store, acc)
    ids = [f"r{i}" for i in range(200)]
    for rid in ids:
        assert await store.reserve(_hold(rid, acc, key, 100, expires_at=10.0))
    settled, extended = await asyncio.gather(
        asyncio.gather(*(twin.settle(rid, 100) for rid in ids[::2])),
        store.extend_reservations(ids, 1_000.0))
    assert all(s is not None and s.charged_micros == 100 for s in settled)
    assert 100 <= extended <= 200
    assert await store.release_expired(500.0) == 0
    assert await store.extend_reservations(ids, 2_000.0) == 100
    after = await _assert_books_balance(store, acc.id)
    assert (after.reserved_micros, after.balance_micros) == (100 * 100, 100_000 - 100 * 100)


async def test_expired_settle_on_an_empty_account_charges_nothing(store: Store) -> None:
    acc = await _account(store, 100)
    key = await _key(store, acc)
    assert await store.reserve(_hold("r", acc, key, 100, expires_at=1.0))
    assert await store.release_expired(2.0) == 1
    await store.adjust_balance(acc.id, -100, kind="debit")
    assert await store.settle("r", 100) == Settlement("r", 0, 0)
    await _assert_books_balance(store, acc.id)


async def test_expired_settle_charges_no_more_than_the_key_spend_cap_still_allows(store: Store) -> None:
    acc = await _account(store, 100_000)
    key = await _key(store, acc, spend_cap_micros=1_000)
    assert await store.reserve(_hold("slow", acc, key, 800, expires_at=10.0))
    assert await store.release_expired(50.0) == 1          # the hold is gone, the cap has room again
    assert await store.reserve(_hold("quick", acc, key, 700))
    assert await store.settle("quick", 700) == Settlement("quick", 700, 100_000 - 700)
    assert await store.settle("slow", 800) == Settlement("slow", 300, 100_000 - 1_000)
    capped = await store.get_key(key.id)
    assert capped is not None and (capped.spent_micros, capped.reserved_micros) == (1_000, 0)
    await _assert_books_balance(store, acc.id)


async def test_balance_never_negative_under_random_operations(store: Store) -> None:
    rng = random.Random(1234)
    acc = await _account(store, 5_000)
    key = await _key(store, acc, spend_cap_micros=20_000)
    open_ids: list[str] = []
    for i in range(150):
        op = rng.choice(["reserve", "reserve", "settle", "settle", "debit", "credit", "expire"])
        if op == "reserve":
            if await store.reserve(_hold(f"r{i}", acc, key, rng.randint(1, 2_000), expires_at=float(i))):
                open_ids.append(f"r{i}")
        elif op == "settle" and open_ids:
            await store.settle(open_ids.pop(rng.randrange(len(open_ids))), rng.randint(0, 3_000))
        elif op == "debit":
            try:
                await store.adjust_balance(acc.id, -rng.randint(1, 2_000), kind="debit")
            except ValueError:
                pass
        elif op == "credit":
            await store.adjust_balance(acc.id, rng.randint(1, 1_000), kind="credit")
        elif op == "expire":
            await store.release_expired(float(i - 10))
        after = await _assert_books_balance(store, acc.id)
        only_key = await store.get_key(key.id)
        assert only_key is not None and after.spent_micros == only_key.spent_micros
        assert after.reserved_micros == only_key.reserved_micros


# -- usage --------------------------------------------------------------------------------------
def _usage(request_id: str, *, key_id: int, account_id: int, model: str, created_at: float,
           cost_micros: int) -> UsageRecord:
    return UsageRecord(request_id, key_id, account_id, requested_model="auto", routed_model=model,
                       provider="openai", prompt_tokens=10, completion_tokens=5, cached_tokens=2,
                       cost_micros=cost_micros, latency_ms=12.5, ttft_ms=None, status=200,
                       stream=True, created_at=created_at)


async def test_usage_insert_and_query(store: Store) -> None:
    await store.insert_usage([])
    records = [_usage(f"u{i}", key_id=1 + i % 2, account_id=10 + i % 3, model=("a", "b")[i % 2],
                      created_at=1_000.0 + i, cost_micros=100 * i) for i in range(12)]
    records[3].ttft_ms, records[3].status, records[3].error_type, records[3].stream = 4.5, 429, "rate_limit", False
    await store.insert_usage(records)

    page = await store.query_usage(UsageQuery())
    assert [r.request_id for r in page.records] == [f"u{i}" for i in reversed(range(12))]
    assert page.records[8] == records[3]
    assert page.records[0] == records[11]
    assert (page.totals.requests, page.totals.prompt_tokens, page.totals.completion_tokens) == (12, 120, 60)
    assert page.totals.cost_micros == 100 * sum(range(12))

    page = await store.query_usage(UsageQuery(account_id=10, limit=2))
    wanted = [r for r in records if r.account_id == 10]
    assert [r.request_id for r in page.records] == ["u9", "u6"]  # newest first, limited
    assert page.totals.requests == len(wanted)  # totals ignore the limit
    assert page.totals.cost_micros == sum(r.cost_micros for r in wanted)

    page = await store.query_usage(UsageQuery(key_id=2, model="b", since=1_003.0, until=1_009.0))
    assert [r.request_id for r in page.records] == ["u7", "u5", "u3"]
    assert page.totals.requests == 3 and page.totals.cost_micros == 1_500

    empty = await store.query_usage(UsageQuery(model="missing"))
    assert empty.records == [] and (empty.totals.requests, empty.totals.cost_micros) == (0, 0)


# -- concurrency --------------------------------------------------------------------------------
async def test_concurrent_reserves_grant_exactly_what_the_balance_covers(store: Store, store_backend: Backend) -> None:
    """N holds' worth of balance, 10xN racing reserves through two stores (two pools / two
    connections): exactly N succeed; settling each twice, concurrently, charges each once."""
    n, amount_micros = 20, 1_000
    twin = await store_backend.open()
    acc = await _account(store, n * amount_micros)
    key = await _key(store, acc)
    stores = (store, twin)
    granted = await asyncio.gather(*(stores[i % 2].reserve(_hold(f"r{i}", acc, key, amount_micros))
                                     for i in range(10 * n)))
    winners = [f"r{i}" for i, ok in enumerate(granted) if ok]
    assert len(winners) == n
    held = await store.get_account(acc.id)
    assert held is not None and (held.reserved_micros, held.available_micros) == (n * amount_micros, 0)
    ledger_before_micros = await store.ledger_sum(acc.id)
    assert await twin.open_reservations(acc.id) == n

    settlements = await asyncio.gather(*(s.settle(rid, amount_micros) for rid in winners for s in stores))
    assert all(s is not None and s.charged_micros == amount_micros for s in settlements)
    assert await store.settle("r-never", 1) is None
    after = await _assert_books_balance(store, acc.id)
    assert (after.balance_micros, after.reserved_micros, after.spent_micros) == (0, 0, n * amount_micros)
    ledger_change_micros = await twin.ledger_sum(acc.id) - ledger_before_micros
    assert ledger_change_micros == after.balance_micros - held.balance_micros == -n * amount_micros


async def test_concurrent_reserves_respect_the_key_spend_cap(store: Store, store_backend: Backend) -> None:
    n, amount_micros = 10, 500
    twin = await store_backend.open()
    acc = await _account(store, 100 * n * amount_micros)
    key = await _key(store, acc, spend_cap_micros=n * amount_micros)
    stores = (store, twin)
    granted = await asyncio.gather(*(stores[i % 2].reserve(_hold(f"r{i}", acc, key, amount_micros))
                                     for i in range(10 * n)))
    assert sum(granted) == n
    after = await store.get_account(acc.id)
    assert after is not None and after.reserved_micros == n * amount_micros


async def test_concurrent_release_expired_releases_each_hold_once(store: Store, store_backend: Backend) -> None:
    twin = await store_backend.open()
    acc = await _account(store, 10_000)
    key = await _key(store, acc)
    for i in range(30):
        assert await store.reserve(_hold(f"r{i}", acc, key, 100, expires_at=10.0 if i % 3 else 1_000.0))
    released = await asyncio.gather(*(s.release_expired(50.0) for s in (store, twin, store, twin)))
    assert sum(released) == 20
    after = await _assert_books_balance(store, acc.id)
    assert after.reserved_micros == 10 * 100


async def test_interleaved_reserves_and_settles_across_accounts_and_stores_stay_exact(
        store: Store, store_backend: Backend) -> None:
    """Two accounts with two keys each, two stores (two pools), 200 requests that reserve and then
    settle, all at once, in a shuffled order: nothing deadlocks, every hold is released, and each
    account's ledger, balance, spent and key spend agree to the micro-dollar."""
    twin = await store_backend.open()
    stores = (store, twin)
    accs = [await _account(store, 1_000_000, name=f"acct{i}") for i in range(2)]
    keys = [await _key(store, acc, tag=f"k{i}{j}") for i, acc in enumerate(accs) for j in range(2)]
    rng = random.Random(7)
    jobs = [(f"m{i}", rng.randrange(4), rng.randrange(1, 5_000), rng.randrange(0, 6_000)) for i in range(200)]

    async def one(i: int, rid: str, k: int, hold_micros: int, cost_micros: int) -> int:
        key = keys[k]
        acc = accs[k // 2]
        s = stores[i % 2]
        assert await s.reserve(_hold(rid, acc, key, hold_micros))
        await asyncio.sleep(0)
        settled = await stores[(i + 1) % 2].settle(rid, cost_micros)
        assert settled is not None
        assert settled.charged_micros == min(cost_micros, hold_micros)
        return settled.charged_micros

    charged = await asyncio.gather(*(one(i, *job) for i, job in enumerate(jobs)))
    for a, acc in enumerate(accs):
        spent_micros = sum(c for c, job in zip(charged, jobs) if job[1] // 2 == a)
        after = await _assert_books_balance(store, acc.id)
        assert (after.balance_micros, after.reserved_micros, after.spent_micros) == \
               (1_000_000 - spent_micros, 0, spent_micros)
    for k, key in enumerate(keys):
        fresh = await twin.get_key(key.id)
        assert fresh is not None and fresh.reserved_micros == 0
        assert fresh.spent_micros == sum(c for c, job in zip(charged, jobs) if job[1] == k)
    assert await store.open_reservations() == 0


async def test_a_duplicate_request_id_among_concurrent_reserves_fails_only_its_caller(store: Store) -> None:
    acc = await _account(store, 100_000)
    key = await _key(store, acc)
    assert await store.reserve(_hold("dup", acc, key, 100))
    results = await asyncio.gather(*(store.reserve(_hold("dup" if i == 5 else f"d{i}", acc, key, 100))
                                     for i in range(10)), return_exceptions=True)
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [5]
    assert all(r is True for i, r in enumerate(results) if i != 5)
    after = await store.get_account(acc.id)
    assert after is not None and after.reserved_micros == 10 * 100


@pytest.mark.postgres
@pytest.mark.parametrize("store", ["postgres"], indirect=True)   # SQLite group-commits in-process instead
async def test_postgres_batches_concurrent_calls_into_few_round_trips(store: Store) -> None:
    assert isinstance(store, PostgresStore)
    acc = await _account(store, 10_000_000)
    key = await _key(store, acc)
    before = store.round_trips()
    granted = await asyncio.gather(*(store.reserve(_hold(f"b{i}", acc, key, 1_000)) for i in range(64)))
    assert all(granted)
    settled = await asyncio.gather(*(store.settle(f"b{i}", 400) for i in range(64)))
    assert all(s is not None and s.charged_micros == 400 for s in settled)
    after = store.round_trips()
    reserve_trips = after["reserve"] - before["reserve"]
    settle_trips = after["settle"] - before["settle"]
    assert 1 <= reserve_trips <= 4 and 1 <= settle_trips <= 4, (reserve_trips, settle_trips)
    acc_after = await _assert_books_balance(store, acc.id)
    assert (acc_after.balance_micros, acc_after.reserved_micros) == (10_000_000 - 64 * 400, 0)


async def test_one_batch_of_every_kind_of_settle_is_exact_in_call_order(store: Store) -> None:
    """Settles made in one event-loop turn (one batch on PostgreSQL): open holds, a repeat within the
    batch, an expired hold whose late charge depends on the items before it, an unknown id, an id
    settled earlier and a zero charge. Each gets what it would get called alone, in call order."""
    acc = await _account(store, 10_000)
    key = await _key(store, acc)
    assert await store.reserve(_hold("old", acc, key, 6_000, expires_at=100.0))
    assert await store.release_expired(150.0) == 1
    assert await store.reserve(_hold("done", acc, key, 500))
    assert await store.settle("done", 200) == Settlement("done", 200, 9_800)
    for rid, amount in (("a1", 1_000), ("a2", 2_000), ("a3", 1_500)):
        assert await store.reserve(_hold(rid, acc, key, amount))
    calls = [("a1", 700), ("a2", 5_000), ("old", 6_000), ("a1", 999), ("nope", 5), ("done", 1), ("a3", 0)]
    got = await asyncio.gather(*(store.settle(rid, cost) for rid, cost in calls))
    # a1: 700 of its 1,000; a2: capped at its 2,000; old (expired): what is then available,
    # 7,100 - 1,500 still held by a3 = 5,600 (5,300 had it come first); repeats: their first charge
    assert got == [Settlement("a1", 700, 9_100), Settlement("a2", 2_000, 7_100), Settlement("old", 5_600, 1_500),
                   Settlement("a1", 700, 1_500), None, Settlement("done", 200, 1_500), Settlement("a3", 0, 1_500)]
    after = await _assert_books_balance(store, acc.id)
    assert (after.balance_micros, after.reserved_micros, after.spent_micros) == (1_500, 0, 8_500)
    fresh = await store.get_key(key.id)
    assert fresh is not None and (fresh.spent_micros, fresh.reserved_micros) == (8_500, 0)
    charges = sorted((e.request_id, -e.amount_micros) for e in await store.ledger(acc.id) if e.kind == "charge")
    assert charges == [("a1", 700), ("a2", 2_000), ("done", 200), ("old", 5_600)]
    assert await store.open_reservations(acc.id) == 0


async def test_one_batch_of_reserves_grants_in_call_order_and_refusals_leave_nothing(store: Store) -> None:
    """Reserves made in one turn (one batch on PostgreSQL) against a balance and a key cap that run
    out part-way: each is granted or refused as it would be alone, in call order; a refused one
    leaves no reservation, so its id can be reserved again later."""
    acc = await _account(store, 5_000)
    capped = await _key(store, acc, spend_cap_micros=1_500, tag="capped")
    free = await _key(store, acc, tag="free")
    calls = [("r1", capped, 1_000), ("r2", capped, 1_000), ("r3", free, 3_000), ("r4", capped, 500),
             ("r5", free, 1_000), ("r6", free, 500)]
    got = await asyncio.gather(*(store.reserve(_hold(rid, acc, k, amount)) for rid, k, amount in calls))
    # r2: over the cap (1,000 + 1,000 > 1,500); r5: over the balance (4,500 held); r6: fits
    assert got == [True, False, True, True, False, True]
    after = await store.get_account(acc.id)
    assert after is not None and after.reserved_micros == 5_000 and after.available_micros == 0
    assert await store.open_reservations(acc.id) == 4
    assert await store.settle("r2", 1) is None and await store.settle("r5", 1) is None
    assert await store.settle("r3", 1_000) == Settlement("r3", 1_000, 4_000)     # 2,000 available again
    assert await store.reserve(_hold("r5", acc, free, 1_000))          # refused before: no row left behind
    fresh = await store.get_key(capped.id)
    assert fresh is not None and fresh.reserved_micros == 1_500


@pytest.mark.postgres
@pytest.mark.parametrize("store", ["postgres"], indirect=True)   # SQLite commits synchronously instead
async def test_postgres_settlements_share_their_flush_barriers(store: Store) -> None:
    """Each settlement returns only after a synchronous flush barrier, and concurrent settlements
    share one (a flush per settle batch at most, not one per call)."""
    assert isinstance(store, PostgresStore)
    acc = await _account(store, 10_000_000)
    key = await _key(store, acc)
    assert all(await asyncio.gather(*(store.reserve(_hold(f"f{i}", acc, key, 1_000)) for i in range(64))))
    before, calls_before = store.round_trips(), store.batched_calls()
    settled = await asyncio.gather(*(store.settle(f"f{i}", 300) for i in range(64)),
                                   store.settle("no-such-request", 5))
    assert all(s is not None and s.charged_micros == 300 for s in settled[:64]) and settled[64] is None
    after, calls_after = store.round_trips(), store.batched_calls()
    flushes, settles = after["flush"] - before["flush"], after["settle"] - before["settle"]
    assert calls_after["flush"] - calls_before["flush"] == 64       # every settlement waited for one
    assert 1 <= flushes <= settles, (flushes, settles)

"""Issue 11 item 2: one record the database refuses never blocks the others, on both stores.

The database is made to refuse one kind of row for real (a trigger that raises a check violation
for error_type 'poison': what a database's own limits would do). The usage writer writes the rest
and keeps the refused one in usage_rejects; a settle whose usage row is refused still charges, and
the row is kept in usage_rejects too.
"""
from __future__ import annotations

import time

from routerone.billing.prices import Price
from routerone.services.billing import Billing, Hold
from routerone.services.usage import UsageWriter
from routerone.store.base import NewKey, Reservation, Store, UsageQuery, UsageRecord
from routerone.store.postgres import PostgresStore
from routerone.wire.types import Usage


async def _poison(store: Store) -> None:
    if isinstance(store, PostgresStore):
        db = await store._db()
        await db.execute("""CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'poison row' USING ERRCODE = 'check_violation'; END $$""")
        await db.execute("CREATE TRIGGER refuse_poison BEFORE INSERT ON usage FOR EACH ROW "
                         "WHEN (NEW.error_type = 'poison') EXECUTE FUNCTION refuse_poison()")
    else:
        await store._tx(lambda db: db.execute(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON usage WHEN NEW.error_type = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'poison row'); END"))


async def _rejects(store: Store) -> list[str]:
    sql = "SELECT request_id FROM usage_rejects ORDER BY id"
    if isinstance(store, PostgresStore):
        return [r[0] for r in await (await store._db()).fetch(sql)]
    return [r[0] for r in await store._run(lambda db: db.execute(sql).fetchall())]


def _rec(rid: str, acc: int = 1, key: int = 1, error_type: str | None = None) -> UsageRecord:
    return UsageRecord(rid, key, acc, "auto", "m", "openai", 1, 1, 0, 0, 1.0, None, 200, error_type, False, time.time())


async def test_the_usage_writer_writes_the_rest_and_keeps_the_refused_record(store: Store) -> None:
    await _poison(store)
    writer = UsageWriter(store, batch_size=50)
    for i in range(30):
        writer.add(_rec(f"u{i}", error_type="poison" if i == 7 else None))
    await writer.flush()
    assert writer.depth == 0 and writer.rejected == 1 and writer.written == 29
    page = await store.query_usage(UsageQuery(limit=100))
    assert len(page.records) == 29 and "u7" not in {r.request_id for r in page.records}
    assert await _rejects(store) == ["u7"]
    writer.add(_rec("later"))                      # and recording goes on
    await writer.flush()
    assert (await store.query_usage(UsageQuery(limit=100))).totals.requests == 30


async def test_a_settle_whose_row_is_refused_still_charges(store: Store) -> None:
    await _poison(store)
    acc = await store.create_account("a")
    await store.adjust_balance(acc.id, 10_000, kind="credit")
    key = await store.create_key(NewKey(account_id=acc.id, key_hash="h", prefix="p"))
    writer = UsageWriter(store)
    billing = Billing(store, usage=writer)
    price = Price(0, 1_000_000)                     # 1 micro-dollar per output token
    for rid in ("a", "b", "c"):
        assert await store.reserve(Reservation(rid, acc.id, key.id, 500, 4e9))
    settled = [await billing.settle(Hold(rid, 500, 0), price, Usage(1, 40),
                                    _rec(rid, acc.id, key.id, "poison" if rid == "b" else None))
               for rid in ("a", "b", "c")]
    assert [s.charged_micros for s in settled] == [40, 40, 40] and not any(s.pending for s in settled)
    await writer.flush()
    page = await store.query_usage(UsageQuery(account_id=acc.id, limit=100))
    assert sorted(r.request_id for r in page.records) == ["a", "c"]
    assert await _rejects(store) == ["b"]
    charges = sorted(e.request_id for e in await store.ledger(acc.id) if e.kind == "charge")
    assert charges == ["a", "b", "c"] and (await store.get_account(acc.id)).balance_micros == 10_000 - 120

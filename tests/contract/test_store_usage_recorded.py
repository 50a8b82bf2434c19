"""Store contract, issue 11: the usage row is written in the settle's own transaction (so a charge and
its usage record cannot disagree), and any value an upstream or client can send is storable.
Every test runs against SQLiteStore and PostgresStore (see conftest.py)."""
from __future__ import annotations

import asyncio
import json
import time

from routerone.store.base import Account, ApiKey, NewKey, Reservation, Store, UsageQuery, UsageRecord, UsageReject

FAR_FUTURE_S = 4_102_444_800.0


async def _funded(store: Store, micros: int) -> tuple[Account, ApiKey]:
    acc = await store.create_account("acme")
    acc = await store.adjust_balance(acc.id, micros, kind="credit")
    key = await store.create_key(NewKey(account_id=acc.id, key_hash=f"h-{acc.id}", prefix="r1"))
    return acc, key


def _record(request_id: str, acc: Account, key: ApiKey, **kw) -> UsageRecord:
    base = dict(requested_model="auto", routed_model="m", provider="openai", prompt_tokens=10,
                completion_tokens=5, cost_micros=-1, latency_ms=3.0, status=200, created_at=time.time())
    base.update(kw)
    return UsageRecord(request_id, key.id, acc.id, **base)


async def _rows(store: Store, acc: Account) -> dict[str, UsageRecord]:
    page = await store.query_usage(UsageQuery(account_id=acc.id, limit=1000))
    ids = [r.request_id for r in page.records]
    assert len(ids) == len(set(ids)), f"duplicate usage rows: {ids}"
    return {r.request_id: r for r in page.records}


async def _charges(store: Store, acc: Account) -> dict[str, int]:
    return {e.request_id: -e.amount_micros for e in await store.ledger(acc.id, 1000) if e.kind == "charge"}


async def test_settle_recorded_writes_one_row_with_the_charge(store: Store) -> None:
    acc, key = await _funded(store, 1_000)
    assert await store.reserve(Reservation("a", acc.id, key.id, 400, FAR_FUTURE_S))
    s = await store.settle_recorded("a", 900, _record("a", acc, key))   # capped at the hold
    assert (s.charged_micros, s.balance_micros) == (400, 600)
    again = await store.settle_recorded("a", 900, _record("a", acc, key, status=500))
    assert again.charged_micros == 400                                  # idempotent: no second row
    rows = await _rows(store, acc)
    assert set(rows) == {"a"} and rows["a"].cost_micros == 400 and rows["a"].status == 200
    assert await _charges(store, acc) == {"a": 400}
    # no reservation: nothing written
    assert await store.settle_recorded("ghost", 5, _record("ghost", acc, key)) is None
    assert set(await _rows(store, acc)) == {"a"}


async def test_a_released_hold_gets_its_failure_row(store: Store) -> None:
    acc, key = await _funded(store, 1_000)
    assert await store.reserve(Reservation("f", acc.id, key.id, 400, FAR_FUTURE_S))
    await store.settle_recorded("f", 0, _record("f", acc, key, status=502, error_type="upstream_unavailable"))
    rows = await _rows(store, acc)
    assert rows["f"].cost_micros == 0 and rows["f"].status == 502
    assert await _charges(store, acc) == {}


async def test_concurrent_settles_each_get_exactly_one_row_equal_to_their_charge(store: Store) -> None:
    acc, key = await _funded(store, 100_000)
    n = 120
    for i in range(n):
        assert await store.reserve(Reservation(f"r{i:03}", acc.id, key.id, 500, FAR_FUTURE_S))
    # the same id twice in one batch, plain settles mixed in, costs above and below the hold
    calls = []
    for i in range(n):
        rid = f"r{i:03}"
        if i % 10 == 0:
            calls.append(store.settle(rid, i * 7))
        else:
            calls.append(store.settle_recorded(rid, i * 7, _record(rid, acc, key)))
        if i % 17 == 0:
            calls.append(store.settle_recorded(rid, i * 7, _record(rid, acc, key)))
    await asyncio.gather(*calls)
    rows, charges = await _rows(store, acc), await _charges(store, acc)
    recorded = {f"r{i:03}" for i in range(n) if i % 10}
    # a recorded repeat of a plain settle (r000, r170...) does not add a row later either
    assert set(rows) == recorded
    for rid, row in rows.items():
        assert row.cost_micros == charges.get(rid, 0) == min(int(rid[1:]) * 7, 500)


async def test_values_from_upstreams_are_storable(store: Store) -> None:
    acc, key = await _funded(store, 1_000)
    assert await store.reserve(Reservation("bad", acc.id, key.id, 400, FAR_FUTURE_S))
    nasty = _record("bad", acc, key, error_type="bad\x00code\x1b[31m" + "x" * 5000, completion_tokens=3_000_000_000,
                    prompt_tokens=-5, cached_tokens=10**30, requested_model="m\x00\ud800", latency_ms=float("nan"),
                    ttft_ms=float("inf"), fallbacks="a\x00" * 1000, route_reason="r\x00")
    s = await store.settle_recorded("bad", 100, nasty)
    assert s.charged_micros == 100
    row = (await _rows(store, acc))["bad"]
    assert row.completion_tokens == 3_000_000_000 and row.prompt_tokens == 0
    assert row.cached_tokens == 2**63 - 1
    assert "\x00" not in row.error_type and row.error_type.startswith("bad\ufffdcode") and len(row.error_type) <= 200
    assert row.requested_model == "m\ufffd\ufffd" and row.ttft_ms is None and row.latency_ms == 0.0
    assert len(row.fallbacks) <= 500
    # the plain usage path sanitises the same way
    await store.insert_usage([_record("plain", acc, key, error_type="\x00", completion_tokens=5_000_000_000)])
    assert (await _rows(store, acc))["plain"].completion_tokens == 5_000_000_000


async def test_usage_rejects_are_kept(store: Store) -> None:
    rec = json.dumps({"request_id": "x", "error_type": "\u0000"})
    await store.insert_usage_rejects([UsageReject("x\x00", "DataError: bad", rec, 1.0)])
    await store.insert_usage_rejects([])
    got = await _rejects(store)
    assert got == [("x\ufffd", "DataError: bad", rec)]


async def _rejects(store: Store) -> list[tuple]:
    from routerone.store.postgres import PostgresStore
    if isinstance(store, PostgresStore):
        rows = await (await store._db()).fetch("SELECT request_id, reason, record FROM usage_rejects ORDER BY id")
        return [tuple(r) for r in rows]
    return await store._run(lambda db: db.execute(
        "SELECT request_id, reason, record FROM usage_rejects ORDER BY id").fetchall())


async def test_one_batch_of_recorded_settles_writes_one_row_per_settled_request(store: Store) -> None:
    """Recorded settles made in one event-loop turn (one batch on PostgreSQL), open and expired holds,
    a repeat and an unknown id among them: one usage row per request settled, with its charge."""
    acc, key = await _funded(store, 1_000)
    assert await store.reserve(Reservation("late", acc.id, key.id, 900, 100.0))
    assert await store.release_expired(150.0) == 1
    for rid in ("a", "b"):
        assert await store.reserve(Reservation(rid, acc.id, key.id, 300, FAR_FUTURE_S))
    calls = [("a", 200), ("late", 900), ("a", 50), ("ghost", 10), ("b", 300)]
    got = await asyncio.gather(*(store.settle_recorded(rid, cost, _record(rid, acc, key)) for rid, cost in calls))
    # late (expired): what is available after a, with b's 300 still held: 800 - 300 = 500
    assert [(s.charged_micros, s.balance_micros) if s else None for s in got] == \
           [(200, 800), (500, 300), (200, 300), None, (300, 0)]
    rows = await _rows(store, acc)
    assert {rid: r.cost_micros for rid, r in rows.items()} == {"a": 200, "late": 500, "b": 300}
    assert await _charges(store, acc) == {"a": 200, "late": 500, "b": 300}

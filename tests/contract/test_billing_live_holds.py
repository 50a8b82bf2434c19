"""Billing keeps the holds of calls still running in this process from expiring (on both stores):
its sweep moves their expiry, in one store call for all, and only there: reserve and settle make
no extra database call. Holds that are not live here (another process's, a dead one's, one a
request dropped without settling) still expire."""
from __future__ import annotations

import gc
import time
from typing import Any

from routerone.billing.prices import Price
from routerone.services.auth import AuthContext
from routerone.services.billing import Billing
from routerone.store.base import NewKey, Reservation, Store
from routerone.store.postgres import PostgresStore
from routerone.wire.types import Usage

TTL_S = 100
PRICE = Price(0, 1_000_000)                     # 1 micro-dollar per output token


class _Counting:
    """The store, with the name of every call made through it."""

    def __init__(self, store: Store) -> None:
        self._store, self.calls = store, []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if callable(attr):
            self.calls.append(name)
        return attr


async def _setup(store: Store, funded_micros: int = 10_000) -> tuple[AuthContext, _Counting, Billing]:
    acc = await store.create_account("a")
    acc = await store.adjust_balance(acc.id, funded_micros, kind="credit")
    key = await store.create_key(NewKey(account_id=acc.id, key_hash="h", prefix="p"))
    counting = _Counting(store)
    return AuthContext(key, acc), counting, Billing(counting, reservation_ttl_s=TTL_S, sweep_interval_s=1.0)


async def _expiry(store: Store, request_id: str) -> float:
    return {r: e for r, e in await _reservations(store)}[request_id]


async def _reservations(store: Store) -> list[tuple[str, float]]:
    sql = "SELECT request_id, expires_at FROM reservations ORDER BY request_id"
    if isinstance(store, PostgresStore):
        return [(r[0], r[1]) for r in await (await store._db()).fetch(sql)]
    return await store._run(lambda db: db.execute(sql).fetchall())


async def test_reserve_and_settle_make_no_extra_store_call(store: Store) -> None:
    auth, counting, billing = await _setup(store)
    hold = await billing.reserve(auth, "r1", 500)
    assert billing.live_holds == 1
    await billing.settle(hold, PRICE, Usage(1, 40))
    assert counting.calls == ["reserve", "settle"]
    assert billing.live_holds == 0
    assert await billing.extend_live_holds(time.time() + 10 * TTL_S) == 0
    assert counting.calls == ["reserve", "settle"]          # nothing live: the sweep calls nothing


async def test_the_sweep_extends_live_holds_near_expiry_in_one_call_and_the_rest_expire(store: Store) -> None:
    auth, counting, billing = await _setup(store)
    now = time.time()
    live = [await billing.reserve(auth, f"live{i}", 500) for i in range(3)]
    # not live here: another (dead) process's hold, written straight to the store
    assert await store.reserve(Reservation("dead", auth.account.id, auth.key.id, 700, now + TTL_S))
    counting.calls.clear()
    assert await billing.extend_live_holds(now + 0.2 * TTL_S) == 0    # more than half the TTL left
    assert counting.calls == []
    later = now + 0.6 * TTL_S
    assert await billing.extend_live_holds(later) == 3
    assert counting.calls == ["extend_reservations"]                  # one call for all
    assert billing.holds_extended == 3
    for h in live:
        assert await _expiry(store, h.request_id) >= later + TTL_S - 1
    assert await _expiry(store, "dead") <= now + TTL_S + 1
    assert await store.release_expired(now + 1.5 * TTL_S) == 1       # "dead" only
    acc = await store.get_account(auth.account.id)
    assert acc is not None and acc.reserved_micros == 3 * 500
    for h in live:                                                    # each charged as an open hold
        assert (await billing.settle(h, PRICE, Usage(1, 450))).charged_micros == 450
    acc = await store.get_account(auth.account.id)
    assert acc is not None and (acc.reserved_micros, acc.balance_micros) == (0, 10_000 - 3 * 450)
    assert billing.live_holds == 0


async def test_a_hold_its_request_keeps_stays_live_and_one_dropped_unsettled_expires(store: Store) -> None:
    auth, _, billing = await _setup(store)
    now = time.time()
    kept = await billing.reserve(auth, "kept", 500)
    await billing.reserve(auth, "dropped", 300)          # the Hold is not kept: a bug, not a live call
    gc.collect()
    assert await billing.extend_live_holds(now + 0.6 * TTL_S) == 1
    assert billing.live_holds == 1
    assert await store.release_expired(now + 1.5 * TTL_S) == 1        # "dropped"
    assert await _expiry(store, "kept") >= now + 1.5 * TTL_S
    await billing.release(kept)
    assert billing.live_holds == 0


async def test_a_sweep_interval_too_long_for_the_ttl_is_said_at_start(store: Store, caplog) -> None:
    for ttl_s, sweep_s, warned in ((100, 10.0, False), (10, 5.0, True)):
        caplog.clear()
        billing = Billing(store, reservation_ttl_s=ttl_s, sweep_interval_s=sweep_s)
        await billing.start()
        await billing.stop()
        assert ("reservation_sweep_interval_s" in caplog.text) is warned

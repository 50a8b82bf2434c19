"""Store contract for the console's methods (users, sessions, usage rollups and log pages), run
against SQLiteStore and PostgresStore (see conftest.py)."""
from __future__ import annotations

import pytest

from routerone.store.base import ConsoleSession, Store, UsageLogQuery, UsageQuery, UsageRecord


async def _acc(store: Store, name: str = "acme") -> int:
    return (await store.create_account(name)).id


async def test_console_users_are_unique_by_email_case_insensitively(store: Store) -> None:
    acc = await _acc(store)
    u = await store.create_console_user("Ann@Example.com", "$argon2id$x", account_id=acc, role="operator")
    assert (u.email, u.account_id, u.role, u.disabled, u.password_hash) == ("ann@example.com", acc, "operator",
                                                                            False, "$argon2id$x")
    assert await store.console_user_by_email("ANN@example.COM") == u
    assert await store.get_console_user(u.id) == u
    with pytest.raises(ValueError):
        await store.create_console_user("ann@example.com", "$argon2id$y", account_id=acc)
    with pytest.raises(ValueError):
        await store.create_console_user("bob@example.com", "h", account_id=acc + 999)  # no such account
    assert await store.console_user_by_email("nobody@example.com") is None
    assert await store.get_console_user(u.id + 100) is None


async def test_console_users_list_update_and_disable(store: Store) -> None:
    a, b = await _acc(store, "a"), await _acc(store, "b")
    ua = await store.create_console_user("a@x.io", "h1", account_id=a)
    ub = await store.create_console_user("b@x.io", "h2", account_id=b)
    assert [u.email for u in await store.list_console_users()] == ["a@x.io", "b@x.io"]
    assert [u.id for u in await store.list_console_users(b)] == [ub.id]
    changed = await store.update_console_user(ua.id, password_hash="h1b")
    assert changed is not None and changed.password_hash == "h1b" and not changed.disabled
    off = await store.update_console_user(ua.id, disabled=True)
    assert off is not None and off.disabled and off.password_hash == "h1b"
    assert await store.update_console_user(ub.id + 100, disabled=True) is None


async def test_console_sessions_expire_belong_to_enabled_users_and_delete(store: Store) -> None:
    acc = await _acc(store)
    u = await store.create_console_user("s@x.io", "h", account_id=acc)
    v = await store.create_console_user("t@x.io", "h", account_id=acc)
    for token, user, expires in (("t1", u.id, 2_000.0), ("t2", u.id, 1_500.0), ("t3", v.id, 2_000.0)):
        await store.create_console_session(ConsoleSession(token, user, f"csrf-{token}", 1_000.0, expires))
    found = await store.console_session("t1", 1_600.0)
    assert found is not None
    session, user = found
    assert (session.user_id, session.csrf_token, session.expires_at, user.email) == (u.id, "csrf-t1", 2_000.0, "s@x.io")
    assert await store.console_session("t2", 1_600.0) is None        # expired
    assert await store.console_session("nope", 1_600.0) is None
    await store.update_console_user(v.id, disabled=True)
    assert await store.console_session("t3", 1_600.0) is None        # user disabled
    assert await store.delete_console_sessions(expired_before=1_600.0) == 1
    assert await store.delete_console_sessions(token_hash="t1") == 1
    assert await store.console_session("t1", 1_600.0) is None
    assert await store.delete_console_sessions(user_id=v.id) == 1
    assert await store.delete_console_sessions() == 0


def _row(i: int, *, account_id: int, key_id: int, model: str, at: float, status: int = 200,
         cost: int = 100) -> UsageRecord:
    return UsageRecord(f"r{i}", key_id, account_id, requested_model="auto", routed_model=model, provider="openai",
                       prompt_tokens=10, completion_tokens=4, cost_micros=cost, latency_ms=20.0, status=status,
                       created_at=at, route_reason="balanced: cheap", fallbacks=None)


async def test_usage_rollup_sums_per_bucket_model_and_key(store: Store) -> None:
    rows = [_row(1, account_id=1, key_id=11, model="m1", at=3_600.0 * 10 + 5),
            _row(2, account_id=1, key_id=11, model="m1", at=3_600.0 * 10 + 3_599, status=502, cost=0),
            _row(3, account_id=1, key_id=12, model="m2", at=3_600.0 * 10 + 100, cost=250),
            _row(4, account_id=1, key_id=11, model="m1", at=3_600.0 * 11 + 1),
            _row(5, account_id=2, key_id=21, model="m1", at=3_600.0 * 10 + 1, cost=999)]
    await store.insert_usage(rows)
    got = await store.usage_rollup(UsageQuery(account_id=1), 3_600)
    as_tuples = sorted((b.bucket_start, b.routed_model, b.key_id, b.requests, b.errors, b.prompt_tokens,
                        b.completion_tokens, b.cost_micros) for b in got)
    assert as_tuples == [(36_000.0, "m1", 11, 2, 1, 20, 8, 100), (36_000.0, "m2", 12, 1, 0, 10, 4, 250),
                         (39_600.0, "m1", 11, 1, 0, 10, 4, 100)]
    daily = await store.usage_rollup(UsageQuery(since=36_000.0, until=39_600.0), 86_400)
    assert sum(b.requests for b in daily) == 4 and {b.bucket_start for b in daily} == {0.0}
    assert sum(b.cost_micros for b in daily) == 100 + 0 + 250 + 999
    assert await store.usage_rollup(UsageQuery(account_id=3), 3_600) == []


async def test_usage_summary_sums_per_bucket_and_model_and_per_key_in_the_database(store: Store) -> None:
    """The Activity page's read (session 13): the same sums as usage_rollup, in two small groupings
    (per bucket and model, per key) instead of one row per (bucket, model, key)."""
    rows = [_row(1, account_id=1, key_id=11, model="m1", at=3_600.0 * 10 + 5),
            _row(2, account_id=1, key_id=11, model="m1", at=3_600.0 * 10 + 3_599, status=502, cost=0),
            _row(3, account_id=1, key_id=12, model="m2", at=3_600.0 * 10 + 100, cost=250),
            _row(4, account_id=1, key_id=12, model="m1", at=3_600.0 * 11 + 1),
            _row(5, account_id=2, key_id=21, model="m1", at=3_600.0 * 10 + 1, cost=999)]
    await store.insert_usage(rows)
    got = await store.usage_summary(UsageQuery(account_id=1), 3_600)
    assert sorted((b.bucket_start, b.routed_model, b.key_id, b.requests, b.errors, b.prompt_tokens,
                   b.completion_tokens, b.cost_micros) for b in got.by_time_model) == [
        (36_000.0, "m1", 0, 2, 1, 20, 8, 100), (36_000.0, "m2", 0, 1, 0, 10, 4, 250),
        (39_600.0, "m1", 0, 1, 0, 10, 4, 100)]
    assert sorted((b.bucket_start, b.routed_model, b.key_id, b.requests, b.errors, b.prompt_tokens,
                   b.completion_tokens, b.cost_micros) for b in got.by_key) == [
        (0.0, "", 11, 2, 1, 20, 8, 100), (0.0, "", 12, 2, 0, 20, 8, 350)]
    gateway = await store.usage_summary(UsageQuery(since=36_000.0, until=39_600.0), 86_400)
    assert [(b.bucket_start, b.routed_model, b.requests, b.cost_micros) for b in sorted(
        gateway.by_time_model, key=lambda b: b.routed_model)] == [(0.0, "m1", 3, 1_099), (0.0, "m2", 1, 250)]
    assert sorted((b.key_id, b.requests) for b in gateway.by_key) == [(11, 2), (12, 1), (21, 1)]
    empty = await store.usage_summary(UsageQuery(account_id=3), 3_600)
    assert (empty.by_time_model, empty.by_key) == ([], [])


async def test_usage_log_filters_and_pages_newest_first(store: Store) -> None:
    rows = [_row(i, account_id=1 + i % 2, key_id=10 + i % 3, model=("m1", "m2")[i % 2], at=1_000.0 + i,
                 status=(200, 429, 502, 200)[i % 4]) for i in range(20)]
    await store.insert_usage(rows)
    page1 = await store.usage_log(UsageLogQuery(account_id=1, limit=3))
    page2 = await store.usage_log(UsageLogQuery(account_id=1, limit=3, offset=3))
    assert [r.request_id for r in page1] == ["r18", "r16", "r14"]
    assert [r.request_id for r in page2] == ["r12", "r10", "r8"]
    assert page1[0] == rows[18] and page1[0].route_reason == "balanced: cheap"
    errors = await store.usage_log(UsageLogQuery(status="error", limit=100))
    assert {r.request_id for r in errors} == {f"r{i}" for i in range(20) if i % 4 in (1, 2)}
    ok = await store.usage_log(UsageLogQuery(status="ok", limit=100))
    assert len(ok) == 10 and all(r.status < 400 for r in ok)
    assert {r.request_id for r in await store.usage_log(UsageLogQuery(status="429", limit=100))} == \
        {f"r{i}" for i in range(20) if i % 4 == 1}
    by_key_model = await store.usage_log(UsageLogQuery(key_id=11, model="m2", since=1_005.0, until=1_016.0))
    assert [r.request_id for r in by_key_model] == ["r13", "r7"]
    assert [r.request_id for r in await store.usage_log(UsageLogQuery(model="auto", limit=2))] == ["r19", "r18"]


async def test_key_last_used_is_the_newest_row_per_key(store: Store) -> None:
    await store.insert_usage([_row(1, account_id=1, key_id=5, model="m", at=100.0),
                              _row(2, account_id=1, key_id=5, model="m", at=300.0),
                              _row(3, account_id=1, key_id=6, model="m", at=200.0),
                              _row(4, account_id=2, key_id=7, model="m", at=400.0)])
    assert await store.key_last_used(1) == {5: 300.0, 6: 200.0}
    assert await store.key_last_used() == {5: 300.0, 6: 200.0, 7: 400.0}
    assert await store.key_last_used(9) == {}


async def test_usage_count_counts_an_account_and_time_range(store: Store) -> None:
    await store.insert_usage([_row(i, account_id=1 + i % 2, key_id=1, model="m", at=100.0 + i) for i in range(10)])
    assert await store.usage_count(UsageQuery()) == 10
    assert await store.usage_count(UsageQuery(account_id=1)) == 5
    assert await store.usage_count(UsageQuery(account_id=1, since=102.0, until=106.0)) == 2   # 102, 104
    assert await store.usage_count(UsageQuery(since=109.0)) == 1
    assert await store.usage_count(UsageQuery(account_id=3)) == 0

"""A NUL character in text given to the store. PostgreSQL's text cannot hold one (asyncpg raised
CharacterNotInRepertoireError: a 500 wherever it came from), and only two callers guarded their
lookups. Now the store itself: a lookup by a NUL-bearing string finds nothing, on both backends (a
contract); on PostgreSQL a write of one is a ValueError naming the field, and nothing is written."""
from __future__ import annotations

import pytest

from routerone.store.base import (ConsoleSession, NewKey, Store, StoredResponse, UsageLogQuery, UsageQuery)

NUL = "x\x00y"


async def test_lookups_by_a_nul_bearing_string_find_nothing(store: Store) -> None:
    acc = (await store.create_account("acme")).id
    key = await store.create_key(NewKey(account_id=acc, key_hash="hash-1", prefix="sk-1"))
    await store.put_response(StoredResponse("resp_1", acc, key.id, 1.0, "{}", "[]"))
    user = await store.create_console_user("ann@example.com", "$argon2id$x", account_id=acc)
    await store.create_console_session(ConsoleSession("tok-1", user.id, "csrf", 1.0, 1e12))
    await store.record_audit("admin", "create", target="t")

    assert await store.key_by_hash("hash-1\x00") is None
    assert await store.get_response("resp_1\x00", acc) is None
    assert await store.delete_response("resp_1\x00", acc) is False
    assert await store.console_user_by_email("ann@example.com\x00") is None
    assert await store.console_session("tok-1\x00", 2.0) is None
    assert await store.delete_console_sessions(token_hash="tok-1\x00") == 0
    assert await store.list_audit(target="t\x00") == []
    page = await store.query_usage(UsageQuery(model=NUL))
    assert page.records == [] and page.totals.requests == 0
    assert await store.usage_rollup(UsageQuery(model=NUL), 3600) == []
    assert (await store.usage_summary(UsageQuery(model=NUL), 3600)).rows == 0
    assert await store.usage_log(UsageLogQuery(model=NUL)) == []
    assert await store.usage_count(UsageQuery(model=NUL)) == 0
    # ... and what is there is still found
    assert (await store.key_by_hash("hash-1")).id == key.id
    assert await store.get_response("resp_1", acc) is not None
    assert await store.console_session("tok-1", 2.0) is not None
    assert len(await store.list_audit(target="t")) == 1


@pytest.mark.parametrize("write, field", [
    (lambda s, acc: s.create_account(NUL), "name"),
    (lambda s, acc: s.adjust_balance(acc, 5, kind="credit", note=NUL), "note"),
    (lambda s, acc: s.create_key(NewKey(account_id=acc, key_hash="h2", prefix="sk-2", name=NUL)), "name"),
    (lambda s, acc: s.create_key(NewKey(account_id=acc, key_hash="h3", prefix="sk-3", allowed_models=("a", NUL))),
     "allowed_models"),
    (lambda s, acc: s.create_console_user(f"{NUL}@example.com", "h", account_id=acc), "email"),
    (lambda s, acc: s.record_audit("admin", "create", target=NUL), "target"),
    (lambda s, acc: s.put_response(StoredResponse(f"resp_{NUL}", acc, 1, 1.0, "{}", "[]")), "id"),
])
async def test_a_write_of_a_nul_is_a_value_error_naming_the_field_on_postgres(store: Store, write, field) -> None:
    acc = (await store.create_account("acme")).id
    if type(store).__name__ != "PostgresStore":      # SQLite's text holds a NUL: the write is kept
        await write(store, acc)
        return
    with pytest.raises(ValueError, match=f"^{field} may not contain a NUL"):
        await write(store, acc)
    assert (await store.get_account(acc)).balance_micros == 0
    assert [a.name for a in await store.list_accounts()] == ["acme"]
    assert await store.list_keys() == [] and await store.list_audit() == []

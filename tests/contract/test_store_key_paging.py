"""Keys are read a page at a time (session 16): `list_keys(account_id, limit, after_id=...)` oldest
first and `recent_keys(account_id, limit, before_id=...)` newest first, both keyset by id, so a
tenant with thousands of keys costs one page per read; `key_named` finds one key without a scan."""
from __future__ import annotations

from routerone.store.base import NewKey, Store

KEYS = 250
PAGE = 100


async def _fill(store: Store) -> tuple[int, int, list[int]]:
    acc = await store.create_account("many")
    other = await store.create_account("other")
    ids = []
    for i in range(KEYS):
        k = await store.create_key(NewKey(account_id=acc.id, key_hash=f"h-{i}", prefix=f"r1-{i}", name=f"k{i}"))
        ids.append(k.id)
        if i % 50 == 0:                      # another account's keys in between: never in acc's pages
            await store.create_key(NewKey(account_id=other.id, key_hash=f"o-{i}", prefix=f"r1-o{i}"))
    return acc.id, other.id, ids


async def test_list_keys_pages_oldest_first_each_key_once(store: Store) -> None:
    account_id, _, ids = await _fill(store)
    first = await store.list_keys(account_id, PAGE)
    assert [k.id for k in first] == ids[:PAGE]
    seen, after = [], None
    while True:
        page = await store.list_keys(account_id, PAGE, after_id=after)
        assert len(page) <= PAGE
        seen += [k.id for k in page]
        if len(page) < PAGE:
            break
        after = page[-1].id
    assert seen == ids
    assert await store.list_keys(account_id, PAGE, after_id=ids[-1]) == []
    everyone = await store.list_keys(None, 3)
    assert len(everyone) == 3 and [k.id for k in everyone] == sorted(k.id for k in everyone)
    assert [k.id for k in await store.list_keys(account_id)] == ids          # no limit: all (internal use)


async def test_recent_keys_pages_newest_first(store: Store) -> None:
    account_id, other_id, ids = await _fill(store)
    seen, before = [], None
    while True:
        page = await store.recent_keys(account_id, PAGE, before_id=before)
        seen += [k.id for k in page]
        if len(page) < PAGE:
            break
        before = page[-1].id
    assert seen == ids[::-1]
    assert len(await store.recent_keys(other_id, PAGE)) == KEYS // 50


async def test_key_named_finds_the_oldest_active_user_key_of_that_name(store: Store) -> None:
    account_id, other_id, ids = await _fill(store)
    assert (await store.key_named(account_id, "k200")).id == ids[200]
    assert await store.key_named(other_id, "k200") is None
    await store.revoke_key(ids[200])
    assert await store.key_named(account_id, "k200") is None
    again = await store.create_key(NewKey(account_id=account_id, key_hash="h-again", prefix="r1-a", name="k200"))
    admin = await store.create_key(NewKey(account_id=account_id, key_hash="h-adm", prefix="r1-b", name="k7",
                                          role="admin"))
    assert (await store.key_named(account_id, "k200")).id == again.id
    assert (await store.key_named(account_id, "k7")).id == ids[7] != admin.id


async def test_count_keys_counts_in_the_store_up_to_a_bound(store: Store) -> None:
    account_id, other_id, ids = await _fill(store)
    await store.revoke_key(ids[3])
    assert await store.count_keys(account_id) == KEYS
    assert await store.count_keys(account_id, active_only=True) == KEYS - 1
    assert await store.count_keys(account_id, active_only=True, at_most=100) == 100
    assert await store.count_keys(other_id, at_most=100) == KEYS // 50

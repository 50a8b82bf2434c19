"""admin_key rotated in the configuration (a leaked key replaced): the admin key an earlier
configuration registered stops working at the next start, on both stores; a gateway still started
with the old configuration revokes nothing; keys made otherwise stay."""
from __future__ import annotations

from routerone.services.accounts import AccountsService
from routerone.services.keys import hash_key
from routerone.store.base import Store

OLD = "sk-ro-old-admin-key-leaked-0000000001"
NEW = "sk-ro-new-admin-key-rotated-000000002"


async def _active(store: Store, secret: str) -> bool:
    k = await store.key_by_hash(hash_key(secret))
    return k is not None and not k.revoked


async def test_a_rotated_admin_key_revokes_the_one_an_earlier_configuration_registered(store: Store) -> None:
    svc = AccountsService(store)
    assert await svc.bootstrap_admin(OLD) is not None
    other = await svc.create_key((await store.list_accounts())[0].id, name="ops script", role="admin")
    assert await svc.bootstrap_admin(NEW) is not None
    assert await _active(store, NEW)
    assert not await _active(store, OLD)                 # the leaked key no longer works
    assert not (await store.get_key(other.record.id)).revoked      # an admin key made otherwise stays
    # a gateway still started with the old configuration (rolling restart) changes nothing
    assert await svc.bootstrap_admin(OLD) is None
    assert await _active(store, NEW) and not await _active(store, OLD)
    # the same configuration again: nothing to do
    assert await svc.bootstrap_admin(NEW) is None and await _active(store, NEW)
    revokes = [e for e in await store.list_audit() if e.action == "key.revoke"]
    assert len(revokes) == 1 and "admin_key changed" in revokes[0].detail


async def test_the_generated_first_start_key_is_not_revoked_by_a_configured_one(store: Store) -> None:
    svc = AccountsService(store)
    generated = await svc.bootstrap_admin(None)
    assert generated is not None
    assert await svc.bootstrap_admin(NEW) is not None
    assert await _active(store, generated.key) and await _active(store, NEW)

"""A key's willingness to pay (migration 0008_key_wtp) is stored and read back by every store."""
from __future__ import annotations

import math

from routerone.services.accounts import AccountsService
from routerone.store.base import Limits, NewKey, Store


async def test_key_willingness_to_pay_roundtrip(store: Store):
    acc = await store.create_account("wtp")
    plain = await store.create_key(NewKey(account_id=acc.id, key_hash="h-wtp-none", prefix="p1"))
    set_ = await store.create_key(NewKey(account_id=acc.id, key_hash="h-wtp-set", prefix="p2",
                                         strategy="balanced", willingness_to_pay=0.3))
    assert plain.willingness_to_pay is None
    assert set_.willingness_to_pay == 0.3 and set_.strategy == "balanced"
    again = await store.key_by_hash("h-wtp-set")
    assert again is not None and again.willingness_to_pay == 0.3
    listed = {k.prefix: k.willingness_to_pay for k in await store.list_keys(acc.id)}
    assert listed == {"p1": None, "p2": 0.3}


async def test_update_key_changes_name_strategy_and_willingness_to_pay_in_place(store: Store):
    """PATCH /admin/keys/{id}: the fields given change, the others stay; None puts strategy and
    willingness to pay back to the gateway default; every change bumps auth_version (so auth
    caches in every process reload the key)."""
    acc = await store.create_account("patch")
    key = await store.create_key(NewKey(account_id=acc.id, key_hash="h-patch", prefix="p3", name="old",
                                        strategy="cost", willingness_to_pay=0.0, limits=Limits(rpm=7)))
    version = await store.auth_version()
    wtp = await store.update_key(key.id, willingness_to_pay=1.0)
    assert wtp is not None and (wtp.name, wtp.strategy, wtp.willingness_to_pay, wtp.limits) == (
        "old", "cost", 1.0, Limits(rpm=7))
    assert await store.auth_version() == version + 1
    renamed = await store.update_key(key.id, name="new", strategy="balanced")
    assert renamed is not None and (renamed.name, renamed.strategy, renamed.willingness_to_pay) == (
        "new", "balanced", 1.0)
    defaults = await store.update_key(key.id, strategy=None, willingness_to_pay=None)
    assert defaults is not None and (defaults.name, defaults.strategy, defaults.willingness_to_pay) == (
        "new", None, None)
    assert await store.key_by_hash("h-patch") == defaults
    assert await store.auth_version() == version + 3
    untouched = await store.update_key(key.id, name="")
    assert untouched is not None and (untouched.name, untouched.strategy, untouched.willingness_to_pay) == ("", None, None)
    assert await store.update_key(key.id + 1000, willingness_to_pay=0.5) is None


async def test_update_key_clears_spend_cap_and_expiry_with_none(store: Store):
    """A key's spend cap and expiry could be set by PATCH but never removed (None meant unchanged):
    None now clears them, as it does strategy; left out (UNSET), they stay."""
    acc = await store.create_account("clear")
    key = await store.create_key(NewKey(account_id=acc.id, key_hash="h-clear", prefix="p4",
                                        spend_cap_micros=5_000, expires_at=2_000_000_000.0))
    kept = await store.update_key(key.id, name="kept")
    assert kept is not None and (kept.spend_cap_micros, kept.expires_at) == (5_000, 2_000_000_000.0)
    no_cap = await store.update_key(key.id, spend_cap_micros=None)
    assert no_cap is not None and (no_cap.spend_cap_micros, no_cap.expires_at) == (None, 2_000_000_000.0)
    no_expiry = await store.update_key(key.id, expires_at=None)
    assert no_expiry is not None and (no_expiry.spend_cap_micros, no_expiry.expires_at) == (None, None)
    assert await store.key_by_hash("h-clear") == no_expiry


async def test_minus_zero_willingness_to_pay_is_stored_as_zero(store: Store):
    """`willingness_to_pay: -0.0` (admin API, `--willingness-to-pay -0`) was kept as -0.0: PostgreSQL
    stored it so, and the audit row said -0.0 on both stores. It is 0.0 on create and on update."""
    svc = AccountsService(store)
    acc = await store.create_account("wtp-minus-zero")
    issued = await svc.create_key(acc.id, willingness_to_pay=-0.0)
    updated = await svc.update_key(issued.record.id, willingness_to_pay=-0.0)
    got = await store.get_key(issued.record.id)
    for k in (issued.record, updated, got):
        assert k is not None and k.willingness_to_pay == 0.0 and math.copysign(1, k.willingness_to_pay) == 1, k
    details = [e.detail for e in await store.list_audit(target=f"key:{issued.record.id}")]
    assert details and all("-0.0" not in d for d in details), details

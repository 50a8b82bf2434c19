"""A key's willingness to pay (migration 0008_key_wtp) is stored and read back by every store."""
from __future__ import annotations

from routerone.store.base import NewKey, Store


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

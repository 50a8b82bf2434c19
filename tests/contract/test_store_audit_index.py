"""The audit log is indexed by (target, id) (migration 0010_audit_target), on a new database and on
one made before that migration existed, on both backends: one target's deep page (an account's
console page, `GET /admin/audit?target=`) no longer walks the log by id."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from routerone.store import postgres, sqlite
from routerone.store.base import Store
from routerone.store.migrations import MIGRATIONS

if TYPE_CHECKING:
    from conftest import Backend

NEW = "0010_audit_target"


def _has_target_index(indexes: dict[str, list[str]]) -> bool:
    return ["target", "id"] in indexes.values()


async def test_a_new_database_has_the_target_index(store: Store, store_backend: Backend) -> None:
    assert _has_target_index(await store_backend.index_columns("audit_log")), \
        await store_backend.index_columns("audit_log")


async def test_an_old_database_upgrades_to_the_target_index(store: Store, store_backend: Backend,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    before = [m for m in MIGRATIONS if m[0] != NEW]
    assert len(before) == len(MIGRATIONS) - 1                # the migration exists, under its name
    with monkeypatch.context() as m:                         # the release before it
        m.setattr(sqlite, "MIGRATIONS", before)
        m.setattr(postgres, "MIGRATIONS", before)
        old = await store_backend.open("old")
        for i in range(6):
            await old.record_audit("cli", f"step.{i}", f"account:{i % 2}")
    assert not _has_target_index(await store_backend.index_columns("audit_log", "old"))

    upgraded = await store_backend.open("old")               # migrates with today's list
    await upgraded.migrate()                                 # and again: nothing left to do
    assert _has_target_index(await store_backend.index_columns("audit_log", "old"))
    page = await upgraded.list_audit(2, target="account:0")
    assert [e.action for e in page] == ["step.4", "step.2"]
    assert [e.action for e in await upgraded.list_audit(5, target="account:0", before_id=page[-1].id)] == ["step.0"]
    await upgraded.record_audit("cli", "step.6", "account:0")
    assert [e.action for e in await old.list_audit(1, target="account:0")] == ["step.6"]

"""The `store` fixture: every contract test runs once per backend (sqlite, postgres).

PostgreSQL comes from ROUTERONE_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/test).
Each test gets its own schemas, dropped afterwards. If the server is unreachable the postgres runs
skip with the reason, or fail when CI is set (a CI run must not go green without PostgreSQL).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import uuid
from pathlib import Path
from typing import AsyncIterator

import asyncpg
import pytest

from routerone.store.base import Store
from routerone.store.postgres import PostgresStore
from routerone.store.sqlite import SQLiteStore

PG_URL = os.environ.get("ROUTERONE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_PROBE_TIMEOUT_S = 3.0


class Backend:
    """Opens stores on a per-test sandbox. `database` names a separate database inside it, so a
    test can start from an empty one; every store opened on the same name shares its data."""

    name: str

    def __init__(self) -> None:
        self._stores: list[Store] = []

    async def open(self, database: str = "main", *, migrate: bool = True) -> Store:
        store = await self._make(database)
        self._stores.append(store)
        if migrate:
            await store.migrate()
        return store

    async def _make(self, database: str) -> Store:
        raise NotImplementedError

    async def index_columns(self, table: str, database: str = "main") -> dict[str, list[str]]:
        """The indexes on `table` (name -> its columns in order), read from the catalog."""
        raise NotImplementedError

    async def aclose(self) -> None:
        for store in self._stores:
            await store.close()


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self._root = root

    async def _make(self, database: str) -> Store:
        return SQLiteStore(str(self._root / f"{database}.db"))

    async def index_columns(self, table: str, database: str = "main") -> dict[str, list[str]]:
        with contextlib.closing(sqlite3.connect(self._root / f"{database}.db")) as db:
            names = [r[1] for r in db.execute(f"PRAGMA index_list({table})")]
            return {n: [r[2] for r in db.execute(f"PRAGMA index_info({n})")] for n in names}


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, admin: asyncpg.Connection) -> None:
        super().__init__()
        self._admin = admin
        self._prefix = f"r1t_{uuid.uuid4().hex[:12]}"
        self._schemas: set[str] = set()

    async def _make(self, database: str) -> Store:
        schema = f"{self._prefix}_{database}"
        if schema not in self._schemas:
            await self._admin.execute(f'CREATE SCHEMA "{schema}"')
            self._schemas.add(schema)
        return PostgresStore(PG_URL, min_size=1, max_size=10, server_settings={"search_path": schema})

    async def index_columns(self, table: str, database: str = "main") -> dict[str, list[str]]:
        rs = await self._admin.fetch(
            "SELECT i.relname, a.attname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
            "JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(attnum, pos) ON true "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            "WHERE n.nspname = $1 AND t.relname = $2 ORDER BY i.relname, k.pos", f"{self._prefix}_{database}", table)
        out: dict[str, list[str]] = {}
        for r in rs:
            out.setdefault(r[0], []).append(r[1])
        return out

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            for schema in self._schemas:
                await self._admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await self._admin.close()


async def _probe(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=PG_PROBE_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@pytest.fixture(scope="session")
def pg_unreachable() -> str | None:
    """None when PostgreSQL answers at PG_URL, else why not (probed once per session)."""
    return asyncio.run(_probe(PG_URL))


_BACKEND = pytest.StashKey[Backend]()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path,
                pg_unreachable: str | None) -> AsyncIterator[Store]:
    """A migrated store on an empty database; `store_backend` opens more stores on the same one."""
    if request.param == "sqlite":
        backend: Backend = SQLiteBackend(tmp_path)
    else:
        if pg_unreachable is not None:
            reason = f"PostgreSQL unreachable at {PG_URL} ({pg_unreachable}); set ROUTERONE_TEST_PG_URL"
            if os.environ.get("CI"):
                pytest.fail(f"{reason}. CI is set, so the postgres contract tests must run.", pytrace=False)
            pytest.skip(reason)
        backend = PostgresBackend(await asyncpg.connect(PG_URL))
    request.node.stash[_BACKEND] = backend
    try:
        yield await backend.open()
    finally:
        await backend.aclose()


@pytest.fixture
def store_backend(store: Store, request: pytest.FixtureRequest) -> Backend:
    """The backend behind this test's `store`, to open a second process's worth of store on it."""
    return request.node.stash[_BACKEND]

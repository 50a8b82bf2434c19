"""`routerone copy-database`: an install that ran on the embedded SQLite default moves to PostgreSQL
with its accounts, balances, keys (same secrets), ledger, audit log and console users, and the
PostgreSQL database then goes on numbering its rows after the copied ones (real `routerone`
processes, a PostgreSQL schema of the test's own)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from routerone.services.keys import hash_key
from routerone.store.postgres import PostgresStore

SRC = str(Path(__file__).resolve().parents[2] / "src")
PG_URL = os.environ.get("ROUTERONE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

pytestmark = pytest.mark.postgres


def run(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    env["PYTHONPATH"] = SRC
    return subprocess.run([sys.executable, "-m", "routerone", *args], capture_output=True, text=True, env=env,
                          timeout=60, cwd=tmp)


@pytest.fixture
def pg_target(pg_unreachable: str | None):
    if pg_unreachable is not None:
        reason = f"PostgreSQL unreachable at {PG_URL} ({pg_unreachable})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}. CI is set, so the copy-database tests must run.", pytrace=False)
        pytest.skip(reason)
    schema = f"r1copy_{uuid.uuid4().hex[:12]}"

    async def sql(statement: str) -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()
    asyncio.run(sql(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_URL}?search_path={schema}"
    asyncio.run(sql(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(scope="session")
def pg_unreachable() -> str | None:
    async def probe() -> str | None:
        try:
            await (await asyncpg.connect(PG_URL, timeout=3)).close()
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
    return asyncio.run(probe())


def test_sqlite_install_moves_to_postgres_with_its_accounts_keys_and_balances(tmp_path: Path, pg_target: str) -> None:
    assert run(tmp_path, "accounts", "create", "acme", "--balance-usd", "25").returncode == 0
    made = run(tmp_path, "keys", "create", "--account", "1", "--rpm", "60", "--spend-cap-usd", "5")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.split()[-1]
    assert run(tmp_path, "accounts", "debit", "1", "2.5", "--note", "invoice 7").returncode == 0
    assert run(tmp_path, "keys", "revoke", "1").returncode == 0
    kept = run(tmp_path, "keys", "create", "--account", "1").stdout.split()[-1]
    assert run(tmp_path, "console-user", "create", "--email", "ops@example.com", "--operator").returncode == 0

    copied = run(tmp_path, "copy-database", "--from", "sqlite:///routerone.db", "--database-url", pg_target)
    assert copied.returncode == 0, copied.stderr
    assert "accounts: 1" in copied.stdout and "api_keys: 2" in copied.stdout, copied.stdout

    async def check() -> None:
        store = PostgresStore(pg_target)
        try:
            await store.migrate()
            account = await store.get_account(1)
            assert account is not None and account.name == "acme" and account.balance_micros == 22_500_000
            assert [e.note for e in await store.ledger(1)][:1] == ["invoice 7"]
            assert await store.ledger_sum(1) == 22_500_000
            old = await store.key_by_hash(hash_key(secret))
            assert old is not None and old.revoked and old.limits.rpm == 60 and old.spend_cap_micros == 5_000_000
            new = await store.key_by_hash(hash_key(kept))
            assert new is not None and not new.revoked and new.id == 2
            assert await store.console_user_by_email("ops@example.com") is not None
            assert [e.action for e in await store.list_audit()]   # the audit log came along
            # the copy's ids go on where SQLite's stopped (a new row does not collide with a copied one)
            assert (await store.create_account("next")).id == 2
        finally:
            await store.close()
    asyncio.run(check())

    again = run(tmp_path, "copy-database", "--from", "sqlite:///routerone.db", "--database-url", pg_target)
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr, again.stderr


def test_copy_from_a_missing_file_or_to_sqlite_is_one_line(tmp_path: Path, pg_target: str) -> None:
    missing = run(tmp_path, "copy-database", "--from", "sqlite:///nope.db", "--database-url", pg_target)
    assert missing.returncode == 2 and "nope.db" in missing.stderr and "Traceback" not in missing.stderr
    assert run(tmp_path, "accounts", "create", "acme").returncode == 0
    to_sqlite = run(tmp_path, "copy-database", "--from", "sqlite:///routerone.db", "--database-url", "sqlite:///b.db")
    assert to_sqlite.returncode == 2 and "postgresql://" in to_sqlite.stderr, to_sqlite.stderr


def test_a_source_that_is_not_an_sqlite_database_is_named_not_postgres(tmp_path: Path, pg_target: str) -> None:
    """A source of random bytes (or a directory) was reported as "cannot open PostgreSQL at ...:
    file is not a database": the SQLite error was explained as the target's."""
    (tmp_path / "junk.db").write_bytes(b"\x00\x01 not sqlite " * 512)
    (tmp_path / "adir.db").mkdir()
    for name in ("junk.db", "adir.db"):
        out = run(tmp_path, "copy-database", "--from", f"sqlite:///{name}", "--database-url", pg_target)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert name in out.stderr and "PostgreSQL" not in out.stderr, out.stderr

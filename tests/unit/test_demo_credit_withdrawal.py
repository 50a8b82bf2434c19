"""The demo's $10 credit is taken back once the demo is off: the first start with a real provider
(or demo = "off") debits what is left of it from the admin account, once, with a ledger entry and
a line at start. Spending since the grant used it first; the operator's own credits stay."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serve_procs import serve_until_listening  # noqa: E402

from routerone.cli import _bootstrap  # noqa: E402
from routerone.settings import Settings  # noqa: E402
from routerone.store.sqlite import SQLiteStore  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")
ADMIN_KEY = "sk-ro-first-admin-key-000000001"


def _start(db: Path, demo: str) -> list[str]:
    return asyncio.run(_bootstrap(Settings(database_url=f"sqlite:///{db}", demo=demo, admin_key=ADMIN_KEY)))


async def _ledger(db: Path):
    store = SQLiteStore(str(db))
    try:
        return await store.get_account(1), await store.ledger(1)
    finally:
        await store.close()


async def _adjust(db: Path, amount_micros: int, kind: str, note: str, actor: str = "") -> None:
    store = SQLiteStore(str(db))
    try:
        await store.adjust_balance(1, amount_micros, kind=kind, note=note, actor=actor)
    finally:
        await store.close()


def test_the_unspent_demo_credit_is_withdrawn_once_when_the_demo_is_off(tmp_path):
    db = tmp_path / "r.db"
    assert any("$10 of demo balance" in line for line in _start(db, "on"))
    assert not any("withdrawn" in line for line in _start(db, "on"))      # the demo still on: it stays
    asyncio.run(_adjust(db, -2_500_000, "debit", "used on the demo"))
    asyncio.run(_adjust(db, 40_000_000, "credit", "the operator's own money"))

    lines = _start(db, "off")
    said = [line for line in lines if "demo credit" in line]
    assert said == ["Demo provider off: the unspent $7.500000 of demo credit was withdrawn from the admin account "
                    "(a ledger debit)."], lines
    acc, ledger = asyncio.run(_ledger(db))
    assert acc.balance_micros == 40_000_000
    assert (ledger[0].kind, ledger[0].amount_micros, ledger[0].note) == ("debit", -7_500_000, "demo credit withdrawn")

    assert not any("demo credit" in line for line in _start(db, "off"))    # once
    assert asyncio.run(_ledger(db))[0].balance_micros == 40_000_000


def test_a_database_with_only_the_old_style_withdrawal_is_not_debited_again(tmp_path):
    """A database from before grant_withdrawals holds the complete withdrawal as a ledger debit noted
    "demo credit withdrawn" by "system" and nothing else: a start with the demo off takes nothing
    more, and does not sum the ledger again (the spending since the grant is rewritten smaller
    below, straight into the table: a sum would take $2 of the operator's money)."""
    db = tmp_path / "r.db"
    _start(db, "on")
    asyncio.run(_adjust(db, -2_500_000, "debit", "used on the demo"))
    asyncio.run(_adjust(db, -7_500_000, "debit", "demo credit withdrawn", actor="system"))   # as written before
    asyncio.run(_adjust(db, 40_000_000, "credit", "the operator's own money"))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE ledger SET amount_micros = -500000 WHERE note = 'used on the demo'")
    lines = _start(db, "off")
    assert not any("demo credit" in line for line in lines), lines
    acc, ledger = asyncio.run(_ledger(db))
    assert acc.balance_micros == 40_000_000 and ledger[0].note == "the operator's own money"


def test_a_real_serve_with_the_demo_off_says_so_and_the_balance_is_back_to_the_operators(tmp_path):
    db = tmp_path / "r.db"
    assert "$10 of demo balance" in _serve_once(db, "auto")
    out = _serve_once(db, "off")
    assert "the unspent $10.000000 of demo credit was withdrawn from the admin account" in out, out
    assert "withdrawn" not in _serve_once(db, "off")
    listing = subprocess.run([sys.executable, "-m", "routerone", "--database-url", f"sqlite:///{db}", "accounts",
                              "list"], capture_output=True, text=True, env=_env(), timeout=60).stdout
    assert "balance=$0.000000" in listing, listing


def _env(**extra: str) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    e.update({"PYTHONPATH": SRC, "ROUTERONE_ADMIN_KEY": ADMIN_KEY, **extra})
    return e


def _serve_once(db: Path, demo: str) -> str:
    """`routerone serve` with demo = `demo` until it listens, then SIGTERM; what it printed."""
    return serve_until_listening(db, _env(ROUTERONE_DEMO=demo))

"""The operator CLI end to end on a real SQLite file: accounts, keys (shown once, stored hashed), models."""
from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serve_procs import serve_until_listening  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run(db: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    e.update({"PYTHONPATH": SRC, **(env or {})})
    return subprocess.run([sys.executable, "-m", "routerone", "--database-url", f"sqlite:///{db}", *args],
                          capture_output=True, text=True, env=e, timeout=60)


def test_accounts_and_keys_round_trip(tmp_path):
    db = tmp_path / "r.db"
    out = run(db, "accounts", "create", "acme", "--balance-usd", "12.5")
    assert out.returncode == 0, out.stderr
    acc_id = re.search(r"account (\d+)", out.stdout).group(1)
    assert "$12.500000" in out.stdout
    out = run(db, "accounts", "credit", acc_id, "0.000001", "--note", "one micro")
    assert "$12.500001" in out.stdout
    out = run(db, "keys", "create", "--account", acc_id, "--name", "ci", "--rpm", "5", "--models", "gpt-4o,auto")
    assert out.returncode == 0, out.stderr
    secret = out.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk-ro-") and len(secret) > 40
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT key_hash, prefix, rpm, allowed_models FROM api_keys").fetchall()
    assert all(secret not in str(r) for r in rows)           # only the hash and a short prefix are stored
    assert rows[0][2] == 5 and rows[0][3] == "gpt-4o,auto"
    listing = run(db, "keys", "list").stdout
    assert "active" in listing and secret not in listing
    key_id = listing.split()[0]
    assert run(db, "keys", "revoke", key_id).stdout.strip() == "revoked"
    assert "revoked" in run(db, "keys", "list").stdout
    out = run(db, "accounts", "debit", acc_id, "100")
    assert out.returncode != 0 and "Traceback" not in out.stderr


def test_models_lists_demo_without_credentials_and_real_models_with(tmp_path):
    db = tmp_path / "r.db"
    demo = run(db, "models").stdout
    assert "demo-small" in demo and "gpt-4o" not in demo
    real = run(db, "models", env={"OPENAI_API_KEY": "sk-test"}).stdout
    assert "gpt-4o" in real and "demo-small" not in real


def test_bad_setting_names_the_key(tmp_path):
    out = run(tmp_path / "r.db", "models", env={"ROUTERONE_PORT": "eighty"})
    assert out.returncode == 2 and "ROUTERONE_PORT" in out.stderr


def test_accounts_list_shows_control_characters_in_names_as_escapes(tmp_path):
    """An account name set through the admin API or the console may hold escape sequences (OSC 52
    writes the operator's clipboard, CSI 2J clears the screen); `accounts list` printed them raw."""
    db = tmp_path / "r.db"
    assert run(db, "accounts", "create", "acme\x1b]52;c;cHduZWQ=\x07\x1b[2J").returncode == 0
    listing = run(db, "accounts", "list").stdout
    assert "\x1b" not in listing and "\x07" not in listing
    assert "acme\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J" in listing, listing


def _serve_once(db: Path, admin_key: str) -> str:
    """`routerone serve` with this admin_key until it listens, then SIGTERM; what it printed."""
    e = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    e.update({"PYTHONPATH": SRC, "ROUTERONE_ADMIN_KEY": admin_key})
    return serve_until_listening(db, e)


def test_the_demo_credit_is_given_once_and_only_to_the_gateways_own_account(tmp_path):
    """The $10 demo credit went to whatever account had the first id each time a new admin_key was
    registered: a customer's account made with the CLI before the first `serve` got it, and again
    after every change of admin_key ($45 for a $25 account after two starts)."""
    db = tmp_path / "r.db"
    assert run(db, "accounts", "create", "acme", "--balance-usd", "25").returncode == 0
    for key in ("sk-ro-first-admin-key-000000001", "sk-ro-second-admin-key-00000002"):
        assert "registered" in _serve_once(db, key)
    assert "balance=$25.000000" in run(db, "accounts", "list").stdout

    fresh = tmp_path / "fresh.db"
    assert "$10 of demo balance" in _serve_once(fresh, "sk-ro-first-admin-key-000000001")
    assert "demo balance" not in _serve_once(fresh, "sk-ro-second-admin-key-00000002")
    assert "balance=$10.000000" in run(fresh, "accounts", "list").stdout


def test_start_up_asks_whether_an_account_exists_without_listing_them(tmp_path, monkeypatch):
    """The bootstrap listed every account (every row, on every start) to know whether this was the
    first start; it asks the store whether one exists. The first start still gets the demo credit,
    a later one does not."""
    import asyncio

    from routerone.cli import _bootstrap
    from routerone.settings import Settings
    from routerone.store.sqlite import SQLiteStore

    async def no_listing(self):
        raise AssertionError("start-up listed every account")

    monkeypatch.setattr(SQLiteStore, "list_accounts", no_listing)
    db = tmp_path / "r.db"
    first = asyncio.run(_bootstrap(Settings(database_url=f"sqlite:///{db}", demo="on",
                                            admin_key="sk-ro-first-admin-key-000000001")))
    assert any("demo balance" in line for line in first), first
    again = asyncio.run(_bootstrap(Settings(database_url=f"sqlite:///{db}", demo="on",
                                            admin_key="sk-ro-second-admin-key-00000002")))
    assert again and not any("demo balance" in line for line in again), again

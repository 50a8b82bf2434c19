"""`routerone audit` shows what the CLI's own changes recorded, newest first, with the actor "cli"."""
from __future__ import annotations

import json
from pathlib import Path

from routerone.cli import main


def test_cli_changes_are_audited_and_listed(tmp_path: Path, capsys) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'r1.db'}"]
    assert main([*db, "accounts", "create", "acme", "--balance-usd", "5"]) == 0
    assert main([*db, "accounts", "credit", "1", "2.5", "--note", "invoice 7"]) == 0
    assert main([*db, "keys", "create", "--account", "1", "--models", "gpt-4o"]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert main([*db, "keys", "revoke", "1"]) == 0
    capsys.readouterr()

    assert main([*db, "audit"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[4] for ln in lines] == ["key.revoke", "key.create", "account.credit", "account.create"]
    assert all(ln.split()[3] == "cli" for ln in lines)
    credit = json.loads(lines[2].split(maxsplit=6)[6])
    assert credit == {"amount_micros": 2_500_000, "balance_micros": 7_500_000, "note": "invoice 7"}
    assert secret.startswith("sk-ro-") and secret not in "\n".join(lines) and secret[6:14] not in "\n".join(lines)

    assert main([*db, "audit", "--target", "account:1", "--limit", "1"]) == 0
    assert [ln.split()[4] for ln in capsys.readouterr().out.strip().splitlines()] == ["account.credit"]

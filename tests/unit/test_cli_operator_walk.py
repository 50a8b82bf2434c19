"""Leftovers of an operator's walk through the README on a vLLM-like box (session 13), each a real
`routerone` process or `main()` in-process, as the other CLI tests run it.

Before: a CLI command run from another directory made and used a new empty ./routerone.db; `keys list`
hid a key's allowlist, limits, spend cap and expiry; `models` with every provider down printed a header
and exited 0; `console-user create` printed the config's port as a fact; `audit` could not page."""
from __future__ import annotations

import ast
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from routerone.cli import main

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    e.update({"PYTHONPATH": SRC, **(env or {})})
    return subprocess.run([sys.executable, "-m", "routerone", *args], capture_output=True, text=True, env=e,
                          timeout=60, cwd=cwd)


def _one_line_exit_2(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


# -- 1. a missing SQLite file is refused, not made ------------------------------------------------
@pytest.mark.parametrize("args", [["keys", "list"], ["accounts", "credit", "1", "5"], ["usage"], ["audit"],
                                  ["keys", "create", "--account", "1"], ["keys", "revoke", "1"],
                                  ["accounts", "list"]])
def test_a_command_run_elsewhere_does_not_make_a_new_empty_database(tmp_path, args):
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    line = _one_line_exit_2(run(elsewhere, *args))
    assert str(elsewhere / "routerone.db") in line                 # the absolute path it looked at
    assert "routerone serve" in line and "--database-url" in line and "ROUTERONE_DATABASE_URL" in line
    assert not (elsewhere / "routerone.db").exists()


def test_a_missing_file_named_with_database_url_is_refused_too(tmp_path):
    typo = tmp_path / "routerne.db"
    line = _one_line_exit_2(run(tmp_path, "--database-url", f"sqlite:///{typo}", "keys", "list"))
    assert str(typo) in line and not typo.exists()


@pytest.mark.parametrize("args", [["accounts", "create", "acme"],
                                  ["console-user", "create", "--email", "ops@example.com", "--operator"]])
def test_the_first_account_or_console_user_may_start_a_database_and_says_where(tmp_path, args):
    """Set up before the first `serve` (the first start leaves an account made so alone): allowed,
    but never silently: stderr names the absolute path of the new file."""
    out = run(tmp_path, *args)
    assert out.returncode == 0, out.stderr
    assert f"no database at {tmp_path / 'routerone.db'}: making a new one" in out.stderr
    assert "routerone serve" in out.stderr and "Traceback" not in out.stderr
    again = run(tmp_path, "accounts", "create", "other")
    assert again.returncode == 0 and again.stderr == ""                # the file exists now: no note


def test_an_existing_database_file_is_used(tmp_path):
    sqlite3.connect(tmp_path / "routerone.db").close()       # exists (empty): the CLI migrates it
    out = run(tmp_path, "accounts", "create", "acme")
    assert out.returncode == 0, out.stderr
    assert "acme" in run(tmp_path, "accounts", "list").stdout


# -- 2. keys list shows what a key may do ---------------------------------------------------------
def test_keys_list_shows_allowlist_limits_spend_cap_and_expiry_after_the_old_columns(tmp_path, capsys):
    db = ["--database-url", f"sqlite:///{tmp_path / 'r.db'}"]
    assert main([*db, "accounts", "create", "acme"]) == 0
    assert main([*db, "keys", "create", "--account", "1", "--name", "ci", "--models", "demo-small,auto",
                 "--rpm", "60", "--tpm", "1000", "--concurrency", "2", "--spend-cap-usd", "5.25",
                 "--expires-at", "1798761600"]) == 0
    assert main([*db, "keys", "create", "--account", "1"]) == 0
    capsys.readouterr()
    assert main([*db, "keys", "list"]) == 0
    limited, plain = capsys.readouterr().out.strip().splitlines()
    old = limited.split()[:7]               # the columns scripts parse, in their old order
    assert old[0] == "1" and old[2:6] == ["account=1", "role=user", "active", "spent=$0.000000"]
    assert old[6] == "name='ci'"
    assert limited.split()[7:] == ["models=demo-small,auto", "rpm=60", "tpm=1000", "concurrency=2",
                                   "cap=$5.250000", "expires=2027-01-01T00:00:00Z", "strategy=default",
                                   "willingness_to_pay=default"]
    assert plain.split()[7:13] == ["models=any", "rpm=-", "tpm=-", "concurrency=-", "cap=none", "expires=never"]


def test_keys_list_keeps_a_name_with_spaces_in_one_column(tmp_path, capsys):
    """Session 13: `name='ci key'` split into two columns; a space is written \\x20 (still a Python
    string literal, so ast.literal_eval reads the name back), every other column where it was."""
    db = ["--database-url", f"sqlite:///{tmp_path / 'r.db'}"]
    assert main([*db, "accounts", "create", "acme"]) == 0
    assert main([*db, "keys", "create", "--account", "1", "--name", "ci key 'two'"]) == 0
    capsys.readouterr()
    assert main([*db, "keys", "list"]) == 0
    cols = capsys.readouterr().out.split()
    assert len(cols) == 15 and cols[2:6] == ["account=1", "role=user", "active", "spent=$0.000000"], cols
    assert cols[6] == "name=\"ci\\x20key\\x20'two'\"", cols[6]
    assert ast.literal_eval(cols[6].removeprefix("name=")) == "ci key 'two'"
    assert cols[7:13] == ["models=any", "rpm=-", "tpm=-", "concurrency=-", "cap=none", "expires=never"]


# -- 3. models with every provider down ----------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]       # closed again: nothing listens there


def test_models_with_the_only_box_down_says_nothing_could_be_listed_and_exits_1(tmp_path):
    (tmp_path / "r.toml").write_text(f'[providers.vllm]\nbase_url = "http://127.0.0.1:{_closed_port()}/v1"\n')
    out = run(tmp_path, "models", "--config", str(tmp_path / "r.toml"))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert "provider vllm: model discovery failed" in lines[0]
    assert lines[-1].startswith("routerone: no model could be listed") and "vllm" in lines[-1]


def test_models_all_with_the_only_box_down_exits_1_too(tmp_path):
    """Session 13: `models --all` printed a bare header and "0 priced models" and exited 0 when every
    provider's box was down; it exits 1 as `models` does, saying why."""
    (tmp_path / "r.toml").write_text(f'[providers.vllm]\nbase_url = "http://127.0.0.1:{_closed_port()}/v1"\n')
    out = run(tmp_path, "models", "--all", "--config", str(tmp_path / "r.toml"))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert "provider vllm: model discovery failed" in lines[0]
    assert lines[-1].startswith("routerone: no model could be listed") and "vllm" in lines[-1]


# -- 4. console-user create says no port as a fact it cannot know ---------------------------------
def test_console_user_create_does_not_state_the_configs_port_as_where_serve_listens(tmp_path):
    """`serve --port 9000` listens on 9000 whatever the config says: the URL is the configuration's,
    said as such, and the line says serve's --host/--port win."""
    (tmp_path / "r1.toml").write_text("port = 18123\n")
    assert run(tmp_path, "accounts", "create", "acme", "--config", str(tmp_path / "r1.toml")).returncode == 0
    out = run(tmp_path, "console-user", "create", "--email", "ops@example.com", "--operator",
              "--config", str(tmp_path / "r1.toml"))
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last == ("sign in at /console/ on the address `routerone serve` listens on (with this configuration "
                    "http://127.0.0.1:18123/console/, unless serve was started with --host or --port)"), last


# -- 5. audit pages back with --before-id, as GET /admin/audit does with before_id ------------------
def test_audit_pages_with_before_id(tmp_path, capsys):
    db = ["--database-url", f"sqlite:///{tmp_path / 'r.db'}"]
    assert main([*db, "accounts", "create", "acme"]) == 0
    for usd in ("1", "2", "3"):
        assert main([*db, "accounts", "credit", "1", usd]) == 0
    capsys.readouterr()
    assert main([*db, "audit", "--limit", "2"]) == 0
    out = capsys.readouterr()
    first = [ln.split()[0] for ln in out.out.strip().splitlines()]
    assert first == ["4", "3"]
    assert out.err.strip() == "routerone: older entries: repeat with --before-id 3"
    assert main([*db, "audit", "--limit", "2", "--before-id", "3"]) == 0
    out = capsys.readouterr()
    assert [ln.split()[0] for ln in out.out.strip().splitlines()] == ["2", "1"] and out.err == ""
    assert main([*db, "audit", "--before-id", "1"]) == 0
    assert capsys.readouterr().out == ""

"""Hostile operator inputs found by playing a new operator (round 5): each one a real `routerone`
process, each a single stderr line naming the flag, variable or file and what is allowed, exit 2,
and no traceback.

Before: the service's own checks answered (`'rpm' must be an integer between 0 and 2147483647`,
naming no flag, exit 1); `--models ""` made a key with no allowlist; an empty database URL was a
traceback; ROUTERONE_ROUTER_MODEL / ROUTERONE_MODEL_PRIORS were read after "listening on", a
missing one said only "No such file or directory", a broken one was a traceback, a FIFO hung
start-up for ever (SIGTERM did not end it)."""
from __future__ import annotations

import json
import math
import os
import socket
import re
import sqlite3
import subprocess
import sys

import pytest

from routerone.services.keys import hash_key
from test_cli_errors import run


def _one_line_exit_2(out: subprocess.CompletedProcess, *culprits: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for culprit in culprits:
        assert culprit in lines[0], lines[0]
    return lines[0]


# distinct `*` patterns that each match gpt-4o-mini (`g*`, `gp*i`, ...): a key may hold them, up to a bound
_MINI_PATTERNS = list(dict.fromkeys(f"{n[:a]}*{n[b:]}" for n in ["gpt-4o-mini"] for a in range(1, len(n))
                                    for b in range(a, len(n))))


def _db(tmp_path) -> list[str]:
    return ["--database-url", f"sqlite:///{tmp_path}/r.db"]


@pytest.fixture
def account(tmp_path) -> str:
    out = run(tmp_path, "accounts", "create", "acme", "--balance-usd", "5", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


# (case, args after the account fixture's id is put in for ACC, what the line must name)
FLAG_CASES = [
    ("negative rpm", ["keys", "create", "--account", "ACC", "--rpm", "-5"], ["--rpm", "-5", "2147483647"]),
    ("rpm beyond INTEGER", ["keys", "create", "--account", "ACC", "--tpm", "99999999999999999999"], ["--tpm"]),
    ("negative concurrency", ["keys", "create", "--account", "ACC", "--concurrency", "-1"], ["--concurrency"]),
    # 0 was stored and read as no limit at all: a key meant to be stopped ran unlimited
    ("zero rpm", ["keys", "create", "--account", "ACC", "--rpm", "0"], ["--rpm", "'0'", "from 1"]),
    ("expiry nan", ["keys", "create", "--account", "ACC", "--expires-at", "nan"], ["--expires-at", "unix time"]),
    ("expiry inf", ["keys", "create", "--account", "ACC", "--expires-at", "inf"], ["--expires-at"]),
    ("expiry negative", ["keys", "create", "--account", "ACC", "--expires-at", "-1"], ["--expires-at"]),
    ("expiry in ms", ["keys", "create", "--account", "ACC", "--expires-at", "1796637511000"], ["--expires-at"]),
    ("allowlist empty", ["keys", "create", "--account", "ACC", "--models", ""], ["--models", "model ids"]),
    ("allowlist with a hole", ["keys", "create", "--account", "ACC", "--models", "a,,auto"], ["--models", "'a,,auto'"]),
    ("allowlist with a space", ["keys", "create", "--account", "ACC", "--models", "gpt-4o, auto"], ["--models"]),
    ("key name too long", ["keys", "create", "--account", "ACC", "--name", "n" * 201], ["--name", "200"]),
    # session 13: 1,000 `*` patterns took ~1.9 s to compile on a key's first request, on the event loop
    ("allowlist too many patterns", ["keys", "create", "--account", "ACC", "--models",
                                     ",".join(_MINI_PATTERNS[:33])], ["--models", "32", "'*'"]),
    ("allowlist pattern too many stars", ["keys", "create", "--account", "ACC", "--models", "gpt" + "*" * 17],
     ["--models", "16", "'*'"]),
    ("update allowlist too many stars", ["keys", "update", "1", "--models", "auto,g*p*t*-*4*o*m*i*n*i*a*b*c*d*e*f*g*h*"],
     ["--models", "16"]),
    ("key for no account", ["keys", "create", "--account", "999"], ["No account 999"]),
    # keys update: a key's routing in place; "default" (not "": an unset variable) resets a setting
    ("update wtp above 1", ["keys", "update", "1", "--willingness-to-pay", "1.5"],
     ["--willingness-to-pay", "'1.5'", "0 to 1", "'default'"]),
    ("update wtp nan", ["keys", "update", "1", "--willingness-to-pay", "nan"], ["--willingness-to-pay", "'nan'"]),
    ("update wtp inf", ["keys", "update", "1", "--willingness-to-pay", "inf"], ["--willingness-to-pay"]),
    ("update wtp negative", ["keys", "update", "1", "--willingness-to-pay", "-0.1"], ["--willingness-to-pay"]),
    ("update wtp empty", ["keys", "update", "1", "--willingness-to-pay", ""], ["--willingness-to-pay", "''"]),
    ("update wtp not ascii", ["keys", "update", "1", "--willingness-to-pay", "\u0661"], ["--willingness-to-pay"]),
    ("update strategy unknown", ["keys", "update", "1", "--strategy", "bogus"],
     ["--strategy", "'bogus'", "balanced", "latency"]),
    ("update strategy empty", ["keys", "update", "1", "--strategy", ""], ["--strategy", "''"]),
    ("update name too long", ["keys", "update", "1", "--name", "n" * 201], ["--name", "200"]),
    ("update nothing", ["keys", "update", "1"], ["nothing to change", "--strategy", "--willingness-to-pay"]),
    ("update no key", ["keys", "update", "999", "--name", "x"], ["No key 999"]),
    ("update id zero", ["keys", "update", "0", "--name", "x"], ["id", "'0'"]),
    ("update allowlist empty", ["keys", "update", "1", "--models", ""], ["--models", "''", "'none'"]),
    ("update allowlist with a hole", ["keys", "update", "1", "--models", "a,,auto"], ["--models", "'a,,auto'"]),
    ("account name empty", ["accounts", "create", ""], ["name", "1 to 200"]),
    ("account name too long", ["accounts", "create", "x" * 201], ["name", "1 to 200"]),
    ("markup negative", ["accounts", "create", "x", "--markup-bps", "-100"], ["--markup-bps", "1000000"]),
    ("markup too large", ["accounts", "create", "x", "--markup-bps", "99999999999"], ["--markup-bps"]),
    ("credit zero", ["accounts", "credit", "ACC", "0"], ["amount_usd", "more than 0 USD"]),
    ("debit zero", ["accounts", "debit", "ACC", "0.000000"], ["amount_usd", "more than 0 USD"]),
    ("note too long", ["accounts", "credit", "ACC", "1", "--note", "n" * 1001], ["--note", "1000"]),
    ("credit no account", ["accounts", "credit", "999", "1"], ["No account 999"]),
    ("debit beyond the balance", ["accounts", "debit", "ACC", "6"], ["available balance"]),
    ("config path empty", ["models", "--config", ""], ["--config"]),
    ("database URL empty", ["accounts", "list", "--database-url", ""], ["database_url", "''"]),
    ("usage group twice", ["usage", "--by", "day,day"], ["--by", "'day,day'", "once"]),
    ("usage since after until", ["usage", "--since", "2027-01-01", "--until", "2026-01-01"], ["--since", "--until"]),
    ("usage since equals until", ["usage", "--since", "2026-01-01", "--until", "2026-01-01"], ["--since"]),
    # the bounds GET /admin/usage takes (0 .. year 9999): the CLI read earlier or later ones silently
    ("usage since before 1970", ["usage", "--since", "1969-12-31"], ["--since", "'1969-12-31'", "9999"]),
    ("usage until before 1970", ["usage", "--until", "1969-12-31T23:59:59Z"], ["--until", "1969-12-31T23:59:59Z"]),
    ("usage until after 9999", ["usage", "--until", "999999999999999"], ["--until", "'999999999999999'", "9999"]),
    ("usage since after 9999 by its offset", ["usage", "--since", "9999-12-31T23:59:59-01:00"], ["--since", "9999"]),
]


@pytest.mark.parametrize("case, args, culprits", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_flag_mistakes_name_the_flag_and_exit_2(tmp_path, account, case, args, culprits):
    args = [account if a == "ACC" else a for a in args]
    db = [] if "--database-url" in args else _db(tmp_path)
    _one_line_exit_2(run(tmp_path, *args, *db), *culprits)


def test_a_refused_key_or_account_is_not_written(tmp_path, account):
    """The flags are checked before anything is stored: no key row, no audit row for a refusal."""
    run(tmp_path, "keys", "create", "--account", account, "--models", "", *_db(tmp_path))
    run(tmp_path, "accounts", "create", "x", "--markup-bps", "-1", *_db(tmp_path))
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT COUNT(*) FROM api_keys").fetchone() == (0,)
        assert c.execute("SELECT COUNT(*) FROM accounts").fetchone() == (1,)


def test_keys_update_changes_routing_in_place_and_is_audited(tmp_path, account):
    """`keys update` changes a key's name, strategy and willingness to pay, keeping its secret;
    `default` puts a setting back to the gateway's; a refused value writes nothing."""
    out = run(tmp_path, "keys", "create", "--account", account, "--name", "app", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    key_id, secret = out.stdout.split()[2], out.stdout.splitlines()[1]
    out = run(tmp_path, "keys", "update", key_id, "--willingness-to-pay", "0.25", "--strategy", "cost",
              "--name", "app-2", *_db(tmp_path))
    assert out.returncode == 0 and out.stdout.strip() == (
        f"key {key_id} name='app-2' strategy=cost willingness_to_pay=0.25"), (out.stdout, out.stderr)
    _one_line_exit_2(run(tmp_path, "keys", "update", key_id, "--willingness-to-pay", "2", *_db(tmp_path)))
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT name, strategy, willingness_to_pay FROM api_keys").fetchall() == [("app-2", "cost", 0.25)]
    out = run(tmp_path, "keys", "update", key_id, "--willingness-to-pay", "default", *_db(tmp_path))
    assert out.returncode == 0 and out.stdout.strip().endswith("strategy=cost willingness_to_pay=default"), out.stdout
    out = run(tmp_path, "keys", "update", key_id, "--strategy", "default", *_db(tmp_path))
    assert out.returncode == 0 and "strategy=default willingness_to_pay=default" in out.stdout, out.stdout
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT name, strategy, willingness_to_pay FROM api_keys").fetchall() == [("app-2", None, None)]
        assert c.execute("SELECT COUNT(*) FROM api_keys WHERE key_hash = ?", (hash_key(secret),)).fetchone() == (1,)
        audit = c.execute("SELECT actor, action, detail FROM audit_log WHERE action = 'key.update' ORDER BY id").fetchall()
    assert [(a, act) for a, act, _ in audit] == [("cli", "key.update")] * 3
    assert [json.loads(d) for _, _, d in audit] == [
        {"name": "app-2", "strategy": "cost", "willingness_to_pay": 0.25}, {"willingness_to_pay": None},
        {"strategy": None}]


def test_models_flag_keeps_the_allowlist(tmp_path, account):
    out = run(tmp_path, "keys", "create", "--account", account, "--models", "gpt-4o,auto,gpt-4o", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT allowed_models FROM api_keys").fetchone() == ("gpt-4o,auto",)


def test_models_flag_refuses_a_model_nothing_serves(tmp_path, account):
    """`--models gpt-4o-minii` made a key that could call nothing: refused, naming the name, and
    nothing written; a `*` pattern that matches a catalog model is accepted."""
    line = _one_line_exit_2(run(tmp_path, "keys", "create", "--account", account, "--models",
                                "gpt-4o,gpt-4o-minii,auto", *_db(tmp_path)), "gpt-4o-minii", "--models")
    assert "'gpt-4o'" not in line, line
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT COUNT(*) FROM api_keys").fetchone() == (0,)
    out = run(tmp_path, "keys", "create", "--account", account, "--models", "gpt-4o*,demo-small", *_db(tmp_path))
    assert out.returncode == 0, out.stderr


def test_a_model_refused_while_a_box_is_down_says_discovery_failed(tmp_path, account):
    """With the operator's box down, `--models <a model of the box>` said only that the gateway knows
    no such model (and named the admin API's `allowed_models`, not the flag): the line now names the
    flag and the provider whose model list could not be read."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]       # closed again: nothing listens there
    (tmp_path / "r1.toml").write_text(f'[providers.gpubox]\nbase_url = "http://127.0.0.1:{port}/v1"\n')
    key_id = run(tmp_path, "keys", "create", "--account", account, *_db(tmp_path)).stdout.split()[2]
    for action in (["create", "--account", account], ["update", key_id]):
        line = _one_line_exit_2(run(tmp_path, "keys", *action, "--models", "Qwen/Qwen2.5-7B-Instruct",
                                    "--config", str(tmp_path / "r1.toml"), *_db(tmp_path)),
                                "--models", "'Qwen/Qwen2.5-7B-Instruct'", "gpubox", "discovery failed")
        assert "allowed_models" not in line, line


@pytest.mark.parametrize("since", ["1764547200", "2025-12-01", "2025-12-01T00:00:00Z", "2025-12-01T01:00:00+01:00"])
def test_usage_bounds_take_unix_seconds_and_iso_8601(tmp_path, account, since):
    """`routerone usage` took ISO dates only while GET /admin/usage took unix seconds only: both
    take both now (the same instant, 2025-12-01 00:00 UTC, four ways). (`account`: the database must
    exist; `usage` refuses a missing SQLite file.)"""
    out = run(tmp_path, "usage", "--since", since, "--until", "1764633600", *_db(tmp_path))
    assert out.returncode == 0, out.stderr


def test_keys_update_sets_and_clears_spend_cap_and_expiry(tmp_path, account):
    """`keys update` could not change a key's spend cap or expiry, and nothing could remove them:
    `--spend-cap-usd none` / `--expires-at none` clear them, a value sets them."""
    out = run(tmp_path, "keys", "create", "--account", account, "--spend-cap-usd", "2", "--expires-at",
              "2000000000", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    key_id = out.stdout.split()[2]
    out = run(tmp_path, "keys", "update", key_id, "--spend-cap-usd", "none", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT spend_cap_micros, expires_at FROM api_keys").fetchall() == [(None, 2e9)]
    out = run(tmp_path, "keys", "update", key_id, "--expires-at", "none", "--spend-cap-usd", "3.5", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT spend_cap_micros, expires_at FROM api_keys").fetchall() == [(3_500_000, None)]
    _one_line_exit_2(run(tmp_path, "keys", "update", key_id, "--spend-cap-usd", "nothing", *_db(tmp_path)),
                     "--spend-cap-usd", "'none'")


def test_keys_update_models_sets_checks_and_clears_the_allowlist(tmp_path, account):
    """`keys update` had no `--models` (the admin PATCH takes `allowed_models`): a key's allowlist
    could not be changed from the CLI. Names are checked against the catalog as on create; `none`
    clears the list (every model); a refused list changes nothing."""
    out = run(tmp_path, "keys", "create", "--account", account, "--models", "gpt-4o,auto", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    key_id = out.stdout.split()[2]
    out = run(tmp_path, "keys", "update", key_id, "--models", "gpt-4o-mini,demo-small,gpt-4o-mini", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("models=gpt-4o-mini,demo-small"), out.stdout
    line = _one_line_exit_2(run(tmp_path, "keys", "update", key_id, "--models", "gpt-4o-minii,auto", *_db(tmp_path)),
                            "gpt-4o-minii")
    assert "'auto'" not in line, line
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT allowed_models FROM api_keys").fetchall() == [("gpt-4o-mini,demo-small",)]
    out = run(tmp_path, "keys", "update", key_id, "--models", "none", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("models=any"), out.stdout
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT allowed_models FROM api_keys").fetchall() == [("",)]
        audit = c.execute("SELECT detail FROM audit_log WHERE action = 'key.update' ORDER BY id").fetchall()
    assert [json.loads(d) for d, in audit] == [{"allowed_models": ["gpt-4o-mini", "demo-small"]},
                                               {"allowed_models": []}]


def test_an_account_name_another_account_has_is_refused(tmp_path, account):
    """`accounts create acme` twice made two "acme"s that `accounts list` could not tell apart."""
    for same in ("acme", " ACME "):
        _one_line_exit_2(run(tmp_path, "accounts", "create", same, *_db(tmp_path)), f"account {account}", "'acme'")
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT id, name FROM accounts").fetchall() == [(int(account), "acme")]
        assert c.execute("SELECT COUNT(*) FROM audit_log WHERE action = 'account.create'").fetchone() == (1,)


def test_keys_create_takes_strategy_and_willingness_to_pay(tmp_path, account):
    """POST /admin/keys took `strategy` and `willingness_to_pay`; `keys create` had no flags for
    them (a key had to be made, then updated)."""
    out = run(tmp_path, "keys", "create", "--account", account, "--strategy", "cost", "--willingness-to-pay",
              "0.3", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT strategy, willingness_to_pay FROM api_keys").fetchall() == [("cost", 0.3)]
        detail = c.execute("SELECT detail FROM audit_log WHERE action = 'key.create'").fetchone()[0]
    assert (json.loads(detail)["strategy"], json.loads(detail)["willingness_to_pay"]) == ("cost", 0.3)
    _one_line_exit_2(run(tmp_path, "keys", "create", "--account", account, "--strategy", "random", *_db(tmp_path)),
                     "--strategy", "random")
    _one_line_exit_2(run(tmp_path, "keys", "create", "--account", account, "--willingness-to-pay", "1.5",
                         *_db(tmp_path)), "--willingness-to-pay", "1.5")


@pytest.mark.parametrize("command", ["create", "update"])
def test_willingness_to_pay_minus_zero_is_stored_as_zero(tmp_path, account, command):
    """`--willingness-to-pay -0` (and the admin API's -0.0) was stored as -0.0, shown as `-0`."""
    out = run(tmp_path, "keys", "create", "--account", account, *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    key_id = out.stdout.split()[2]
    args = (["keys", "update", key_id] if command == "update" else ["keys", "create", "--account", account])
    out = run(tmp_path, *args, "--willingness-to-pay", "-0", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    shown = re.sub(r"sk-[A-Za-z0-9_-]+", "<secret>", out.stdout)   # a random secret may hold "-0"
    assert "-0" not in shown, out.stdout
    with sqlite3.connect(tmp_path / "r.db") as c:
        stored = [r[0] for r in c.execute("SELECT willingness_to_pay FROM api_keys WHERE willingness_to_pay "
                                          "IS NOT NULL")]
        detail = c.execute("SELECT detail FROM audit_log WHERE action = ? ORDER BY id DESC",
                           (f"key.{command}",)).fetchone()[0]
    assert stored == [0.0] and math.copysign(1, stored[0]) == 1, stored
    assert math.copysign(1, json.loads(detail)["willingness_to_pay"]) == 1, detail       # the audit row too


def test_empty_database_url_in_the_environment(tmp_path):
    out = run(tmp_path, "accounts", "list", env={"ROUTERONE_DATABASE_URL": ""})
    _one_line_exit_2(out, "database_url", "sqlite://")


@pytest.fixture
def bad_files(tmp_path) -> dict[str, str]:
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "garbage.npz").write_text("garbage\n")
    (tmp_path / "priors_not_tables.toml").write_text("model = 5\n")
    (tmp_path / "priors_bad_score.toml").write_text('[model."x"]\nscore = "high"\nsource = "me"\n')
    (tmp_path / "priors_not_toml.toml").write_text("[model\n")
    (tmp_path / "priors_huge_score.toml").write_text('[model."x"]\nscore = 1e308\nsource = "me"\n')   # was accepted
    (tmp_path / "priors_deep.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")   # was a RecursionError traceback
    return {name: str(tmp_path / name) for name in
            ("missing", "dir", "fifo", "garbage.npz", "priors_not_tables.toml", "priors_bad_score.toml",
             "priors_not_toml.toml", "priors_deep.toml", "priors_huge_score.toml")}


ROUTER_FILE_CASES = [
    ("ROUTERONE_ROUTER_MODEL", "missing", "No such file"),
    ("ROUTERONE_ROUTER_MODEL", "dir", "not a regular file"),
    ("ROUTERONE_ROUTER_MODEL", "fifo", "not a regular file"),
    ("ROUTERONE_ROUTER_MODEL", "garbage.npz", "not an .npz archive"),
    ("ROUTERONE_MODEL_PRIORS", "missing", "No such file"),
    ("ROUTERONE_MODEL_PRIORS", "fifo", "not a regular file"),
    ("ROUTERONE_MODEL_PRIORS", "priors_not_tables.toml", "'model' must be tables"),
    ("ROUTERONE_MODEL_PRIORS", "priors_bad_score.toml", "model.x needs a numeric 'score'"),
    ("ROUTERONE_MODEL_PRIORS", "priors_not_toml.toml", "not valid TOML"),
    ("ROUTERONE_MODEL_PRIORS", "priors_huge_score.toml", "model.x score 1e+308 is outside 0 < score <= 5000"),
    ("ROUTERONE_MODEL_PRIORS", "priors_deep.toml", "not valid TOML (nested too deep)"),
]


@pytest.mark.parametrize("var, name, why", ROUTER_FILE_CASES, ids=[f"{c[0]}-{c[1]}" for c in ROUTER_FILE_CASES])
def test_router_files_are_checked_before_serve_listens(tmp_path, bad_files, var, name, why):
    with socket.socket() as s:           # a free port: without the check, serve listened on it
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    out = run(tmp_path, "serve", "--port", port, *_db(tmp_path), env={var: bad_files[name]})
    line = _one_line_exit_2(out, var, repr(bad_files[name]), why)
    assert "listening" not in out.stdout, (out.stdout, line)


def test_models_lists_with_a_warning_naming_a_broken_router_file(tmp_path, bad_files):
    out = run(tmp_path, "models", *_db(tmp_path), env={"ROUTERONE_ROUTER_MODEL": bad_files["fifo"]})
    assert out.returncode == 0 and "demo-small" in out.stdout, out.stderr
    assert "ROUTERONE_ROUTER_MODEL" in out.stderr and bad_files["fifo"] in out.stderr
    assert "Traceback" not in out.stderr


def test_eval_routing_router_that_is_not_an_artefact(tmp_path, bad_files):
    """numpy's word for a text file was "This file contains pickled (object) data ... load it unsafely"."""
    (tmp_path / "scores.csv").write_text("prompt,m1,m2\nhello,1,0\nworld,0,1\n")
    out = run(tmp_path, "eval-routing", str(tmp_path / "scores.csv"), "--router", bad_files["garbage.npz"],
              "--out", str(tmp_path / "ev"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    said = out.stdout + out.stderr
    assert "not an .npz archive" in said and "pickle" not in said, said


TWICE_CASES = [
    ("yaml provider twice", "r1.yaml", "providers:\n  gpubox:\n    base_url: http://a:8000/v1\n"
     "  gpubox:\n    base_url: http://b:11434/v1\n", "'gpubox' is given twice (line 4)"),
    ("yaml setting twice", "r1.yaml", "port: 8080\ndemo: 'off'\nport: 9090\n", "'port' is given twice (line 3)"),
    ("json catalog key twice", "cat.json", '{"aliases": {"a": "gpt-4o", "a": "gpt-4o-mini"}}', "'a' is given twice"),
]


@pytest.mark.parametrize("case, name, text, culprit", TWICE_CASES, ids=[c[0] for c in TWICE_CASES])
def test_a_key_given_twice_is_an_error_not_the_last_one(tmp_path, case, name, text, culprit):
    """PyYAML and json kept the last of two equal keys silently (a second `gpubox:` replaced the
    first box; TOML already refused it)."""
    (tmp_path / name).write_text(text)
    config = tmp_path / name
    if name.endswith(".json"):
        config = tmp_path / "r1.toml"
        config.write_text(f'catalog_path = "{tmp_path / name}"\n')
    _one_line_exit_2(run(tmp_path, "models", "--config", str(config), *_db(tmp_path)), culprit, name)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    (tmp_path / "r1.yaml").write_text("providers:\n  box: &box\n    base_url: http://127.0.0.1:9/v1\n"
                                      "    discover: false\n  box2:\n    <<: *box\n    base_url: http://127.0.0.1:10/v1\n")
    out = run(tmp_path, "models", "--config", str(tmp_path / "r1.yaml"), *_db(tmp_path))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("env, args, culprits", [
    ({"ROUTERONE_LIMITER": "redis"}, ["serve"], ["limiter", "needs redis_url", "ROUTERONE_REDIS_URL"]),
    ({"ROUTERONE_LIMITER": "redis"}, ["accounts", "list"], ["limiter", "needs redis_url"]),
    ({"ROUTERONE_LIMITER": "memory"}, ["serve", "--workers", "2"], ["--workers 2", '"memory"', '"auto"']),
], ids=["redis-limiter-serve", "redis-limiter-accounts", "memory-limiter-workers"])
def test_settings_that_cannot_go_together(tmp_path, env, args, culprits):
    """limiter = "redis" without redis_url was a traceback from serve (exit 1); the workers refusal
    was three lines."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    extra = ["--port", port] if args[0] == "serve" else []
    out = run(tmp_path, *args, *extra, *_db(tmp_path), env=env)
    _one_line_exit_2(out, *culprits)
    assert "listening" not in out.stdout and "Admin API key" not in out.stdout


@pytest.mark.parametrize("config, said", [
    ("port = 18123\n", "sign in at /console/ on the address `routerone serve` listens on (with this "
                        "configuration http://127.0.0.1:18123/console/, unless serve was started with --host "
                        "or --port)"),
    ('host = "::1"\nport = 8081\n', "sign in at /console/ on the address `routerone serve` listens on (with this "
                                    "configuration http://[::1]:8081/console/, unless"),
    ("console = false\n", "the console is off"),
])
def test_console_user_create_says_where_to_sign_in(tmp_path, config, said):
    """It printed "sign in at http://<host>:<port>/console/" whatever the configuration said."""
    (tmp_path / "r1.toml").write_text(config)
    out = run(tmp_path, "console-user", "create", "--email", "ops@example.com", "--operator",
              "--config", str(tmp_path / "r1.toml"), *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith(said), out.stdout


SCORES = "prompt,m1,m2\nhello,1,0\nworld,0,1\n"


@pytest.mark.parametrize("args, culprits", [
    (["eval-routing", "FIFO", "--router", "shipped"], ["CSV", "is not a file"]),
    (["eval-routing", "CSV", "--router", "shipped", "--prices", "FIFO"], ["--prices", "is not a file"]),
    (["eval-routing", "CSV", "CSV", "--extra-train", "FIFO"], ["--extra-train", "is not a file"]),
    (["train-router", "--data", "FIFO", "--out", "OUT/r.npz"], ["--data", "is not a file or directory"]),
    (["eval-routing", "MISSING", "--router", "shipped"], ["CSV", "No such file"]),
], ids=["eval-csv-fifo", "eval-prices-fifo", "eval-extra-train-fifo", "train-data-fifo", "eval-csv-missing"])
def test_learned_router_commands_refuse_a_fifo_input(tmp_path, args, culprits):
    """A FIFO as a CSV, prices or data path made eval-routing / train-router wait for a writer for ever."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "s.csv").write_text(SCORES)
    where = {"FIFO": str(tmp_path / "fifo"), "CSV": str(tmp_path / "s.csv"), "OUT": str(tmp_path),
             "MISSING": str(tmp_path / "missing.csv")}
    args = [where.get(a, a.replace("OUT", str(tmp_path))) for a in args]
    if args[0] == "eval-routing":
        args += ["--out", str(tmp_path / "ev")]
    try:
        out = run(tmp_path, *args)
    except subprocess.TimeoutExpired:
        pytest.fail("waited for a writer on the FIFO")
    _one_line_exit_2(out, *culprits)


def test_train_router_out_is_the_file_it_writes(tmp_path):
    """numpy's savez adds ".npz": `--out my_router` wrote my_router.npz, then failed looking for
    my_router (exit 2 after the work); `--out DIR` wrote DIR.npz and said to serve ROUTERONE_ROUTER_MODEL=DIR."""
    (tmp_path / "s.csv").write_text(SCORES)
    out = run(tmp_path, "train-router", "--data", str(tmp_path / "s.csv"), "--out", str(tmp_path / "my_router"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "my_router.npz").is_file()
    assert out.stdout.strip().splitlines()[-1] == \
        f"use it with: ROUTERONE_ROUTER_MODEL={tmp_path / 'my_router.npz'} routerone serve"
    (tmp_path / "dir").mkdir()
    out = run(tmp_path, "train-router", "--data", str(tmp_path / "s.csv"), "--out", str(tmp_path / "dir"))
    _one_line_exit_2(out, "--out", "is a directory", "router.npz")
    assert not (tmp_path / "dir.npz").exists()


@pytest.mark.parametrize("config, warning", [
    ('[providers.openai]\nbase_url = "http://127.0.0.1:9/v1"\n',
     "providers.openai: off: it needs an API key (api_key = ..., or OPENAI_API_KEY in the environment)"),
    ('[providers.box]\nbase_url = "http://127.0.0.1:9/v1"\nprotocol = "anthropic"\n',
     "providers.box: serves no model (no model discovery for protocol anthropic)"),
    ('[providers.box]\nbase_url = "http://127.0.0.1:9/v1"\ndiscover = false\n',
     "providers.box: serves no model (discover = false)"),
], ids=["known-vendor-pointed-at-a-box-without-a-key", "anthropic-protocol-without-models", "discovery-off"])
def test_a_provider_table_that_serves_nothing_is_said(tmp_path, config, warning):
    """Each of these served nothing without a word: with no other provider the demo answered instead
    (pointing [providers.openai] at one's own box is a common first try)."""
    (tmp_path / "r1.toml").write_text(config)
    out = run(tmp_path, "models", "--config", str(tmp_path / "r1.toml"), *_db(tmp_path))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert f"routerone: warning: {warning}" in out.stderr.splitlines()[0], out.stderr


def test_a_provider_that_serves_its_named_models_has_no_warning(tmp_path):
    (tmp_path / "r1.toml").write_text('[providers.box]\nbase_url = "http://127.0.0.1:9/v1"\ndiscover = false\n'
                                      'models = ["my-model"]\n[providers.openai]\nenabled = false\n')
    out = run(tmp_path, "models", "--config", str(tmp_path / "r1.toml"), *_db(tmp_path))
    assert out.returncode == 0 and out.stderr == "" and "my-model" in out.stdout, out.stderr


@pytest.mark.parametrize("name, text, env, expect", [
    ("r1.yaml", "demo: off\n", {}, ("ok", "model  provider")),      # YAML 1.1 reads `off` as false
    ("r1.yaml", "demo: on\n", {}, ("ok", "demo-small")),
    ("r1.yaml", "log_level: DEBUG\n", {}, ("ok", "demo-small")),
    ("r1.toml", 'routing_strategy = "Cost"\n', {}, ("ok", "demo-small")),
    ("r1.toml", "", {"ROUTERONE_LOG_LEVEL": "WARNING"}, ("ok", "demo-small")),
    ("r1.yaml", "routing_strategy: yes\n", {}, ("error", "routing_strategy: got the boolean true")),
    ("r1.toml", "limiter = false\n", {}, ("error", "limiter: got the boolean false")),
], ids=["yaml-demo-off", "yaml-demo-on", "yaml-log-level-upper", "toml-strategy-capital", "env-log-level-upper",
        "yaml-strategy-yes", "toml-limiter-false"])
def test_choice_settings_as_operators_write_them(tmp_path, name, text, env, expect):
    """`demo: off` in YAML was "demo: 'False' is not one of auto, off, on"; DEBUG and "Cost" were refused."""
    (tmp_path / name).write_text(text)
    out = run(tmp_path, "models", "--config", str(tmp_path / name), *_db(tmp_path), env=env)
    kind, said = expect
    if kind == "ok":
        assert out.returncode == 0 and said in out.stdout, out.stderr
    else:
        _one_line_exit_2(out, said, "quoted string")


def test_a_reader_that_leaves_early_is_not_a_database_error(tmp_path):
    """`routerone models | head -1` ended with "routerone: cannot reach SQLite file ...: Broken pipe"
    (exit 2): the pipe's EPIPE was taken for the database's."""
    from test_cli_errors import SRC
    r, w = os.pipe()
    os.close(r)                       # the reader is gone before the first line
    try:
        out = subprocess.run([sys.executable, "-m", "routerone", "models", *_db(tmp_path)], stdout=w,
                             stderr=subprocess.PIPE, text=True, timeout=60, cwd=tmp_path,
                             env={**{k: v for k, v in os.environ.items() if not k.startswith("ROUTERONE_")},
                                  "PYTHONPATH": SRC})
    finally:
        os.close(w)
    assert out.returncode == 1 and out.stderr == "", out.stderr

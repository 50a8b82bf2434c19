"""What a new operator following the README hit with the CLI (session 16): `keys update` could not
change a key's rate limits, a model of a configured box was refused without saying that the CLI had
read no configuration, an unknown flag pointed at the top-level help, and several subcommands and
flags had no help line."""
from __future__ import annotations

import argparse
import json
import sqlite3

from routerone.cli import build_parser
from test_cli_errors import run
from test_cli_operator_inputs import _db, _one_line_exit_2, account  # noqa: F401 - fixture


def test_keys_update_sets_and_clears_rate_limits(tmp_path, account):  # noqa: F811
    """PATCH /admin/keys/{id} takes rpm/tpm/concurrency; `keys update` had no flag for them."""
    out = run(tmp_path, "keys", "create", "--account", account, "--rpm", "60", "--tpm", "5000", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    key_id = out.stdout.split()[2]
    out = run(tmp_path, "keys", "update", key_id, "--rpm", "10", "--concurrency", "2", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("rpm=10 tpm=5000 concurrency=2"), out.stdout
    out = run(tmp_path, "keys", "update", key_id, "--tpm", "none", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT rpm, tpm, concurrency FROM api_keys").fetchall() == [(10, None, 2)]
        audit = c.execute("SELECT detail FROM audit_log WHERE action = 'key.update' ORDER BY id").fetchall()
    assert [json.loads(d) for d, in audit] == [{"rpm": 10, "concurrency": 2}, {"tpm": None}]
    _one_line_exit_2(run(tmp_path, "keys", "update", key_id, "--rpm", "0", *_db(tmp_path)), "--rpm", "'0'", "none")
    with sqlite3.connect(tmp_path / "r.db") as c:
        assert c.execute("SELECT rpm, tpm, concurrency FROM api_keys").fetchall() == [(10, None, 2)]


def test_a_model_unknown_without_config_says_to_give_the_config(tmp_path, account):  # noqa: F811
    """`keys create --models llama-3-8b` (a model of the operator's box, served by `serve --config
    router.toml`) said only that the gateway knows no such model: the CLI had read no configuration."""
    line = _one_line_exit_2(run(tmp_path, "keys", "create", "--account", account, "--models", "llama-3-8b,auto",
                                *_db(tmp_path)), "'llama-3-8b'", "--models")
    assert "--config" in line, line
    (tmp_path / "r.toml").write_text('demo = "on"\n')       # a configuration was read: no such hint
    line = _one_line_exit_2(run(tmp_path, "keys", "create", "--account", account, "--models", "llama-3-8b",
                                "--config", str(tmp_path / "r.toml"), *_db(tmp_path)), "'llama-3-8b'")
    assert "--config" not in line, line


def test_an_unknown_flag_points_at_its_subcommands_help(tmp_path):
    out = run(tmp_path, "keys", "update", "3", "--bogus", "1")
    line = _one_line_exit_2(out, "--bogus")
    assert line.endswith("(see routerone keys update --help)"), line


def _parsers(p: argparse.ArgumentParser):
    yield p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest for a in action._choices_actions}
            missing = sorted(set(action.choices) - helped)
            assert not missing, f"{p.prog}: subcommands without a help line: {missing}"
            for child in action.choices.values():
                yield from _parsers(child)


def test_every_subcommand_and_argument_has_a_help_line():
    bare = []
    for p in _parsers(build_parser()):
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) or a.help == argparse.SUPPRESS:
                continue
            if not a.help:
                bare.append(f"{p.prog} {'/'.join(a.option_strings) or a.dest}")
            if a.metavar and "MICROS" in str(a.metavar) and any("usd" in o for o in a.option_strings):
                bare.append(f"{p.prog} {a.option_strings[0]}: metavar {a.metavar} for a USD amount")
    assert not bare, bare


def test_keys_list_shows_each_keys_routing_after_the_other_columns(tmp_path, account):  # noqa: F811
    """`keys create/update --strategy --willingness-to-pay` set a key's own `auto` routing, but `keys
    list` did not show it: an operator could not see which keys route differently. Now the last two
    columns (the ones before stay where scripts read them)."""
    run(tmp_path, "keys", "create", "--account", account, *_db(tmp_path))
    out = run(tmp_path, "keys", "create", "--account", account, "--strategy", "cost", *_db(tmp_path))
    run(tmp_path, "keys", "update", out.stdout.split()[2], "--willingness-to-pay", "0.3", *_db(tmp_path))
    out = run(tmp_path, "keys", "list", *_db(tmp_path))
    assert out.returncode == 0, out.stderr
    plain, routed = (line.split() for line in out.stdout.strip().splitlines())
    assert plain[7:] == ["models=any", "rpm=-", "tpm=-", "concurrency=-", "cap=none", "expires=never",
                         "strategy=default", "willingness_to_pay=default"], plain
    assert routed[-2:] == ["strategy=cost", "willingness_to_pay=0.3"], routed

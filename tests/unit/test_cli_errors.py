"""Every mistake an operator can make from the CLI, the config, the catalog or the environment is
one line on stderr naming the culprit, exit code 2, and never a traceback (table-driven, each case
run as a real `routerone` process)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
PG_URL = os.environ.get("ROUTERONE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def run(tmp: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    e.update({"PYTHONPATH": SRC, **(env or {})})
    return subprocess.run([sys.executable, "-m", "routerone", *args], capture_output=True, text=True, env=e,
                          timeout=60, cwd=tmp)


def _pg_up() -> bool:
    p = urlsplit(PG_URL)
    try:
        socket.create_connection((p.hostname, p.port or 5432), timeout=1).close()
        return True
    except OSError:
        return False


PRICE_LESS = '[[model]]\nid = "my-model"\nprovider = "openai"\ncontext_window = 1000\nmax_output = 100\nquality = 0.5\n'
PRICED = PRICE_LESS + 'input_usd_per_mtok = "1"\noutput_usd_per_mtok = "1"\n'
DEPLOYMENT = '[[deployment]]\nmodel = "my-model"\nprovider = "openai"\n'
# (case id, config file text or None, catalog file text or None, CLI args, what the message must name)
CASES = [
    ("unknown provider table", '[providers.gpubox]\napi_key = "x"\n', None, ["models"], "providers.gpubox.base_url"),
    ("unknown provider setting", '[providers.openai]\nbase_ur = "http://x/v1"\n', None, ["models"], "providers.openai.base_ur"),
    ("unknown protocol", '[providers.box]\nbase_url = "http://x/v1"\nprotocol = "grpc"\n', None, ["models"], "grpc"),
    ("missing catalog_path", 'catalog_path = "/nonexistent/cat.toml"\n', None, ["models"], "/nonexistent/cat.toml"),
    ("invalid catalog_path", 'catalog_path = "CATALOG"\n', "[[model]\nid=", ["models"], "cat.toml"),
    ("catalog typo", 'catalog_path = "CATALOG"\n', PRICE_LESS.replace("quality", "qualty") + 'input_usd_per_mtok = "1"\n',
     ["models"], "qualty"),
    ("model without a price", 'catalog_path = "CATALOG"\n', PRICE_LESS, ["models"], "my-model"),
    ("catalog wrong type", 'catalog_path = "CATALOG"\n', PRICE_LESS.replace("1000", '"big"'), ["models"], "context_window"),
    ("credit not a number", None, None, ["accounts", "credit", "2", "abc"], "abc"),
    ("sub-micro amount", None, None, ["accounts", "create", "x", "--balance-usd", "0.0000001"], "0.0000001"),
    ("host does not resolve", None, None, ["--database-url", "postgresql://router@db.invalid/routerone",
                                            "accounts", "list"], "db.invalid"),
    ("sqlite path cannot be opened", None, None, ["accounts", "list", "--database-url",
                                                  "sqlite:///no/such/dir/r.db"], "no/such/dir/r.db"),
    ("port out of range", "port = 99999\n", None, ["serve"], "port"),
    ("port via flag", None, None, ["serve", "--port", "70000"], "70000"),
    # blamed the SQLite file ("cannot reach SQLite file ...: host None does not resolve")
    ("listen host does not resolve", None, None, ["serve", "--host", "no such host"], "host: 'no such host'"),
    ("willingness_to_pay", "willingness_to_pay = 7\n", None, ["models"], "willingness_to_pay"),
    ("unknown strategy", 'routing_strategy = "random"\n', None, ["models"], "random"),
    ("bad provider URL", '[providers.box]\nbase_url = "gpu-box:8000"\n', None, ["models"], "gpu-box:8000"),
    ("bad database URL", 'database_url = "mysql://db/x"\n', None, ["models"], "mysql://db/x"),
    ("bad redis URL", 'redis_url = "localhost:6379"\n', None, ["models"], "redis_url"),
    ("bad provider price", '[providers.box]\nbase_url = "http://x/v1"\ninput_usd_per_mtok = "cheap"\n', None,
     ["models"], "cheap"),
    ("config file not TOML", "port = \n", None, ["models"], "r1.toml"),
    ("usage group", None, None, ["usage", "--by", "week"], "week"),
    ("usage date", None, None, ["usage", "--since", "yesterday"], "yesterday"),
    ("unknown subcommand", None, None, ["modles"], "modles"),
    # ids beyond int64 reached the database (OverflowError, a traceback)
    ("credit an id too large", None, None, ["accounts", "credit", "99999999999999999999999", "5"], "99999999999999999999999"),
    ("debit a negative id", None, None, ["accounts", "debit", "-3", "5"], "-3"),
    ("revoke an id too large", None, None, ["keys", "revoke", "99999999999999999999999"], "99999999999999999999999"),
    ("keys of an account too large", None, None, ["keys", "list", "--account", "99999999999999999999999"], "99999999999999999999999"),
    ("key for an account too large", None, None, ["keys", "create", "--account", "99999999999999999999999"], "99999999999999999999999"),
    ("usage of an account too large", None, None, ["usage", "--account", "99999999999999999999999"], "99999999999999999999999"),
    ("usage of a key too large", None, None, ["usage", "--key", "-99999999999999999999999"], "-99999999999999999999999"),
    ("console user of an account too large", None, None,
     ["console-user", "create", "--email", "a@example.com", "--account", "99999999999999999999999"], "99999999999999999999999"),
    ("audit limit", None, None, ["audit", "--limit", "-5"], "-5"),
    ("revoke an id in Arabic-Indic digits", None, None, ["keys", "revoke", "\u0661"], "\u0661"),
    ("credit an id with an underscore", None, None, ["accounts", "credit", "1_0", "5"], "1_0"),
    # tracebacks: a "$env" that is not a name, a SQLite URL without a path
    ("secret $env not a name", '[providers.box]\nbase_url = "http://x/v1"\napi_key = { "$env" = 5 }\n', None,
     ["models"], "providers.box.api_key"),
    ("secret $file not a path", '[providers.box]\nbase_url = "http://x/v1"\napi_key = { "$file" = [] }\n', None,
     ["models"], "providers.box.api_key"),
    ("sqlite URL without a path", None, None, ["accounts", "list", "--database-url", "sqlite:///"], "sqlite:///"),
    ("sqlite URL with two slashes", None, None, ["accounts", "list", "--database-url", "sqlite://r.db"], "sqlite://r.db"),
    # 100,000 workers were spawned
    ("too many workers", None, None, ["serve", "--workers", "100000"], "workers"),
    # a header value with a line break: a traceback from the HTTP client at the first upstream call
    ("header with a line break", '[providers.box]\nbase_url = "http://x/v1"\nheaders = { X-Team = "a\\nEvil: 1" }\n',
     None, ["models"], "providers.box.headers.X-Team"),
    ("header name with a space", '[providers.box]\nbase_url = "http://x/v1"\nheaders = { "X Team" = "a" }\n',
     None, ["models"], "X Team"),
    # "inf" passed the USD parser's checks and int() of it raised OverflowError: a traceback
    ("credit inf", None, None, ["accounts", "credit", "2", "inf"], "'inf'"),
    ("balance Infinity", None, None, ["accounts", "create", "x", "--balance-usd", "Infinity"], "Infinity"),
    # Decimal reads other scripts' digits and underscores: "١٠٠" credited 100 USD, "1_0" 10 (the admin API refuses both)
    ("credit in Arabic-Indic digits", None, None, ["accounts", "credit", "2", "\u0661\u0660\u0660"], "\u0661\u0660\u0660"),
    # beyond the store's bounds: exit 1 and a message about 'amount_micros', a field the operator never typed
    ("credit beyond the bound", None, None, ["accounts", "credit", "2", "99999999999999999999"], "99999999999999999999"),
    ("balance beyond the bound", None, None, ["accounts", "create", "x", "--balance-usd", "1000000001"], "1000000001"),
    ("spend cap with an underscore", None, None, ["keys", "create", "--account", "2", "--spend-cap-usd", "1_0"], "1_0"),
    ("provider price inf", '[providers.box]\nbase_url = "http://x/v1"\ninput_usd_per_mtok = "inf"\n', None,
     ["models"], "providers.box.input_usd_per_mtok"),
    # a price too large for a hold to be stored: every request a 500 (and a traceback in `models`)
    ("provider price too large", '[providers.box]\nbase_url = "http://x/v1"\noutput_usd_per_mtok = "1e30"\n', None,
     ["models"], "providers.box.output_usd_per_mtok"),
    ("provider price beyond a float", '[providers.box]\nbase_url = "http://x/v1"\ninput_usd_per_mtok = "1e400"\n',
     None, ["models"], "1e400"),
    # Decimal * 10**6 raised decimal.Overflow: a traceback
    ("provider price beyond Decimal's range", '[providers.box]\nbase_url = "http://x/v1"\ninput_usd_per_mtok = "1e999999999"\n',
     None, ["models"], "providers.box.input_usd_per_mtok"),
    # more than 28 significant digits were rounded by the default Decimal context: $1.000000 credited
    ("balance finer than a micro in 29 digits", None, None,
     ["accounts", "create", "x", "--balance-usd", "1.0000000000000000000000000001"], "1.0000000000000000000000000001"),
    ("provider price finer than a micro in 29 digits",
     '[providers.box]\nbase_url = "http://x/v1"\ninput_usd_per_mtok = "1.0000000000000000000000000001"\n', None,
     ["models"], "providers.box.input_usd_per_mtok"),
    # an argument that is not UTF-8 (b"\xff" in argv is "\udcff" in Python) was a UnicodeEncodeError
    # traceback when it reached the database or the resolver (exit 1)
    *[(f"{flag} not UTF-8", None, None, [*cmd, "x\udcff"], flag) for flag, cmd in (
        ("name", ["accounts", "create"]), ("--note", ["accounts", "credit", "1", "1", "--note"]),
        ("--name", ["keys", "create", "--account", "1", "--name"]),
        ("--models", ["keys", "create", "--account", "1", "--models"]), ("--model", ["usage", "--model"]),
        ("--target", ["audit", "--target"]), ("--actor", ["audit", "--actor"]), ("--action", ["audit", "--action"]),
        ("--email", ["console-user", "create", "--email"]), ("--host", ["serve", "--host"]))],
    # [[deployment]] numbers were not checked: a weight that is not a whole number was a traceback
    # (int("abc"), int(nan), int(inf)); an rpm or tpm of "abc" or -1 (also on a [[model]] row) made
    # every request to the model a 500
    *[(f"deployment {k} {v}", 'catalog_path = "CATALOG"\n', PRICED + DEPLOYMENT + f"{k} = {v}\n", ["models"],
       f"deployment[0].{k}") for k, v in (("weight", '"abc"'), ("weight", "nan"), ("weight", "inf"), ("weight", "1.5"),
                                          ("weight", "[1]"), ("rpm", '"abc"'), ("rpm", "-1"), ("tpm", '"x"'),
                                          ("tpm", "0"))],
    ("model rpm -1", 'catalog_path = "CATALOG"\n', PRICED + "rpm = -1\n", ["models"], "model[my-model].rpm"),
    ("deployment upstream 5", 'catalog_path = "CATALOG"\n', PRICED + DEPLOYMENT + "upstream = 5\n", ["models"],
     "deployment[0].upstream"),
    # an alias to a number passed and made every request for it a 500 (TypeError); a fallback given as
    # one string was read as its letters ("m1" -> fallbacks "m" and "1")
    ("alias to a number", 'catalog_path = "CATALOG"\n', PRICED + "[aliases]\nx = 5\n", ["models"], "aliases.x"),
    ("fallbacks as a string", 'catalog_path = "CATALOG"\n', PRICED + '[fallbacks]\nmy-model = "gpt-4o"\n', ["models"],
     "fallbacks.my-model"),
    ("fallbacks with a number", 'catalog_path = "CATALOG"\n', PRICED + "[fallbacks]\nmy-model = [5]\n", ["models"],
     "fallbacks.my-model"),
    # a model id no key's allowlist can name (the admin API's model ids: no comma, space or NUL), or
    # "auto", which is the router itself; a NUL one also failed the usage write on PostgreSQL
    *[(f"model id {mid!r}", 'catalog_path = "CATALOG"\n', PRICED.replace('"my-model"', f'"{mid}"'), ["models"],
       "model[") for mid in ("a b", "a,b", "x\\u0000", "", "auto")],
    # a provider name is the prefix of its models' names (`box/m1`) and a usage row's provider: a
    # control character (PostgreSQL text cannot hold a NUL) or a space in it was accepted
    *[(f"provider name {name!r}", f'[providers."{name}"]\nbase_url = "http://x/v1"\n', None, ["models"], "providers.")
      for name in ("x\\u0000", "a\\tb", "a b")],
    # discovery every 1e-300 s: a GET /models to the provider as fast as the loop turns
    ("discovery interval too small", '[providers.box]\nbase_url = "http://x/v1"\ndiscovery_interval_s = 1e-300\n',
     None, ["models"], "providers.box.discovery_interval_s"),
    ("catalog price too large", 'catalog_path = "CATALOG"\n', PRICE_LESS + 'input_usd_per_mtok = "2000000"\n',
     ["models"], "input_usd_per_mtok"),
    # 1e9 retries of a failing request were accepted; so was a `prices` that names no genai-prices
    # provider (a typo, a number): the provider's models silently priced from nowhere (keyless: free)
    ("max_retries too large", "max_retries = 1000000000\n", None, ["models"], "max_retries: must be between 0 and 10"),
    ("provider prices unknown", '[providers.box]\nbase_url = "http://x/v1"\nprices = "nope"\n', None, ["models"],
     "providers.box.prices: 'nope'"),
    ("provider prices a number", '[providers.box]\nbase_url = "http://x/v1"\nprices = 5\n', None, ["models"],
     "providers.box.prices: 5"),
    ("provider prices a table", '[providers.box]\nbase_url = "http://x/v1"\nprices = { a = 1 }\n', None, ["models"],
     "providers.box.prices"),
    # [providers.demo] pointing at one's own box served the canned demo instead, silently
    ("provider named demo", '[providers.demo]\nbase_url = "http://x/v1"\n', None, ["models"], "providers.demo"),
    # forwarded headers are honoured from these peers only: a typo must not fall back to trusting any
    ("trusted_proxies bad CIDR", 'trusted_proxies = ["127.0.0.1", "10.0.0.0/33"]\n', None, ["serve"],
     "trusted_proxies: '10.0.0.0/33'"),
    ("trusted_proxies a host name", 'trusted_proxies = ["proxy.internal"]\n', None, ["models"],
     "trusted_proxies: 'proxy.internal'"),
]


@pytest.mark.parametrize("case, config, catalog, args, culprit", CASES, ids=[c[0] for c in CASES])
def test_operator_mistakes_are_one_line_and_exit_2(tmp_path, case, config, catalog, args, culprit):
    extra: list[str] = []
    if catalog is not None:
        (tmp_path / "cat.toml").write_text(catalog)
    if config is not None:
        (tmp_path / "r1.toml").write_text(config.replace("CATALOG", str(tmp_path / "cat.toml")))
        extra = ["--config", str(tmp_path / "r1.toml")]      # after the subcommand: accepted anywhere
    if not any(a.startswith("--database-url") for a in args) and "database_url" not in (config or ""):
        extra += ["--database-url", f"sqlite:///{tmp_path}/r.db"]
    out = run(tmp_path, *args, *extra)
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert culprit in lines[0], lines[0]


@pytest.mark.skipif(not _pg_up(), reason="PostgreSQL not reachable")
def test_database_that_does_not_exist(tmp_path):
    url = PG_URL.rsplit("/", 1)[0] + "/routerone_no_such_db"
    out = run(tmp_path, "accounts", "list", "--database-url", url)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "routerone_no_such_db" in out.stderr and "does not exist" in out.stderr


def test_port_already_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = run(tmp_path, "serve", "--port", str(port), "--database-url", f"sqlite:///{tmp_path}/r.db")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == \
        f"routerone: cannot listen on 127.0.0.1:{port}: address already in use (set port or --port)"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_already_in_use_with_workers(tmp_path, workers):
    """With --workers 2 each worker printed its own traceback (exit 1), after "listening on"."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = run(tmp_path, "serve", "--port", str(port), "--workers", workers,
                  "--database-url", f"sqlite:///{tmp_path}/r.db")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines() == \
        [f"routerone: cannot listen on 127.0.0.1:{port}: address already in use (set port or --port)"]
    assert "listening" not in out.stdout


@pytest.mark.parametrize("where", ["config", "catalog", "secret"])
def test_files_that_are_not_utf8_are_one_line(tmp_path, where):
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfeport = 1\n")
    config = {"config": None, "catalog": f'catalog_path = "{tmp_path}/bin.toml"\n',
              "secret": f'[providers.box]\nbase_url = "http://x/v1"\napi_key = {{ "$file" = "{tmp_path}/bin.toml" }}\n'}
    path = tmp_path / "bin.toml"
    if config[where]:
        path = tmp_path / "r1.toml"
        path.write_text(config[where])
    out = run(tmp_path, "models", "--config", str(path), "--database-url", f"sqlite:///{tmp_path}/r.db")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    [line] = out.stderr.strip().splitlines()
    assert "UTF-8" in line and "bin.toml" in line, line


def _special_file(tmp: Path, kind: str) -> str:
    if kind == "fifo":
        os.mkfifo(tmp / "fifo")
        return str(tmp / "fifo")
    if kind == "directory":
        (tmp / "dir").mkdir()
        return str(tmp / "dir")
    if kind == "too large":                  # sparse: 65 MiB that take no disk
        with open(tmp / "big.toml", "wb") as f:
            f.truncate(65 << 20)
        return str(tmp / "big.toml")
    return "/dev/zero"


@pytest.mark.parametrize("kind, says", [("/dev/zero", "not a regular file (a character device)"),
                                        ("fifo", "not a regular file (a FIFO)"),
                                        ("directory", "not a regular file (a directory)"),
                                        ("too large", "larger than 64 MiB")])
@pytest.mark.parametrize("where", ["config", "catalog", "secret"])
def test_a_file_without_end_or_not_a_file_is_one_line(tmp_path, where, kind, says):
    """/dev/zero as the config, catalog or secret file was read until memory ran out (a hang, then a
    MemoryError traceback); a FIFO blocked start-up for ever (open() waits for a writer). A file that
    is not a regular one is refused before it is read, and a regular one is read up to a bound."""
    path = _special_file(tmp_path, kind)
    config = {"config": None, "catalog": f'catalog_path = "{path}"\n',
              "secret": f'[providers.box]\nbase_url = "http://x/v1"\napi_key = {{ "$file" = "{path}" }}\n'}
    if config[where]:
        path = str(tmp_path / "r1.toml")
        Path(path).write_text(config[where])
    e = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    out = subprocess.run([sys.executable, "-m", "routerone", "models", "--config", path,
                          "--database-url", f"sqlite:///{tmp_path}/r.db"], capture_output=True, text=True,
                         env={**e, "PYTHONPATH": SRC}, timeout=30, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    [line] = out.stderr.strip().splitlines()
    assert says in line and (kind if kind.startswith("/") else "") in line, line


def test_a_password_in_a_bad_url_is_not_printed(tmp_path):
    for url in ("postgresql://router:s3cret-pw@db:999999/r1", "redis://:s3cret-pw@cache:99999999/0"):
        key = "database_url" if url.startswith("postgresql") else "redis_url"
        (tmp_path / "r1.toml").write_text(f'{key} = "{url}"\n')
        out = run(tmp_path, "models", "--config", str(tmp_path / "r1.toml"))
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert "s3cret-pw" not in out.stderr + out.stdout and f"{key}:" in out.stderr and "***" in out.stderr


@pytest.mark.parametrize("config, key", [
    ('admin_key = ["s3cret-value"]\n', "admin_key"),
    ('[providers.box]\nbase_url = "http://x/v1"\napi_key = ["s3cret-value"]\n', "providers.box.api_key"),
    ('[providers.box]\nbase_url = "http://x/v1"\napi_key = { "$env" = "X", "value" = "s3cret-value" }\n',
     "providers.box.api_key"),
    ('[providers.box]\nbase_url = "http://x/v1"\nheaders = { "x-api-key" = "s3cret-value", "x-n" = 5 }\n',
     "providers.box.headers"),
    ('database_url = ["postgresql://router:s3cret-value@db/r1"]\n', "database_url"),
], ids=["admin_key", "api_key", "api_key-table", "headers", "database_url"])
def test_a_secret_of_the_wrong_type_is_not_printed(tmp_path, config, key):
    """A secret given as a list or a table (a typo in TOML) was printed whole in the error line."""
    (tmp_path / "r1.toml").write_text(config)
    out = run(tmp_path, "models", "--config", str(tmp_path / "r1.toml"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "s3cret-value" not in out.stderr + out.stdout, out.stderr
    [line] = out.stderr.strip().splitlines()
    assert f"{key}: expected" in line, line


def test_debug_shows_the_traceback(tmp_path):
    out = run(tmp_path, "accounts", "list", "--debug", "--database-url", "sqlite:///no/such/dir/r.db")
    assert out.returncode == 2 and "Traceback" in out.stderr and "no/such/dir/r.db" in out.stderr


def test_disabled_provider_is_off_even_with_a_key_in_the_environment(tmp_path):
    (tmp_path / "r1.toml").write_text("[providers.openai]\nenabled = false\n")
    db = f"sqlite:///{tmp_path}/r.db"
    on = run(tmp_path, "models", "--database-url", db, env={"OPENAI_API_KEY": "sk-x"})
    assert on.returncode == 0 and "gpt-4o" in on.stdout
    off = run(tmp_path, "models", "--config", str(tmp_path / "r1.toml"), "--database-url", db,
              env={"OPENAI_API_KEY": "sk-x"})
    assert off.returncode == 0, off.stderr
    assert "gpt-4o" not in off.stdout          # (with nothing else configured, the demo is what is left)


def test_gemini_base_url_without_version_is_fixed_with_a_warning(tmp_path):
    (tmp_path / "r1.toml").write_text('[providers.gemini]\napi_key = "g"\n'
                                      'base_url = "https://generativelanguage.googleapis.com"\n')
    out = run(tmp_path, "models", "--config", str(tmp_path / "r1.toml"), "--database-url", f"sqlite:///{tmp_path}/r.db")
    assert out.returncode == 0, out.stderr
    assert "providers.gemini.base_url" in out.stderr and "https://generativelanguage.googleapis.com/v1beta" in out.stderr
    assert "gemini-2.5-flash" in out.stdout


# eval-routing / train-router inputs an operator supplies (their own labelled CSV, a prices file):
# (case id, file name, its text, the command's arguments with FILE for the file, what the message names)
GOOD_CSV = "prompt,m-a,m-b\nhello,1,0\nwhat is 2+2,1,1\n"
EVAL_INPUTS = [
    ("score inf", "s.csv", "prompt,m-a,m-b\nhello,1,0\nx,inf,1\n", ["eval-routing", "FILE", "--router", "shipped"],
     "column 'm-a', data row 2"),
    ("score inf, train", "s.csv", "prompt,m-a,m-b\nhello,1,0\nx,inf,1\n", ["train-router", "--data", "FILE"],
     "column 'm-a', data row 2"),
    ("negative prompt tokens", "s.csv", "prompt,m-a,m-b,prompt_tokens\nhello,1,0,-5\n",
     ["eval-routing", "FILE", "--router", "shipped"], "'prompt_tokens', data row 1: '-5'"),
    ("infinite output tokens", "s.csv", "prompt,m-a,m-b,m-a|output_tokens\nhello,1,0,inf\n",
     ["eval-routing", "FILE", "--router", "shipped"], "'m-a|output_tokens', data row 1: 'inf'"),
    ("fold not a number", "s.csv", "prompt,m-a,m-b,fold\nhello,1,0,abc\nx,1,1,1\n",
     ["eval-routing", "FILE", "FILE"], "'fold', data row 1: 'abc'"),
    ("fold a fraction", "s.csv", "prompt,m-a,m-b,fold\nhello,1,0,1.5\nx,1,1,1\n",
     ["eval-routing", "FILE", "FILE"], "'fold', data row 1: '1.5'"),
    ("CSV not UTF-8", "s.csv", b"\xff\xfe prompt\n", ["eval-routing", "FILE", "--router", "shipped"], "not UTF-8"),
    ("prices a list", "p.json", "[1, 2]", ["eval-routing", "GOOD", "--router", "shipped", "--prices", "FILE"],
     "expected an object"),
    ("price not a number", "p.json", '{"m-a": {"input_token_price_per_million": "x", '
     '"output_token_price_per_million": 1}}', ["eval-routing", "GOOD", "--router", "shipped", "--prices", "FILE"],
     "'m-a' needs"),
    ("price negative", "p.json", '{"m-a": {"input_token_price_per_million": -5, '
     '"output_token_price_per_million": 1}}', ["eval-routing", "GOOD", "--router", "shipped", "--prices", "FILE"],
     "'m-a': prices must be finite"),
    ("price beyond a float", "p.json", '{"m-a": {"input_token_price_per_million": 1e400, '
     '"output_token_price_per_million": 1}}', ["eval-routing", "GOOD", "--router", "shipped", "--prices", "FILE"],
     "'m-a': prices must be finite"),
    ("prices not JSON", "p.json", "{nope", ["eval-routing", "GOOD", "--router", "shipped", "--prices", "FILE"],
     "not a JSON prices file"),
]


@pytest.mark.parametrize("case, name, text, args, culprit", EVAL_INPUTS, ids=[c[0] for c in EVAL_INPUTS])
def test_routing_data_mistakes_are_one_line(tmp_path, case, name, text, args, culprit):
    f = tmp_path / name
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    (tmp_path / "good.csv").write_text(GOOD_CSV)
    argv = [str(f) if a == "FILE" else str(tmp_path / "good.csv") if a == "GOOD" else a for a in args]
    argv += ["--out", str(tmp_path / ("out.npz" if args[0] == "train-router" else "out")), "--bootstrap", "20"] \
        if args[0] == "eval-routing" else ["--out", str(tmp_path / "out.npz")]
    p = run(tmp_path, *argv)
    assert p.returncode != 0, p.stdout
    out = p.stdout + p.stderr
    assert "Traceback" not in out and culprit in out and name in out, out


@pytest.mark.parametrize("how", ["env", "config", "secret file"])
@pytest.mark.parametrize("weak", ["hunter2", "", "sk-ro-15-chars!"])
def test_a_weak_configured_admin_key_is_refused_at_start(tmp_path, how, weak):
    """admin_key = "admin" (4 characters) was registered as the admin key: the whole admin API behind
    a guessable secret. Shorter than 16 characters is one line naming admin_key (never the value), exit 2."""
    env: dict = {}
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()            # were it not refused, serve would stop at this port (not run for ever)
    args = ["serve", "--port", str(busy.getsockname()[1]), "--database-url", f"sqlite:///{tmp_path}/r.db"]
    if how == "env":
        env["ROUTERONE_ADMIN_KEY"] = weak
    elif how == "config":
        (tmp_path / "r1.toml").write_text(f'admin_key = "{weak}"\n')
        args += ["--config", str(tmp_path / "r1.toml")]
    else:
        (tmp_path / "admin.key").write_text(weak + "\n")
        (tmp_path / "r1.toml").write_text(f'admin_key = {{ "$file" = "{tmp_path}/admin.key" }}\n')
        args += ["--config", str(tmp_path / "r1.toml")]
    with busy:
        out = run(tmp_path, *args, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr, (out.returncode, out.stderr)
    [line] = out.stderr.strip().splitlines()
    assert "admin_key" in line and "16 characters" in line, line
    assert (not weak or weak not in line) and not out.stdout, (line, out.stdout)
    assert not (tmp_path / "r.db").exists()          # nothing registered


def test_an_admin_key_that_can_sign_in_is_accepted(tmp_path):
    out = run(tmp_path, "models", "--database-url", f"sqlite:///{tmp_path}/r.db",
              env={"ROUTERONE_ADMIN_KEY": "sk-ro-20-characters!"})
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("unusable", [
    "sk-ro-16-chars!!", "sk-ro-19-characters",          # API keys are 20 characters or more
    "my-admin-secret-0123456789", "0123456789abcdef0123456789abcdef",   # no `sk-`: `openssl rand -hex 16`
    "sk-" + "a" * 198,                                   # over 200
    "sk-ro-\u043a\u043b\u044e\u0447-0123456789abc",     # not ASCII: no HTTP client sends it
    "sk-ro-admin-0123456789\x01", "sk-ro-admin-0123456789 ",   # a control character; a trailing space
    "sk-ro-admin-\udcff-0123456789",                      # bytes that are not UTF-8 (a traceback)
], ids=["16", "19", "no-prefix", "hex", "201", "cyrillic", "control", "trailing-space", "not-utf8"])
def test_an_admin_key_that_could_never_sign_in_is_refused_at_start(tmp_path, unusable):
    """Session 13: `admin_key` was checked for length (16) only, but a bearer token is read as a key
    only when it starts with `sk-`, is 20 to 200 characters and ASCII (services/keys.looks_like_key):
    a configured `openssl rand -hex 24` or a 16-character key was registered ("the one set in the
    configuration is registered") and then every admin call was a 401; bytes that are not UTF-8 were
    a traceback. Now one line naming admin_key (never the value), exit 2, nothing registered."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    with busy:
        out = run(tmp_path, "serve", "--port", str(busy.getsockname()[1]), "--database-url",
                  f"sqlite:///{tmp_path}/r.db", env={"ROUTERONE_ADMIN_KEY": unusable})
    assert out.returncode == 2 and "Traceback" not in out.stderr, (out.returncode, out.stderr)
    [line] = out.stderr.strip().splitlines()
    assert "admin_key" in line and "sk-" in line and unusable.strip() not in line and not out.stdout, line
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("host", ["999.1.1.1", "192.0.2.1"])     # not an address; not this machine's
def test_a_host_that_cannot_be_listened_on_prints_no_admin_key(tmp_path, host):
    """The first start printed the generated admin key (and registered it), then failed to bind:
    a secret for a gateway that never ran. The address is tried first."""
    out = run(tmp_path, "serve", "--host", host, "--port", "8999", "--database-url", f"sqlite:///{tmp_path}/r.db")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "Admin API key" not in out.stdout and "sk-ro-" not in out.stdout + out.stderr, out.stdout
    [line] = out.stderr.strip().splitlines()
    assert host in line, line


def test_a_port_in_use_prints_no_admin_key(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = run(tmp_path, "serve", "--port", str(port), "--database-url", f"sqlite:///{tmp_path}/r.db")
    assert out.returncode == 2 and "Admin API key" not in out.stdout, out.stdout

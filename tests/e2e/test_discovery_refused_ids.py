"""Model discovery: ids in an upstream's `GET /models` that no client could send (over 256
characters, control or other unprintable characters, spaces, commas) are left out, as before, and
now said so: one warning per provider per refresh, naming how many and showing the first escaped
and clipped (never the provider's key, even if the id carries it). They were dropped silently: an
operator whose models never appeared had nothing to go on.

Over a real socket from a raw scripted upstream (raw_upstream.py); only the upstream is faked."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_discovery_compression import KEY, Box, model_list, provider, reply  # noqa: E402

from routerone.settings import Settings  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402

GOOD = ["llama-3-8b", "qwen2.5-7b"]
REFUSED = [f"leak-{KEY}\nINFO forged log line \x1b[31m" + "z" * 400,    # the first: escaped, clipped, no key
           "m" * 257, "bidi\u202eevil", "two words", "a,b"]


@pytest.fixture(scope="module")
def box():
    b = Box()
    yield b
    b.raw.stop()


def _warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "routerone.discovery" and r.levelno == logging.WARNING
            and "could send" in r.getMessage()]


def test_refused_ids_are_left_out_with_one_warning_per_refresh(box, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="routerone.discovery")
    box.serve(reply(model_list([GOOD[0], *REFUSED, GOOD[1], GOOD[0]]), None))   # a repeat is not refused
    box.requests.clear()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r1.db'}", demo="off", providers=provider(box))
    with Gateway(settings) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key=gw.new_key()[0], max_retries=0, timeout=30)
        assert {m.id for m in client.models.list()} == {"auto", *GOOD}
    assert len(box.requests) == 1
    [warning] = _warnings(caplog)
    msg = warning.getMessage()
    assert "provider box" in msg and " 5 model id(s)" in msg, msg
    assert "leak-" in msg and "\\n" in msg and "\\x1b" in msg, msg            # the first, escaped
    assert KEY not in msg and "\n" not in msg and "\x1b" not in msg and "\u202e" not in msg, msg
    assert "z" * 200 not in msg and len(msg) < 600, msg                      # clipped
    assert "m" * 257 not in msg                                              # only the first is shown


def test_a_list_without_refused_ids_says_nothing_of_them(box, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="routerone.discovery")
    box.serve(reply(model_list(GOOD), None))
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r1.db'}", demo="off", providers=provider(box))
    with Gateway(settings) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key=gw.new_key()[0], max_retries=0, timeout=30)
        assert {m.id for m in client.models.list()} == {"auto", *GOOD}
    assert _warnings(caplog) == []

"""Sticky conversations across a deployment: a later turn of a `model: "auto"` conversation stays on
the model its first turn got, whichever gateway process serves it.

1. Two `python -m routerone serve` instances (separate OS processes, different ports) share one
   SQLite file and one Redis: turn 1 through instance A, turn 2 through instance B stays on A's
   choice, although turn 2's own willingness to pay (the header) makes B alone pick the other model
   (shown by a fresh conversation through B). Before, the map was per process and B decided afresh.
2. `serve --workers 2` without Redis: the workers share one shared-memory table. Every request goes
   over a new connection (the SDK's pool is per client), which SO_REUSEPORT hands to either worker:
   with a per-process map about half the second turns switched model (all 12 staying put by
   chance: 2^-12).
3. Redis down: nothing fails; conversations are decided afresh, and the outage is logged once.

The catalog is test_auto_routing.py's: gpt-4.1 (stronger, chosen at willingness to pay 1) and
gpt-4o-mini (cheaper, chosen at 0).
"""
from __future__ import annotations

import asyncio
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import openai
import pytest
import redis

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import Admin, FakeUpstream, bootstrap_admin, write_config  # noqa: E402
from ratelimit_procs import ServeProcess, require_redis  # noqa: E402

from routerone.routing.sticky import conversation_key  # noqa: E402
from routerone.routing.sticky_redis import STICKY_KEY_PREFIX  # noqa: E402

pytestmark = [pytest.mark.slow]

CATALOG = """
replace_shipped_models = true

[[model]]
id = "gpt-4.1"
provider = "openai"
context_window = 100000
max_output = 1000
input_usd_per_mtok = "2.00"
output_usd_per_mtok = "8.00"

[[model]]
id = "gpt-4o-mini"
provider = "openai"
context_window = 100000
max_output = 1000
input_usd_per_mtok = "0.15"
output_usd_per_mtok = "0.60"
"""
STRONG, CHEAP = "gpt-4.1", "gpt-4o-mini"
BALANCE_MICROS = 100_000_000
WTP = "x-routerone-willingness-to-pay"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def start(tmp: Path, upstream: FakeUpstream, names: list[str], extra_args: list[str] = (),
          **settings) -> list[ServeProcess]:
    db_url = f"sqlite:///{tmp / 'shared.sqlite'}"
    asyncio.run(bootstrap_admin(db_url))            # migrate + admin key before the processes start
    (tmp / "catalog.toml").write_text(CATALOG)
    config = write_config(tmp / "gateway.toml", database_url=db_url, upstream_url=upstream.base_url,
                          catalog_path=tmp / "catalog.toml", **settings)
    procs = [ServeProcess(config, tmp, name, extra_args=list(extra_args)) for name in names]
    for p in procs:
        p.start()
    for p in procs:
        p.wait_ready()
    return procs


def new_key(gw: ServeProcess) -> tuple[str, int]:
    async def make() -> tuple[str, int]:
        async with Admin(gw.url) as admin:
            secret, _, key_id = await admin.new_key(BALANCE_MICROS)
        return secret, key_id
    return asyncio.run(make())


def ask(gw: ServeProcess, key: str, messages: list[dict], wtp: str) -> tuple[str, str, str]:
    """(model, x-routerone-reason, answer), over a new connection (a client of its own)."""
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages,
                                                               extra_headers={WTP: wtp})
    reply = raw.parse()
    assert raw.headers["x-routerone-model"] == reply.model
    return reply.model, raw.headers.get("x-routerone-reason", ""), reply.choices[0].message.content


def turn2(turn1: list[dict], answer: str) -> list[dict]:
    return turn1 + [{"role": "assistant", "content": answer}, {"role": "user", "content": "Make it shorter."}]


def test_later_turn_on_another_instance_stays_on_first_turn_model(tmp_path, upstream):
    redis_url = require_redis()
    a, b = start(tmp_path, upstream, ["gw-a", "gw-b"], redis_url=redis_url)
    key, key_id = new_key(a)
    pinned: list[str] = []
    try:
        for first_gw, later_gw, wtp1, wtp2, model in ((a, b, "1", "0", STRONG), (b, a, "0", "1", CHEAP)):
            t1 = [{"role": "user", "content": f"Plan a trip to Kyoto ({uuid.uuid4().hex})."}]
            pinned.append(conversation_key(t1, str(key_id))[0])
            got, _, answer = ask(first_gw, key, t1, wtp1)
            assert got == model
            got, reason, _ = ask(later_gw, key, turn2(t1, answer), wtp2)
            assert got == model, f"turn 2 on {later_gw.name} left {model} for {got} ({reason})"
            assert reason.startswith("sticky conversation"), reason
            # the same later turn in a fresh conversation: that instance alone picks the other model
            fresh = [{"role": "user", "content": f"Plan a trip to Osaka ({uuid.uuid4().hex})."}]
            pinned.append(conversation_key(fresh, str(key_id))[0])
            assert ask(later_gw, key, turn2(fresh, "ok"), wtp2)[0] != model
    finally:
        for gw in (a, b):
            gw.stop()
        client = redis.Redis.from_url(redis_url)
        try:
            client.delete(*(STICKY_KEY_PREFIX + k for k in pinned))
        finally:
            client.close()


CONVERSATIONS = 12


def test_workers_share_sticky_conversations_without_redis(tmp_path, upstream):
    (gw,) = start(tmp_path, upstream, ["gw-workers"], extra_args=["--workers", "2"])
    try:
        assert len(gw.workers()) == 2
        key, _ = new_key(gw)
        moved = []
        for i in range(CONVERSATIONS):
            t1 = [{"role": "user", "content": f"Conversation {i}: plan a trip ({uuid.uuid4().hex})."}]
            first, _, answer = ask(gw, key, t1, "1")
            assert first == STRONG
            later, reason, _ = ask(gw, key, turn2(t1, answer), "0")
            if later != STRONG or not reason.startswith("sticky conversation"):
                moved.append((i, later, reason))
        assert not moved, f"{len(moved)}/{CONVERSATIONS} second turns left the first turn's model: {moved}"
    finally:
        gw.stop()


def test_redis_down_routes_afresh_and_never_fails(tmp_path, upstream):
    """redis_url names a port nothing listens on: every turn is answered (decided afresh, the
    limiter's failure policy `open` admits), and the sticky store's outage is logged once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    (gw,) = start(tmp_path, upstream, ["gw-no-redis"], redis_url=dead)
    try:
        key, _ = new_key(gw)
        for i in range(3):
            t1 = [{"role": "user", "content": f"Conversation {i} ({uuid.uuid4().hex})."}]
            assert ask(gw, key, t1, "1")[0] == STRONG
            later, reason, _ = ask(gw, key, turn2(t1, "ok"), "0")
            assert later == CHEAP and not reason.startswith("sticky"), reason     # decided afresh
    finally:
        gw.stop()
    log = gw.log_path.read_text(errors="replace")
    assert log.count("Redis sticky store unreachable") == 1, gw.log_tail()
    assert "Traceback" not in log, gw.log_tail()


def test_a_sticky_entry_that_is_not_utf8_is_routed_afresh(tmp_path, upstream):
    """A conversation's entry in Redis that is not UTF-8 (written by another program on that Redis,
    or corrupted) failed the lookup's whole pipeline: a 500 with a traceback for that conversation's
    every later turn (GETEX kept the entry alive) and for any lookup batched with it. Now that
    conversation is decided afresh and pinned again, as for an entry naming no model."""
    redis_url = require_redis()
    (gw,) = start(tmp_path, upstream, ["gw-bad-entry"], redis_url=redis_url)
    client = redis.Redis.from_url(redis_url)
    key, key_id = new_key(gw)
    t1 = [{"role": "user", "content": f"Plan a trip to Nara ({uuid.uuid4().hex})."}]
    entry = STICKY_KEY_PREFIX + conversation_key(t1, str(key_id))[0]
    try:
        assert ask(gw, key, t1, "1")[0] == STRONG
        client.set(entry, b"\xff\xfe gpt-4.1", px=60_000)
        later, reason, _ = ask(gw, key, turn2(t1, "ok"), "0")
        assert later == CHEAP and not reason.startswith("sticky"), reason     # decided afresh
        deadline = time.monotonic() + 5                                        # and pinned again (a pin
        while client.get(entry) != CHEAP.encode() and time.monotonic() < deadline:   # does not wait)
            time.sleep(0.05)
        assert client.get(entry) == CHEAP.encode()
        later, reason, _ = ask(gw, key, turn2(t1, "ok"), "1")
        assert later == CHEAP and reason.startswith("sticky conversation"), reason
    finally:
        gw.stop()
        client.delete(entry)
        client.close()
    assert "Traceback" not in gw.log_path.read_text(errors="replace"), gw.log_tail()

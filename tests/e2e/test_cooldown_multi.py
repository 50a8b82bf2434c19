"""Deployment cooldowns shared across instances: once one gateway cools a failing deployment down,
the others skip it too (as LiteLLM shares its cooldowns through Redis).

Two `python -m routerone serve` instances (separate OS processes, different ports) on one SQLite
file and one Redis. Model m-primary has two deployments: openai/up-primary on upstream BAD (503 to
everything) and together/up-primary-2 on upstream GOOD. Instance A sends two requests to
`openai/m-primary` (BAD only, falling back to m-backup): with cooldown_failures 2 it cools BAD's
deployment down. Then instance B serves m-primary 12 times: before, its own health knew nothing of
BAD's failures, and its weighted shuffle sent about half the requests to BAD first (all 12 missing
it by chance: 2^-12); now BAD gets none of them. `serve --workers 2` without Redis: the workers
share cooldowns through shared memory. Redis down: nothing fails, each instance cools the
deployment down for itself, and the outage is logged once.
"""
from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
import urllib.request
from pathlib import Path

import openai
import pytest
import redis

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import Admin, FakeUpstream, bootstrap_admin, write_config  # noqa: E402
from ratelimit_procs import ServeProcess, require_redis  # noqa: E402

from routerone.routing.cooldown_redis import COOLDOWN_KEY, address_tag  # noqa: E402

pytestmark = [pytest.mark.slow]

CATALOG = """
replace_shipped_models = true

[[model]]
id = "m-primary"
provider = "openai"
upstream = "up-primary"
context_window = 100000
max_output = 100
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"

[[model]]
id = "m-backup"
provider = "together"
upstream = "up-backup"
context_window = 100000
max_output = 100
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"

[[deployment]]
model = "m-primary"
provider = "together"
upstream = "up-primary-2"
"""
BAD_DEP = "openai/up-primary"
HI = [{"role": "user", "content": "hi"}]
B_REQUESTS = 12
PROPAGATION_BOUND_S = 3.0


def _faults(server: FakeUpstream, faults: list[dict]) -> None:
    req = urllib.request.Request(server.url + "/_control/faults", data=json.dumps({"faults": faults}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=5).read()


def _hits(server: FakeUpstream) -> int:
    return len(server.app["fake"].requests)


def start(tmp: Path, bad: FakeUpstream, good: FakeUpstream, names: list[str], extra_args: list[str] = (),
          **settings) -> list[ServeProcess]:
    db_url = f"sqlite:///{tmp / 'shared.sqlite'}"
    asyncio.run(bootstrap_admin(db_url))
    (tmp / "catalog.toml").write_text(CATALOG)
    config = write_config(tmp / "gateway.toml", database_url=db_url, upstream_url=bad.base_url,
                          catalog_path=tmp / "catalog.toml", **{"max_retries": 0, "cooldown_failures": 2,
                                                                "cooldown_s": 60.0, **settings})
    with config.open("a") as f:
        f.write(f'\n[providers.together]\napi_key = "sk-fake-good"\nbase_url = "{good.base_url}"\n')
    procs = [ServeProcess(config, tmp, name, extra_args=list(extra_args)) for name in names]
    for p in procs:
        p.start()
    for p in procs:
        p.wait_ready()
    return procs


def new_key(gw: ServeProcess) -> str:
    async def make() -> str:
        async with Admin(gw.url) as admin:
            return (await admin.new_key(100_000_000))[0]
    return asyncio.run(make())


def health(gw: ServeProcess) -> dict:
    async def get() -> dict:
        async with Admin(gw.url) as admin:
            return await admin.ok("GET", "/admin/health")
    return asyncio.run(get())


def cool_down_on(gw: ServeProcess, key: str, failures: int = 2) -> None:
    """Requests pinned to BAD's deployment (falling back to m-backup): `failures` cool it down."""
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        for _ in range(failures):
            r = client.chat.completions.create(model="openai/m-primary", messages=HI,
                                               extra_body={"models": ["m-backup"]})
            assert r.model == "m-backup"
    assert health(gw)[BAD_DEP]["cooling_down"] is True


def serve_primary(gw: ServeProcess, key: str, n: int) -> None:
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        for _ in range(n):
            assert client.chat.completions.create(model="m-primary", messages=HI).model == "m-primary"


@pytest.fixture
def upstreams():
    with FakeUpstream() as bad, FakeUpstream() as good:
        _faults(bad, [{"status": 503}] * 200)
        yield bad, good


def test_a_cooldown_started_on_one_instance_is_honoured_by_another(tmp_path, upstreams):
    redis_url = require_redis()
    bad, good = upstreams
    a, b = start(tmp_path, bad, good, ["gw-a", "gw-b"], redis_url=redis_url)
    try:
        key = new_key(a)
        cool_down_on(a, key)
        assert _hits(bad) == 2
        t0 = time.monotonic()         # B's copy of the shared set is refreshed in the background
        while not health(b).get(BAD_DEP, {}).get("cooling_down") and time.monotonic() - t0 < PROPAGATION_BOUND_S:
            time.sleep(0.05)
        print(f"\nB saw A's cooldown after {time.monotonic() - t0:.3f} s")
        serve_primary(b, key, B_REQUESTS)
        assert _hits(bad) == 2, f"B sent {_hits(bad) - 2} of {B_REQUESTS} requests to the deployment A cooled down"
        assert health(b)[BAD_DEP]["cooling_down"] is True
        assert "Traceback" not in b.log_path.read_text(errors="replace"), b.log_tail()
    finally:
        for gw in (a, b):
            gw.stop()
        client = redis.Redis.from_url(redis_url)
        try:
            ours = {f"{BAD_DEP}|{address_tag(u)}" for u in (bad.base_url, bad.base_url.rstrip("/"))}
            client.zrem(COOLDOWN_KEY, *ours)
        finally:
            client.close()


WORKER_REQUESTS = 30


def test_workers_without_redis_share_a_cooldown(tmp_path, upstreams):
    """`serve --workers 2`, no Redis, cooldown_failures 1: one request's failure on BAD cools it
    down in the worker that served it. Each later request comes over a new connection, which
    SO_REUSEPORT hands to either worker: before, the other worker knew nothing of it and sent
    about a quarter of the requests to BAD first (none of 30 by chance: 0.75^30, 2e-4); now BAD
    gets none."""
    bad, good = upstreams
    (gw,) = start(tmp_path, bad, good, ["gw-workers"], extra_args=["--workers", "2"], cooldown_failures=1)
    try:
        assert len(gw.workers()) == 2
        key = new_key(gw)
        with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
            assert client.chat.completions.create(model="openai/m-primary", messages=HI,
                                                  extra_body={"models": ["m-backup"]}).model == "m-backup"
        assert _hits(bad) == 1
        time.sleep(0.5)               # five refreshes of each worker's copy (every 0.1 s)
        for _ in range(WORKER_REQUESTS):
            serve_primary(gw, key, 1)         # a client (a connection) of its own each
        assert _hits(bad) == 1, f"{_hits(bad) - 1} of {WORKER_REQUESTS} requests went to the cooled-down deployment"
    finally:
        gw.stop()
    assert "Traceback" not in gw.log_path.read_text(errors="replace"), gw.log_tail()


def test_redis_down_keeps_cooldowns_per_instance_and_never_fails(tmp_path, upstreams):
    """redis_url names a port nothing listens on: every request is answered, the instance still
    cools BAD down for itself (no more calls to it), and the board's outage is logged once."""
    bad, good = upstreams
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    (gw,) = start(tmp_path, bad, good, ["gw-no-redis"], redis_url=dead)
    try:
        key = new_key(gw)
        cool_down_on(gw, key)
        serve_primary(gw, key, B_REQUESTS)
        assert _hits(bad) == 2
    finally:
        gw.stop()
    log = gw.log_path.read_text(errors="replace")
    assert log.count("Redis cooldown board unreachable") == 1, gw.log_tail()
    assert "Traceback" not in log, gw.log_tail()

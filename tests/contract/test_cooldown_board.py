"""RedisCooldownBoard (routing/cooldown_redis.py) against a real Redis: a cooldown one process's
Health starts is seen by another's after one refresh and ended by a success there; a gateway whose
provider has another address shares nothing; a network cut (tests/e2e/fault_proxy.py) leaves
routing on local health with known cooldowns kept, logged once, and the first refresh after it
shares again. Redis unreachable: skipped, or failed when CI is set (as the sticky contract tests).
The shared-memory table of `serve --workers N` without Redis (routing/cooldown_shared.py) too."""
from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import redis

from routerone.routing.cooldown_redis import COOLDOWN_KEY, RedisCooldownBoard, address_tag
from routerone.routing.cooldown_shared import DEP_ID_BYTES, SharedCooldownBoard, SharedCooldownState
from routerone.routing.health import Health

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))
from fault_proxy import FaultProxy  # noqa: E402
from redis_server import OwnRedis  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_sticky_contract import require_redis  # noqa: E402

DEP = "v/model-a"


def _vendors(base_url: str):
    vendors = {"v": SimpleNamespace(base_url=base_url)}
    return lambda: vendors


async def _until(done, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not done():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def _cleanup(url: str, base_url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.zrem(COOLDOWN_KEY, f"{DEP}|{address_tag(base_url)}")
    finally:
        client.close()


async def test_a_cooldown_is_seen_by_another_process_and_ended_by_its_success():
    url = require_redis()
    base = f"http://up-{uuid.uuid4().hex[:8]}.invalid/v1"
    one, two, other = (RedisCooldownBoard(url, _vendors(b)) for b in (base, base, base + "x"))
    h1, h2, h3 = (Health(cooldown_failures=1, cooldown_s=60, board=b) for b in (one, two, other))
    try:
        await two.refresh()
        assert h2.available(DEP)
        h1.record_failure(DEP)                         # cools it down here and publishes it
        await one.flush()
        await two.refresh()
        await other.refresh()
        assert not h2.available(DEP) and h2.report()[DEP]["cooling_down"] is True
        assert h3.available(DEP), "another upstream address must not share the cooldown"
        h2.record_success(DEP, ttft_ms=None, duration_ms=10.0, completion_tokens=1)   # it answered again
        assert h2.available(DEP)
        await two.refresh()                            # may read before the clear reaches Redis
        assert h2.available(DEP), "a refresh read before the clear landed brought the cooldown back"
        await two.flush()
        await one.refresh()
        assert one.until(DEP) == 0.0 and one.fallback_events == 0
    finally:
        for b in (one, two, other):
            await b.close()
        _cleanup(url, base)


async def test_redis_cut_keeps_local_health_and_known_cooldowns_then_shares_again(caplog):
    url = require_redis()
    parts = urlsplit(url)
    proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 6379).start()
    base = f"http://up-{uuid.uuid4().hex[:8]}.invalid/v1"
    via_proxy = f"redis://127.0.0.1:{proxy.port}{parts.path or '/0'}"
    writer, reader = RedisCooldownBoard(url, _vendors(base)), RedisCooldownBoard(via_proxy, _vendors(base))
    hw, hr = (Health(cooldown_failures=1, cooldown_s=60, board=b) for b in (writer, reader))
    caplog.set_level(logging.WARNING, logger="routerone.routing")
    try:
        hw.record_failure(DEP)
        await writer.flush()
        await reader.refresh()
        assert not hr.available(DEP)
        reader.refresh_interval_s = 0.05
        await reader.start()                            # the background refresh: also the outage probe
        proxy.cut()
        await _until(lambda: reader.fallback_events >= 3)
        hr.record_failure("v/model-b")                  # local health goes on: cooled down here
        assert not hr.available("v/model-b") and not hr.available(DEP)   # the known one is kept
        await reader.flush()
        assert reader.outages == 1 and caplog.text.count("Redis cooldown board unreachable") == 1
        proxy.restore()
        await _until(lambda: "Redis cooldown board reachable again" in caplog.text)
        assert not hr.available(DEP)
    finally:
        await writer.close()
        await reader.close()
        proxy.stop()
        _cleanup(url, base)
        client = redis.Redis.from_url(url)
        try:
            client.zrem(COOLDOWN_KEY, f"v/model-b|{address_tag(base)}")
        finally:
            client.close()


async def test_workers_table_shares_a_cooldown_and_its_end():
    """SharedCooldownBoard (serve --workers N without Redis): two workers' boards on one block."""
    state = SharedCooldownState(slots=4)
    one, two = SharedCooldownBoard(state.handle), SharedCooldownBoard(state.handle)
    h1, h2 = (Health(cooldown_failures=1, cooldown_s=60, board=b) for b in (one, two))
    try:
        h1.record_failure(DEP)
        assert h2.available(DEP)                       # until its next refresh
        two.refresh()
        assert not h2.available(DEP) and h2.report()[DEP]["cooling_down"] is True
        h2.record_success(DEP, ttft_ms=None, duration_ms=10.0, completion_tokens=1)
        one.refresh()
        assert one.until(DEP) == 0.0 and h1.report()[DEP]["cooling_down"] is True   # its own stays
        for i in range(5):                             # 5 cooldowns in 4 entries: the soonest-ending goes
            one.publish(f"v/m{i}", 60 + i)
        two.refresh()
        assert sorted(two.cooling(0.0)) == ["v/m1", "v/m2", "v/m3", "v/m4"] and one.fallback_events == 1
        one.publish("v/" + "x" * DEP_ID_BYTES, 60)    # too long to share: left to the worker's own health
        assert one.fallback_events == 2
    finally:
        await one.close()
        await two.close()
        state.unlink()


async def test_hostile_members_neither_stop_the_refresh_nor_cool_a_deployment_down_for_ever():
    """Another program wrote into `ro:cool:v1`: a member that is not UTF-8 (the background refresh
    raised UnicodeDecodeError and its task died: nothing was shared again until a restart) and a
    score of +inf (the deployment was skipped for 31 years, and every publish failed at PEXPIREAT,
    leaving the key without an expiry). On its own Redis database: the key's content is this test's."""
    parts = urlsplit(require_redis())
    url = parts._replace(path="/13").geturl()
    base = f"http://up-{uuid.uuid4().hex[:8]}.invalid/v1"
    client = redis.Redis.from_url(url)
    client.delete(COOLDOWN_KEY)
    client.zadd(COOLDOWN_KEY, {b"\xff\xfe|junk": 4e12, f"v/model-inf|{address_tag(base)}": float("inf")})
    writer, reader = RedisCooldownBoard(url, _vendors(base)), RedisCooldownBoard(url, _vendors(base))
    hw, hr = (Health(cooldown_failures=1, cooldown_s=60, board=b) for b in (writer, reader))
    try:
        reader.refresh_interval_s = 0.02
        await reader.start()
        hw.record_failure(DEP)
        await writer.flush()
        await _until(lambda: not hr.available(DEP))
        assert not reader._refresher.done()
        assert hr.available("v/model-inf") and writer.fallback_events == 0
        assert 0 < client.pttl(COOLDOWN_KEY) <= 61_000 + 1000
    finally:
        await writer.close()
        await reader.close()
        client.delete(COOLDOWN_KEY)
        client.close()


async def test_workers_table_written_over_by_another_process_keeps_routing():
    """The shared-memory table scribbled over (a stray writer): lengths out of range and an end of
    NaN are read without error, and an end of +inf (the deployment skipped for ever: no request,
    so no success ends it) is no cooldown."""
    state = SharedCooldownState(slots=4)
    one, two = SharedCooldownBoard(state.handle), SharedCooldownBoard(state.handle)
    h2 = Health(cooldown_failures=1, cooldown_s=60, board=two)
    try:
        for i, dep in enumerate(("v/inf", "v/nan", "v/long", "v/neg")):
            one.publish(dep, 60)
        table = one._table                               # the block, written over by another process
        table.times[0], table.times[1] = float("inf"), float("nan")
        table.lengths[2], table.lengths[3] = 10**9, -5
        table.header[2] += 1
        two.refresh()
        assert h2.available("v/inf") and h2.available("v/nan")
        one.publish("v/fresh", 60)
        two.refresh()
        assert not h2.available("v/fresh")
    finally:
        await one.close()
        await two.close()
        state.unlink()


LARGE_SET_MEMBERS = 200_000


def _fill(client: redis.Redis, scores: range, prefix: str) -> None:
    """`len(scores)` members `<prefix><i>` (another tenant's tag), 10,000 per ZADD, pipelined."""
    pipe = client.pipeline(transaction=False)
    batch: dict[str, float] = {}
    for i, score in enumerate(scores):
        batch[f"{prefix}{i}|000000000000"] = score
        if len(batch) == 10_000:
            pipe.zadd(COOLDOWN_KEY, batch)
            batch = {}
    if batch:
        pipe.zadd(COOLDOWN_KEY, batch)
    pipe.execute()


async def test_a_huge_cooldown_set_neither_times_the_refresh_out_nor_hides_our_cooldown(caplog):
    """`ro:cool:v1` filled by another tenant or a bug: 200k members still cooling (ending after
    ours) and 200k long over. Before (ops7), the refresh read every live member (200k in one reply:
    past its 250 ms timeout, so nothing was shared any more) and a publish removed every expired
    one in one command. Now a refresh reads at most READ_MAX members (those ending soonest) and
    each round trip prunes at most PRUNE_MAX expired ones, so each stays well inside the timeout
    and the set still shrinks. On a redis-server of the test's own."""
    from routerone.routing import cooldown_redis
    with OwnRedis() as own:
        client = redis.Redis.from_url(own.url)
        base = f"http://up-{uuid.uuid4().hex[:8]}.invalid/v1"
        now_ms = int(client.time()[0]) * 1000
        _fill(client, range(now_ms + 600_000, now_ms + 600_000 + LARGE_SET_MEMBERS), "tenant/live-")
        _fill(client, range(now_ms - 3_600_000, now_ms - 3_600_000 + LARGE_SET_MEMBERS), "tenant/over-")
        writer, reader = RedisCooldownBoard(own.url, _vendors(base)), RedisCooldownBoard(own.url, _vendors(base))
        hw, hr = (Health(cooldown_failures=1, cooldown_s=60, board=b) for b in (writer, reader))
        try:
            hw.record_failure(DEP)                         # publish: one round trip inside the timeout
            await writer.flush()
            assert writer.fallback_events == 0
            loop = asyncio.get_running_loop()
            with caplog.at_level(logging.WARNING, logger="routerone.routing"):
                for _ in range(3):
                    started = loop.time()
                    await reader.refresh()                 # raises on a timed-out round trip
                    assert loop.time() - started < 0.25
            assert not hr.available(DEP)                   # our cooldown is seen through the flood
            full = [r for r in caplog.records if "more than" in r.message]
            assert len(full) == 1, caplog.records          # said once: only the soonest are read
            over = client.zcount(COOLDOWN_KEY, "-inf", now_ms)
            assert LARGE_SET_MEMBERS - 4 * cooldown_redis.PRUNE_MAX <= over < LARGE_SET_MEMBERS
            assert client.zcount(COOLDOWN_KEY, f"({now_ms}", "+inf") == LARGE_SET_MEMBERS + 1
        finally:
            await writer.close()
            await reader.close()
            client.close()

"""/healthz is liveness, /readyz readiness: 503 when the database or (closed Redis failure policy)
Redis cannot be reached, through a real network cut (tests/e2e/fault_proxy.py), and ready again
when it is back. The draining case is in test_drain.py (it needs a real SIGTERM)."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import pg_database  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402
from ratelimit_procs import require_redis  # noqa: E402


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_status(url: str, status: int, timeout_s: float = 10.0) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = get(url)
        if got[0] == status or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def via(proxy: FaultProxy, url: str) -> str:
    p = urlsplit(url)
    netloc = (p.netloc.rsplit("@", 1)[0] + "@" if "@" in p.netloc else "") + f"127.0.0.1:{proxy.port}"
    return urlunsplit((p.scheme, netloc, p.path, p.query, p.fragment))


def target_of(url: str, default_port: int) -> tuple[str, int]:
    p = urlsplit(url)
    return p.hostname or "127.0.0.1", p.port or default_port


def test_healthy_gateway_is_live_and_ready(gw):
    assert get(gw.url + "/healthz") == (200, {"status": "ok"})
    assert get(gw.url + "/readyz") == (200, {"status": "ready"})


@pytest.mark.postgres
def test_readyz_follows_the_database_and_healthz_does_not(gateway):
    with pg_database() as db_url:
        proxy = FaultProxy(*target_of(db_url, 5432)).start()
        try:
            gw = gateway(database_url=via(proxy, db_url))
            assert get(gw.url + "/readyz") == (200, {"status": "ready"})
            proxy.cut()
            status, body = wait_status(gw.url + "/readyz", 503)
            assert status == 503 and body["status"] == "unready", body
            assert set(body["unreachable"]) == {"database"}, body
            assert "127.0.0.1" not in json.dumps(body)          # no hosts or driver messages
            assert get(gw.url + "/healthz") == (200, {"status": "ok"})   # liveness: still alive
            proxy.restore()
            assert wait_status(gw.url + "/readyz", 200) == (200, {"status": "ready"})
        finally:
            proxy.stop()


@pytest.mark.redis
@pytest.mark.parametrize("policy", ["closed", "open"])
def test_readyz_follows_redis_only_under_the_closed_policy(gateway, policy):
    redis_url = require_redis()
    proxy = FaultProxy(*target_of(redis_url, 6379)).start()
    try:
        gw = gateway(redis_url=via(proxy, redis_url), limiter="redis", redis_failure_policy=policy)
        assert get(gw.url + "/readyz") == (200, {"status": "ready"})
        proxy.cut()
        if policy == "closed":
            status, body = wait_status(gw.url + "/readyz", 503)
            assert (status, body) == (503, {"status": "unready", "unreachable": {"redis": body["unreachable"]["redis"]}})
            proxy.restore()
            assert wait_status(gw.url + "/readyz", 200) == (200, {"status": "ready"})
        else:   # open: requests are decided with local limits, so the instance stays ready
            time.sleep(1.5)
            assert get(gw.url + "/readyz") == (200, {"status": "ready"})
    finally:
        proxy.stop()


# -- a store that answers a ping but whose tables are locked (ops7) ----------------------------------
# A request needs to write the store (reserve, settle, usage): while another session holds a lock
# that blocks those writes, requests wait or fail, so the instance must not say it is ready.

def _held_pg_lock(db_url: str, sql: str):
    """A second session that runs `sql` inside an open transaction; returns (loop, conn)."""
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(db_url, timeout=5))
    loop.run_until_complete(conn.execute("BEGIN"))
    loop.run_until_complete(conn.execute(sql))
    return loop, conn


@pytest.mark.postgres
@pytest.mark.parametrize("lock", ["reservations IN ACCESS EXCLUSIVE MODE", "accounts IN EXCLUSIVE MODE"])
def test_readyz_is_503_while_a_postgres_table_requests_need_is_locked(gateway, lock):
    with pg_database() as db_url:
        gw = gateway(database_url=db_url)
        gw.new_key()                                               # the schema is there and works
        assert get(gw.url + "/readyz") == (200, {"status": "ready"})
        loop, conn = _held_pg_lock(db_url, f"LOCK TABLE {lock}")
        try:
            started = time.monotonic()
            status, body = wait_status(gw.url + "/readyz", 503, timeout_s=5)
            assert (status, body) == (503, {"status": "unready", "unreachable": {"database": "locked"}})
            assert time.monotonic() - started < 4                  # bounded: the probe does not hang
            assert get(gw.url + "/healthz") == (200, {"status": "ok"})
        finally:
            loop.run_until_complete(conn.execute("ROLLBACK"))
            loop.run_until_complete(conn.close())
            loop.close()
        assert wait_status(gw.url + "/readyz", 200) == (200, {"status": "ready"})
        gw.new_key()                                               # the probe left nothing held


def test_readyz_is_503_while_another_process_holds_the_sqlite_write_lock(gateway):
    gw = gateway()
    gw.new_key()
    assert get(gw.url + "/readyz") == (200, {"status": "ready"})
    path = gw.settings.database_url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        other.execute("BEGIN IMMEDIATE")                           # another writer on the same file
        started = time.monotonic()
        status, body = wait_status(gw.url + "/readyz", 503, timeout_s=5)
        assert (status, body) == (503, {"status": "unready", "unreachable": {"database": "locked"}})
        assert time.monotonic() - started < 4
        assert get(gw.url + "/healthz") == (200, {"status": "ok"})
        other.execute("ROLLBACK")
        assert wait_status(gw.url + "/readyz", 200) == (200, {"status": "ready"})
        gw.new_key()
    finally:
        other.close()

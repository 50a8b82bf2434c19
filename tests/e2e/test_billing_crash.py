"""Issue 4 "done when", crash: kill -9 of a gateway mid-request leaves no hold after its expiry.

A gateway process with a short `reservation_ttl_s` reserves for a request whose upstream call is
slow; the process is SIGKILLed while the call is in flight (no shutdown hook, no settle). The hold
is still on the account afterwards. A fresh gateway process on the same PostgreSQL database sweeps
it once it has expired: reserved_micros is back to 0, available == balance, nothing was charged.

The sweep runs every `Billing.sweep_interval_s` (10 s by default, not a setting yet), so this test
waits up to TTL + 10 s + slack. When Settings grows `reservation_sweep_interval_s` the test sets
it to 0.5 s and the wait shrinks accordingly.
"""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import asyncpg
import openai
import pytest
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import (MODEL, OUTPUT_MICROS_PER_TOKEN, Admin, FakeUpstream, GatewayProcess,  # noqa: E402
                           billing_id, bootstrap_admin, cost_header_micros, has_setting, pg_database,
                           usage_cost_micros, wait_until, write_catalog, write_config)

from routerone.services.billing import Billing  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TTL_S = 2
FAST_SWEEP_S = 0.5
SWEEP_SETTING = "reservation_sweep_interval_s"
MAX_TOKENS = 5
WORST = MAX_TOKENS * OUTPUT_MICROS_PER_TOKEN
FUNDED = 10_000


@pytest.fixture
def pg_url():
    with pg_database() as url:
        yield url


@pytest.fixture
def upstream():
    with FakeUpstream() as up:
        yield up


def _default_sweep_interval_s() -> float:
    import inspect
    return inspect.signature(Billing.__init__).parameters["sweep_interval_s"].default


async def _held(conn: asyncpg.Connection, account_id: int) -> tuple[int, int, list]:
    acc = await conn.fetchrow("SELECT balance_micros, reserved_micros FROM accounts WHERE id = $1", account_id)
    res = await conn.fetch("SELECT request_id, amount_micros, state, expires_at FROM reservations "
                           "WHERE account_id = $1 ORDER BY request_id", account_id)
    return acc[0], acc[1], [dict(r) for r in res]


async def test_kill_9_mid_request_hold_released_after_expiry(pg_url: str, upstream: FakeUpstream,
                                                             tmp_path: Path) -> None:
    fast_sweep = has_setting(SWEEP_SETTING)
    sweep_s = FAST_SWEEP_S if fast_sweep else _default_sweep_interval_s()
    extra = {SWEEP_SETTING: FAST_SWEEP_S} if fast_sweep else {}
    cfg = write_config(tmp_path / "gateway.toml", database_url=pg_url, upstream_url=upstream.base_url,
                       catalog_path=write_catalog(tmp_path / "catalog.toml"), reservation_ttl_s=TTL_S, **extra)
    await bootstrap_admin(pg_url)
    doomed = GatewayProcess(cfg, tmp_path, "doomed").start()
    fresh = GatewayProcess(cfg, tmp_path, "fresh")
    conn = await asyncpg.connect(pg_url)
    try:
        await asyncio.to_thread(doomed.wait_ready)
        async with Admin(doomed.url) as admin:
            key, account_id, _ = await admin.new_key(FUNDED)

        # 1. a request whose upstream call takes 3 s; kill -9 the gateway while it is in flight
        client = AsyncOpenAI(base_url=doomed.base_url, api_key=key, max_retries=0, timeout=30)
        inflight = asyncio.create_task(client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "slow please [[sleep:3000]]"}],
            max_tokens=MAX_TOKENS))

        async def reserved() -> bool:
            return (await _held(conn, account_id))[1] > 0
        assert await wait_until(reserved, timeout_s=10, interval_s=0.01), "the request never reserved"
        assert not inflight.done()
        doomed.kill()
        t_kill = time.monotonic()
        with pytest.raises(openai.APIConnectionError):
            await asyncio.wait_for(inflight, 10)
        await client.close()

        # 2. the dead process's hold is still on the account
        balance, held, rows = await _held(conn, account_id)
        assert (balance, held) == (FUNDED, WORST)
        assert [(r["amount_micros"], r["state"]) for r in rows] == [(WORST, "open")]
        assert rows[0]["expires_at"] <= time.time() + TTL_S

        # 3. a fresh gateway on the same database sweeps it once it has expired
        fresh.start()
        await asyncio.to_thread(fresh.wait_ready)

        async def released() -> bool:
            return (await _held(conn, account_id))[1] == 0
        deadline_s = TTL_S + sweep_s + 5
        assert await wait_until(released, timeout_s=deadline_s, interval_s=0.1), (
            f"hold still there {deadline_s}s after the kill (TTL {TTL_S}s, sweep every {sweep_s}s)")
        released_after_s = time.monotonic() - t_kill

        balance, held, rows = await _held(conn, account_id)
        assert (balance, held) == (FUNDED, 0), "released, not charged"
        assert [r["state"] for r in rows] == ["expired"]
        async with Admin(fresh.url) as admin:
            acc = await admin.account(account_id)
            assert acc["available_micros"] == acc["balance_micros"] == FUNDED and acc["reserved_micros"] == 0
            ledger = await admin.ledger(account_id)
            assert [e["kind"] for e in ledger] == ["credit"] and sum(e["amount_micros"] for e in ledger) == FUNDED

            # 4. the account works on the fresh gateway, and what it says it charged is what it charged
            async with AsyncOpenAI(base_url=fresh.base_url, api_key=key, max_retries=0, timeout=30) as c:
                raw = await c.chat.completions.with_raw_response.create(
                    model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=MAX_TOKENS)
            comp = raw.parse()
            rid = billing_id(raw.headers)
            [charge] = [e for e in await admin.ledger(account_id) if e["kind"] == "charge"]
            assert charge["request_id"] == rid
            assert usage_cost_micros(comp.usage) == cost_header_micros(raw.headers["x-routerone-cost"]) \
                == -charge["amount_micros"] == WORST
            assert (await admin.account(account_id))["balance_micros"] == FUNDED - WORST
        print(f"\nFIGURES kill -9: hold of {WORST} micros released {released_after_s:.1f}s after the kill "
              f"(TTL {TTL_S}s, sweep every {sweep_s}s{'' if fast_sweep else ', the default: no setting'}); "
              "balance untouched, no charge")
    finally:
        await conn.close()
        doomed.kill()
        fresh.stop()

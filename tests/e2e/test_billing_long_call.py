"""A call that outlives `reservation_ttl_s` keeps its balance hold (on SQLite and PostgreSQL).

The gateway runs with a 1 s TTL and a 0.1 s sweep. A stream (and a JSON call) that lasts about 4 s:
- its hold is still there after twice the TTL (the sweep extended it), so a concurrent request
  cannot spend the held amount (402), while a hold that is live nowhere (written straight to the
  store, as a dead process leaves it) is released at its TTL;
- its final charge is exact: what the client is told, the ledger and the usage row agree, and the
  balance is the funding minus that.
Before the fix the sweep released the running call's hold at its TTL; the concurrent request was
then served from the held amount and the late settle charged only what was left (an unbilled call).
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import openai
import pytest
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import pg_database  # noqa: E402
from money_procs import OUT_MICROS, SMALL, MisbehavingUpstream, write_money_catalog  # noqa: E402

from routerone.settings import ProviderSettings, Settings  # noqa: E402
from routerone.store.base import Reservation, UsageQuery  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402

TTL_S = 1
SWEEP_S = 0.1
LONG_TOKENS = 40                     # paced 100 ms apart: about 4 s, four times the TTL (checked at 2 s)
HOLD = LONG_TOKENS * OUT_MICROS      # the worst case reserved (input is free), and the exact cost
DEAD_HOLD = 40
FUNDED = HOLD + DEAD_HOLD + 60       # while the long call runs: 60 available, 100 once the dead hold expires
RIVAL_TOKENS = 11                    # worst case 110: fits only if the long call's hold is gone


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def gateway(request, tmp_path: Path) -> Iterator[Gateway]:
    def run(url: str) -> Iterator[Gateway]:
        with MisbehavingUpstream() as upstream:
            settings = Settings(database_url=url, demo="off", usage_flush_interval_s=0.05,
                                catalog_path=str(write_money_catalog(tmp_path / "catalog.toml")),
                                providers={"openai": ProviderSettings(api_key="sk-up", base_url=upstream.base_url)},
                                reservation_ttl_s=TTL_S, reservation_sweep_interval_s=SWEEP_S)
            with Gateway(settings) as gw:
                yield gw
    if request.param == "sqlite":
        yield from run(f"sqlite:///{tmp_path / 'r1.db'}")
    else:
        with pg_database() as url:
            yield from run(url)


def _states(gw: Gateway, account_id: int) -> dict[str, tuple[str, float]]:
    store = gw.runtime.chat.d.billing.store
    sql = "SELECT request_id, state, expires_at FROM reservations WHERE account_id = "

    async def rows() -> list:
        if hasattr(store, "url"):
            return list(await (await store._db()).fetch(sql + "$1", account_id))
        return await store._run(lambda db: db.execute(sql + "?", (account_id,)).fetchall())
    return {r[0]: (r[1], r[2]) for r in gw.call(rows())}


def _plant_dead_hold(gw: Gateway, account_id: int) -> None:
    """A hold no process here knows of (as one whose process was killed leaves it)."""
    store = gw.runtime.chat.d.billing.store
    [key] = [k for k in gw.call(store.list_keys(account_id))]
    assert gw.call(store.reserve(Reservation("dead-process-hold", account_id, key.id, DEAD_HOLD,
                                             time.time() + TTL_S)))


def _while_the_long_call_runs(gw: Gateway, client: OpenAI, account_id: int, long_id: str | None,
                              t0: float) -> None:
    time.sleep(max(0.0, t0 + 2 * TTL_S - time.monotonic()))   # twice the TTL: swept many times over
    states = _states(gw, account_id)
    assert states["dead-process-hold"][0] == "expired", "a hold live nowhere must still expire"
    live = [(s, exp) for rid, (s, exp) in states.items() if rid != "dead-process-hold"]
    assert [s for s, _ in live] == ["open"], f"the running call's hold was released: {states}"
    assert live[0][1] > time.time(), "its expiry was not moved"
    if long_id is not None:
        assert long_id in states
    acc = gw.account(account_id)
    assert (acc["reserved_micros"], acc["available_micros"]) == (HOLD, FUNDED - HOLD)
    with pytest.raises(openai.APIStatusError) as refused:       # the held amount cannot be spent twice
        client.chat.completions.create(model=SMALL, max_tokens=RIVAL_TOKENS,
                                       messages=[{"role": "user", "content": "rival"}])
    assert refused.value.status_code == 402, refused.value


def _assert_charged_exactly(gw: Gateway, account_id: int, request_id: str, told_micros: int) -> None:
    assert told_micros == HOLD
    store = gw.runtime.chat.d.billing.store
    charges = [e for e in gw.call(store.ledger(account_id, 100)) if e.kind == "charge"]
    assert [(e.request_id, -e.amount_micros) for e in charges] == [(request_id, HOLD)]
    deadline = time.monotonic() + 10
    while True:
        rows = [r for r in gw.call(store.query_usage(UsageQuery(account_id=account_id, limit=100))).records
                if r.request_id == request_id]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [r.cost_micros for r in rows] == [HOLD]
    acc = gw.account(account_id)
    assert (acc["balance_micros"], acc["reserved_micros"]) == (FUNDED - HOLD, 0)
    assert _states(gw, account_id)[request_id][0] == "settled"


def test_a_stream_longer_than_the_reservation_ttl_keeps_its_hold_and_is_charged_exactly(gateway: Gateway) -> None:
    gw = gateway
    key, account_id = gw.new_key(FUNDED)
    _plant_dead_hold(gw, account_id)
    client = OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    t0 = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model=SMALL, max_tokens=LONG_TOKENS, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "long [[pace:100]]"}])
    request_id = raw.headers["x-routerone-request-id"]
    chunks = iter(raw.parse())
    first = next(chunks)
    _while_the_long_call_runs(gw, client, account_id, request_id, t0)
    rest = list(chunks)
    assert time.monotonic() - t0 > 2 * TTL_S
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    assert text == "ok " * LONG_TOKENS
    usage = rest[-1].usage
    assert usage is not None and usage.completion_tokens == LONG_TOKENS
    _assert_charged_exactly(gw, account_id, request_id, round(usage.model_extra["cost"] * 1_000_000))
    assert gw.runtime.chat.d.billing.live_holds == 0


def test_a_json_call_longer_than_the_reservation_ttl_keeps_its_hold(gateway: Gateway) -> None:
    gw = gateway
    key, account_id = gw.new_key(FUNDED)
    _plant_dead_hold(gw, account_id)
    client = OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    with ThreadPoolExecutor(1) as pool:
        t0 = time.monotonic()
        slow = pool.submit(client.chat.completions.with_raw_response.create, model=SMALL,
                           max_tokens=LONG_TOKENS, messages=[{"role": "user", "content": "slow [[sleep:4000]]"}])
        _while_the_long_call_runs(gw, client, account_id, None, t0)
        raw = slow.result(30)
    comp = raw.parse()
    assert comp.usage.completion_tokens == LONG_TOKENS
    _assert_charged_exactly(gw, account_id, raw.headers["x-routerone-request-id"],
                            round(comp.usage.model_extra["cost"] * 1_000_000))


@pytest.mark.postgres
def test_another_gateways_sweep_does_not_release_a_running_calls_hold(tmp_path: Path) -> None:
    """Two gateways on one PostgreSQL database (two hosts, or --workers): B's sweep, which knows
    nothing of A's calls, leaves the hold of A's long stream alone because A moved its expiry."""
    with pg_database() as url, MisbehavingUpstream() as upstream:
        settings = Settings(database_url=url, demo="off", usage_flush_interval_s=0.05,
                            catalog_path=str(write_money_catalog(tmp_path / "catalog.toml")),
                            providers={"openai": ProviderSettings(api_key="sk-up", base_url=upstream.base_url)},
                            reservation_ttl_s=TTL_S, reservation_sweep_interval_s=SWEEP_S)
        with Gateway(settings) as a, Gateway(settings) as b:
            key, account_id = a.new_key(FUNDED)
            _plant_dead_hold(a, account_id)
            t0 = time.monotonic()
            with OpenAI(base_url=a.base_url, api_key=key, max_retries=0, timeout=30) as on_a, \
                    OpenAI(base_url=b.base_url, api_key=key, max_retries=0, timeout=30) as on_b:
                raw = on_a.chat.completions.with_raw_response.create(
                    model=SMALL, max_tokens=LONG_TOKENS, stream=True, stream_options={"include_usage": True},
                    messages=[{"role": "user", "content": "long [[pace:100]]"}])
                request_id = raw.headers["x-routerone-request-id"]
                chunks = iter(raw.parse())
                next(chunks)
                _while_the_long_call_runs(b, on_b, account_id, request_id, t0)   # B sweeps, B is asked
                rest = list(chunks)
            usage = rest[-1].usage
            assert usage is not None and usage.completion_tokens == LONG_TOKENS
            _assert_charged_exactly(a, account_id, request_id, round(usage.model_extra["cost"] * 1_000_000))

"""Issue 11, items 4 and 10 (database part): PostgreSQL becomes unreachable (a TCP proxy in front of
it drops every connection and refuses new ones) while a stream is being relayed and while new
requests arrive, then comes back.

- The stream whose settle fails does not end in a TCP reset: it ends with a `finish_reason:
  "error"` chunk, the usage chunk (with the cost) and an error event (code settle_pending).
- A JSON request in flight is answered (200, with the cost it will be charged).
- Their holds are kept (this process does not sweep it even after its TTL) and the charge is written
  once the database is back: ledger and balance equal what the client was told in usage.cost, and
  its usage row (with that cost) is there, exactly once.
- New requests meanwhile get 503 api_error / service_unavailable with Retry-After (a cached key's
  and an uncached key's alike), never a 500, and succeed again by themselves afterwards.
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import pg_database  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402
from money_procs import OUT_MICROS, SMALL, MisbehavingUpstream, write_money_catalog  # noqa: E402

from routerone.settings import ProviderSettings, Settings  # noqa: E402
from routerone.store.base import UsageQuery  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
TTL_S = 2
FUNDED = 1_000_000


def _post(gw: Gateway, key: str, body: dict) -> httpx2.Response:
    return httpx2.post(gw.base_url + "/chat/completions", json=body, timeout=30,
                       headers={"Authorization": f"Bearer {key}"})


def test_database_unreachable_mid_stream_and_for_new_requests(tmp_path: Path) -> None:
    with pg_database() as url, MisbehavingUpstream() as upstream:
        host_port = url.split("@", 1)[1].split("/", 1)[0]
        host, port = host_port.rsplit(":", 1) if ":" in host_port else (host_port, "5432")
        proxy = FaultProxy(host, int(port)).start()
        proxied = url.replace(f"@{host_port}/", f"@127.0.0.1:{proxy.port}/")
        settings = Settings(database_url=proxied, demo="off",
                            catalog_path=str(write_money_catalog(tmp_path / "catalog.toml")),
                            providers={"openai": ProviderSettings(api_key="sk-up", base_url=upstream.base_url)},
                            reservation_ttl_s=TTL_S, reservation_sweep_interval_s=0.2)
        try:
            with Gateway(settings) as gw:
                key, account_id = gw.new_key(FUNDED)
                fresh_key, _ = gw.new_key(FUNDED)          # never used before the outage: not cached
                assert _post(gw, key, {"model": SMALL, "messages": [{"role": "user", "content": "hi"}],
                                       "max_tokens": 3}).status_code == 200
                store = gw.runtime.chat.d.billing.store

                # 1. a JSON request and a stream in flight while the database goes away
                pool = ThreadPoolExecutor(1)
                calls = upstream.calls
                slow_json = pool.submit(_post, gw, key, {"model": SMALL, "max_tokens": 7, "messages": [
                    {"role": "user", "content": "slow [[sleep:1200]]"}]})
                while upstream.calls == calls:                # it has reserved and is at the upstream
                    time.sleep(0.01)
                body = {"model": SMALL, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 20,
                        "messages": [{"role": "user", "content": "slow [[pace:100]]"}]}
                with httpx2.Client(timeout=60) as http:
                    with http.stream("POST", gw.base_url + "/chat/completions", json=body,
                                     headers={"Authorization": f"Bearer {key}"}) as resp:
                        billed_as = resp.headers["x-routerone-request-id"]
                        chunks = resp.iter_bytes()
                        raw = next(chunks)
                        proxy.cut()
                        t_down = time.monotonic()
                        for part in chunks:                  # no reset: the stream ends properly
                            raw += part
                events = [e[6:] for e in raw.decode().split("\n\n") if e.startswith("data: ")]
                parsed = [orjson.loads(e) for e in events]
                text = "".join(c["choices"][0]["delta"].get("content") or "" for c in parsed if c.get("choices"))
                assert text == "ok " * 20
                assert parsed[-3]["choices"][0]["finish_reason"] == "error"
                told = parsed[-2]["usage"]
                assert told["completion_tokens"] == 20
                told_micros = round(told["cost"] * 1_000_000)
                assert told_micros == 20 * OUT_MICROS
                assert parsed[-1]["error"]["code"] == "settle_pending" and parsed[-1]["error"]["type"] == "api_error"
                assert events[-1] != "[DONE]"
                # the JSON reply is delivered with the cost it will be charged (its settle is pending too)
                json_reply = slow_json.result(30)
                pool.shutdown()
                assert json_reply.status_code == 200, json_reply.text
                json_id = json_reply.headers["x-routerone-request-id"]
                json_told = round(json_reply.json()["usage"]["cost"] * 1_000_000)
                assert json_told == 7 * OUT_MICROS

                # 2. new requests while it is down: 503 + Retry-After, for cached and uncached keys
                for k in (key, fresh_key):
                    r = _post(gw, k, {"model": SMALL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
                    assert r.status_code == 503, r.text
                    assert r.json()["error"]["type"] == "api_error"
                    assert r.json()["error"]["code"] == "service_unavailable"
                    assert int(r.headers["Retry-After"]) >= 1
                assert gw.runtime.chat.d.billing.pending_settles == 2

                # 3. down for longer than the hold's TTL; this process must not release the hold
                time.sleep(max(0.0, TTL_S + 1.0 - (time.monotonic() - t_down)))
                proxy.restore()

                deadline = time.monotonic() + 20
                while gw.runtime.chat.d.billing.pending_settles and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert gw.runtime.chat.d.billing.pending_settles == 0, "the pending settle was never written"
                charges = {e.request_id: -e.amount_micros for e in gw.call(store.ledger(account_id, 100))
                           if e.kind == "charge"}
                assert charges[billed_as] == told_micros and charges[json_id] == json_told
                rows = [r for r in gw.call(store.query_usage(UsageQuery(account_id=account_id, limit=100))).records
                        if r.request_id == billed_as]
                assert len(rows) == 1 and rows[0].cost_micros == told_micros and rows[0].status == 200
                acc = gw.account(account_id)
                assert acc["reserved_micros"] == 0
                assert acc["balance_micros"] == FUNDED - sum(charges.values())
                reservation_state = gw.call(store._db()).fetchval  # noqa: SLF001 - a direct look
                state = gw.call(reservation_state("SELECT state FROM reservations WHERE request_id = $1", billed_as))
                assert state == "settled", "the hold was swept (released unbilled) before its pending settle"

                # 4. new requests recover by themselves
                deadline = time.monotonic() + 15
                while True:
                    r = _post(gw, fresh_key, {"model": SMALL, "messages": [{"role": "user", "content": "hi"}],
                                              "max_tokens": 3})
                    if r.status_code == 200 or time.monotonic() > deadline:
                        break
                    assert r.status_code == 503, r.text
                    time.sleep(0.2)
                assert r.status_code == 200
        finally:
            proxy.stop()

"""Graceful drain on SIGTERM, with a real gateway process (issue 15, item 2).

Requests and streams in flight when SIGTERM arrives finish; the listening socket closes at once (a
new connection is refused, so a balancer moves on); /readyz on a connection that was already open
says 503 "draining"; the usage of every request is written and the money reconciles; the process
exits 0 and logs what it drained. With a short `drain_timeout_s` a stream that outlives it is cut
and the process still exits 0 within the bound.
"""
from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import (MODEL, OUTPUT_MICROS_PER_TOKEN, Admin, FakeUpstream, GatewayProcess,  # noqa: E402
                           bootstrap_admin, wait_until, write_catalog, write_config)

from routerone.store.base import UsageQuery  # noqa: E402
from routerone.store.factory import open_store  # noqa: E402

pytestmark = pytest.mark.slow
BALANCE = 10_000_000
CHUNK_MS = 50


async def start_gateway(tmp: Path, upstream: FakeUpstream, name: str, **settings) -> tuple[GatewayProcess, str]:
    db_url = f"sqlite:///{tmp / (name + '.sqlite')}"
    await bootstrap_admin(db_url)
    config = write_config(tmp / f"{name}.toml", database_url=db_url, upstream_url=upstream.base_url,
                          catalog_path=write_catalog(tmp / "catalog.toml"), log_level="info", **settings)
    gw = GatewayProcess(config, tmp, name).start()
    return await asyncio.to_thread(gw.wait_ready), db_url


async def chat(session: aiohttp.ClientSession, url: str, key: str, *, stream: bool, max_tokens: int,
               content: str = "hello", first_chunk: asyncio.Queue | None = None) -> dict:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
            "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    async with session.post(url + "/v1/chat/completions", json=body,
                            headers={"Authorization": f"Bearer {key}"}) as r:
        if not stream:
            data = await r.json()
            return {"status": r.status, "cost": data.get("usage", {}).get("cost"), "done": r.status == 200,
                    "tokens": data.get("usage", {}).get("completion_tokens")}
        out = {"status": r.status, "cost": None, "done": False, "tokens": 0, "first": asyncio.get_running_loop().time()}
        try:
            async for line in r.content:
                if line.startswith(b"data: [DONE]"):
                    out["done"] = True
                elif line.startswith(b"data: "):
                    if first_chunk is not None and not out["tokens"] and out["cost"] is None:
                        first_chunk.put_nowait(True)
                        first_chunk = None
                    chunk = json.loads(line[6:])
                    if chunk.get("usage"):
                        out["cost"] = chunk["usage"]["cost"]
                    for ch in chunk.get("choices") or []:
                        if (ch.get("delta") or {}).get("content"):
                            out["tokens"] += 1
        except aiohttp.ClientPayloadError:
            pass                                  # cut: reported by done=False
        return out


def refused(port: int) -> bool:
    """True once a new connection is refused. While the listening socket is being closed the kernel
    drops connection requests (server.stop_listening): a connect that times out is not refused yet
    (a short timeout, so the caller sees the refusal soon after the close)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
        return False
    except ConnectionRefusedError:
        return True
    except TimeoutError:
        return False


async def queued_with_data(port: int, n: int) -> bool:
    """At least n established connections to 127.0.0.1:port hold received bytes not yet read
    (/proc/net/tcp: the server's side, in the accept queue or accepted and unread)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    found = 0
    for row in rows:
        f = row.split()
        local_port, state, rx_queue = int(f[1].split(":")[1], 16), f[3], int(f[4].split(":")[1], 16)
        found += local_port == port and state == "01" and rx_queue > 0
    return found >= n


def http_on(sock: socket.socket, path: str) -> tuple[int, bytes]:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in data:
        data += (got := sock.recv(65536))
        assert got, f"connection closed before the answer to {path} ({data!r})"
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
    while len(rest) < length:
        rest += (got := sock.recv(65536))
        assert got, f"connection closed in the answer to {path}"
    return int(head.split()[1]), rest[:length]


async def reconcile(db_url: str, account_id: int, told_micros: int, requests: int) -> dict:
    store = open_store(db_url)
    try:
        acc = await store.get_account(account_id)
        page = await store.query_usage(UsageQuery(account_id=account_id, limit=10_000))
        return {"balance": acc.balance_micros, "reserved": acc.reserved_micros,
                "ledger_sum": await store.ledger_sum(account_id), "usage_rows": len(page.records),
                "usage_cost": page.totals.cost_micros, "open_holds": await store.open_reservations(account_id),
                "want_balance": BALANCE - told_micros, "want_rows": requests}
    finally:
        await store.close()


async def test_sigterm_lets_in_flight_requests_and_streams_finish_then_exits_0(tmp_path):
    with FakeUpstream(chunk_interval_ms=CHUNK_MS) as upstream:
        gw, db_url = await start_gateway(tmp_path, upstream, "drain")
        try:
            async with Admin(gw.url) as admin:
                key, account_id, _ = await admin.new_key(BALANCE)
            idle = socket.create_connection(("127.0.0.1", gw.port))       # an open keep-alive connection
            assert http_on(idle, "/readyz") == (200, b'{"status":"ready"}')
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
                started: asyncio.Queue = asyncio.Queue()
                plain = [asyncio.create_task(chat(s, gw.url, key, stream=False, max_tokens=5,
                                                  content="[[sleep:1500]] hello")) for _ in range(5)]
                streams = [asyncio.create_task(chat(s, gw.url, key, stream=True, max_tokens=20, first_chunk=started))
                           for _ in range(5)]
                for _ in streams:                        # all ten in flight: streams ~1 s, plain 1.5 s
                    await asyncio.wait_for(started.get(), 10)
                # the plain ones too: each has reached the upstream (on a loaded machine a plain request
                # could otherwise still wait to be accepted when the signal comes)
                fake = upstream.app["fake"]

                async def all_ten_upstream() -> bool:
                    return len(fake.requests) >= 10
                assert await wait_until(all_ten_upstream, 10), len(fake.requests)
                t0 = time.monotonic()
                gw.proc.send_signal(signal.SIGTERM)
                while not refused(gw.port):              # stops accepting at once
                    assert time.monotonic() - t0 < 3, "still accepting 3 s after SIGTERM"
                    await asyncio.sleep(0.002)
                status, body = http_on(idle, "/readyz")  # within ACCEPT_GRACE_S on the old connection
                results = await asyncio.gather(*streams, *plain)
            exit_code = await asyncio.to_thread(gw.proc.wait, 20)
            elapsed = time.monotonic() - t0
        finally:
            gw.stop()
        log = gw.log_tail(200)
        told = sum(round(r["cost"] * 1_000_000) for r in results if r["cost"] is not None)
        money = await reconcile(db_url, account_id, told, len(results))
        print(f"FIGURES drain: in_flight=10 (5 streams), statuses={[r['status'] for r in results]}, "
              f"exit={exit_code}, exit_after_s={elapsed:.2f}, readyz_while_draining={status}, money={money}")
        assert (status, json.loads(body)) == (503, {"status": "draining"})
        assert all(r["status"] == 200 and r["done"] for r in results), results
        assert [r["tokens"] for r in results] == [20] * 5 + [5] * 5
        assert told == 5 * 20 * OUTPUT_MICROS_PER_TOKEN + 5 * 5 * OUTPUT_MICROS_PER_TOKEN
        assert exit_code == 0, log
        # the ten, and the /readyz asked on the old connection while draining
        assert "drained: 11 request(s) finished (10 in flight at the signal, 5 of them streams), 0 cut" in log, log
        # usage rows written with their charge (settle_recorded) count too: all ten, none left
        assert "usage records written since start: 10, left unwritten: 0" in log, log
        assert money["balance"] == money["want_balance"] == money["ledger_sum"]
        assert (money["usage_rows"], money["usage_cost"], money["open_holds"], money["reserved"]) == (10, told, 0, 0)


async def test_drain_timeout_cuts_what_outlives_it_and_still_exits_0(tmp_path):
    with FakeUpstream(chunk_interval_ms=CHUNK_MS) as upstream:
        gw, db_url = await start_gateway(tmp_path, upstream, "bound", drain_timeout_s=1.0)
        try:
            async with Admin(gw.url) as admin:
                key, account_id, _ = await admin.new_key(BALANCE)
            async with aiohttp.ClientSession() as s:
                started: asyncio.Queue = asyncio.Queue()
                long_stream = asyncio.create_task(chat(s, gw.url, key, stream=True, max_tokens=100,
                                                       first_chunk=started))  # ~5 s
                await asyncio.wait_for(started.get(), 10)
                t0 = time.monotonic()
                gw.proc.send_signal(signal.SIGTERM)
                result = await long_stream
            exit_code = await asyncio.to_thread(gw.proc.wait, 20)
            elapsed = time.monotonic() - t0
        finally:
            gw.stop()
        log = gw.log_tail(200)
        print(f"FIGURES drain bound: exit={exit_code}, exit_after_s={elapsed:.2f}, tokens={result['tokens']}")
        assert exit_code == 0, log
        assert elapsed < 4.0, f"drain_timeout_s=1 but the process took {elapsed:.2f} s"
        assert not result["done"] and result["tokens"] < 100, result
        assert "drained: 0 request(s) finished (1 in flight at the signal, 1 of them streams), 1 cut after the 1 s bound (1 streams)" in log, log
        # cut and settled for what was sent (session 15: the cut stream's settle loaded the tokenizer,
        # ~1 s, and was cancelled by the shutdown: its hold stayed open, nothing charged or recorded)
        assert 0 < result["tokens"], result
        state = await reconcile(db_url, account_id, 0, 1)
        assert state["open_holds"] == 0 and state["reserved"] == 0, (state, log)
        assert state["usage_rows"] == 1, (state, log)
        charged = BALANCE - state["balance"]
        # at least the tokens the client received, never the whole hold
        assert result["tokens"] * OUTPUT_MICROS_PER_TOKEN <= charged < 100 * OUTPUT_MICROS_PER_TOKEN, (state, result)
        assert state["usage_cost"] == charged and state["ledger_sum"] == state["balance"], state


async def test_connections_waiting_in_the_listen_queue_at_sigterm_are_served_not_reset(tmp_path):
    """A balancer's connection that the kernel accepted but the process had not taken yet carries a
    request: closing the listener would reset it (a failed POST). The process is stopped (SIGSTOP)
    while clients connect and send, then gets SIGTERM and continues: every request is answered."""
    with FakeUpstream() as upstream:
        gw, db_url = await start_gateway(tmp_path, upstream, "backlog")
        try:
            async with Admin(gw.url) as admin:
                key, account_id, _ = await admin.new_key(BALANCE)
            gw.proc.send_signal(signal.SIGSTOP)
            try:
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
                    tasks = [asyncio.create_task(chat(s, gw.url, key, stream=i % 2 == 0, max_tokens=3))
                             for i in range(6)]
                    # connected (kernel backlog) and sent, however long a loaded machine takes for it
                    assert await wait_until(lambda: queued_with_data(gw.port, 6), 20), "the 6 never queued"
                    gw.proc.send_signal(signal.SIGTERM)
                    await asyncio.sleep(0.05)
                    gw.proc.send_signal(signal.SIGCONT)
                    results = await asyncio.wait_for(asyncio.gather(*tasks), 30)
            finally:
                gw.proc.send_signal(signal.SIGCONT)
            exit_code = await asyncio.to_thread(gw.proc.wait, 20)
        finally:
            gw.stop()
        log = gw.log_tail(200)
        print(f"FIGURES drain backlog: statuses={[r['status'] for r in results]}, exit={exit_code}, "
              f"log={[ln for ln in log.splitlines() if 'drain' in ln]}")
        assert [r["status"] for r in results] == [200] * 6 and all(r["done"] for r in results), results
        assert exit_code == 0, log
        assert refused(gw.port)

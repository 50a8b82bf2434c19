"""`serve --workers 2`: one scrape of /metrics reports the whole server (issue 15, item 3).

Requests go out on fresh connections so SO_REUSEPORT spreads them over both workers (the
per-process prefix of x-request-id says which worker answered, for requests and for scrapes).
Every scrape, whichever worker answers it, must count each request exactly once: request counter,
latency histogram (count and buckets), tokens and cost summed over the workers. Then SIGTERM to
the parent: every worker drains and the server exits 0.
"""
from __future__ import annotations

import asyncio
import collections
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import MODEL, Admin, FakeUpstream, bootstrap_admin, write_catalog, write_config  # noqa: E402
from ratelimit_procs import ServeProcess, delete_scopes, isolate_ids, require_redis  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def samples(text: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def by_name(all_samples: dict[tuple, float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in all_samples.items()
               if n == name and all(dict(ls).get(k) == want for k, want in labels.items()))


async def test_one_scrape_counts_every_workers_requests_exactly_once(tmp_path: Path):
    redis_url = require_redis()
    db_path = tmp_path / "workers.sqlite"
    db_url = f"sqlite:///{db_path}"
    await bootstrap_admin(db_url)
    isolate_ids(db_path)
    scopes: list[str] = []
    with FakeUpstream() as upstream:
        config = write_config(tmp_path / "workers.toml", database_url=db_url, upstream_url=upstream.base_url,
                              catalog_path=write_catalog(tmp_path / "catalog.toml"), redis_url=redis_url)
        server = ServeProcess(config, tmp_path, "workers", extra_args=["--workers", "2"])
        try:
            server.start()
            await asyncio.to_thread(server.wait_ready)
            async with Admin(server.url) as admin:
                key, account_id, key_id = await admin.new_key(100_000_000)
            scopes += [f"key:{key_id}", f"acct:{account_id}"]

            answered: collections.Counter[str] = collections.Counter()
            cost_micros = 0

            async def ask(session: aiohttp.ClientSession) -> None:
                nonlocal cost_micros
                async with session.post(server.base_url + "/chat/completions",
                                        headers={"Authorization": f"Bearer {key}"},
                                        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                              "max_tokens": 3}) as r:
                    assert r.status == 200, await r.text()
                    answered[r.headers["x-request-id"][:-10]] += 1
                    cost_micros += int(Decimal(r.headers["x-routerone-cost"]) * 1_000_000)

            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
                # until both workers have answered some; on a loaded machine the second worker may
                # still be starting (not yet listening) when the first answers /readyz
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    await asyncio.gather(*(ask(session) for _ in range(20)))
                    if len(answered) == 2 and min(answered.values()) >= 5:
                        break
                    await asyncio.sleep(0.2)
                sent = sum(answered.values())
                scrapes: dict[str, dict] = {}
                for _ in range(40):                      # a scrape answered by each worker
                    async with session.get(server.url + "/metrics") as r:
                        assert r.status == 200
                        scrapes.setdefault(r.headers["x-request-id"][:-10], samples(await r.text()))
                    if len(scrapes) == 2:
                        break
            figures = {worker: {"requests": by_name(s, "routerone_requests_total", model=MODEL, status="200"),
                                "latency_count": by_name(s, "routerone_request_latency_seconds_count", model=MODEL),
                                "latency_le_inf": by_name(s, "routerone_request_latency_seconds_bucket",
                                                          model=MODEL, le="+Inf"),
                                "completion_tokens": by_name(s, "routerone_tokens_total", model=MODEL,
                                                             kind="completion"),
                                "cost_micros": by_name(s, "routerone_cost_micros_total", model=MODEL)}
                       for worker, s in scrapes.items()}
            print(f"FIGURES metrics across workers: sent={sent} per_worker={dict(answered)} scrapes={figures}")
            assert len(answered) == 2, f"only one worker answered requests: {answered}"
            assert len(scrapes) == 2, "every scrape was answered by the same worker"
            want = {"requests": sent, "latency_count": sent, "latency_le_inf": sent,
                    "completion_tokens": 3 * sent, "cost_micros": cost_micros}
            for worker, got in figures.items():
                assert got == want, (worker, got, want)
            for s in scrapes.values():
                assert ("routerone_usage_queue_depth", ()) in s
                assert ("routerone_billing_rejections", ()) in s

            server.proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(server.proc.wait, 30) == 0, server.log_tail()
            assert server.log_tail(100).count("drained:") == 2, server.log_tail(100)
        finally:
            await asyncio.to_thread(server.stop)
            delete_scopes(redis_url, scopes)

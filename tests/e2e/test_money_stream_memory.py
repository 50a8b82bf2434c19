"""Issue 11 item 7: an abandoned stream drained for billing keeps bounded memory.

A gateway process (SQLite) relays 20 long streams (4,000,000 characters each, from a fast upstream)
whose clients go away after the first bytes; the gateway drains each upstream to its usage and
settles it. The gateway's RSS (VmRSS, and the peak VmHWM, from /proc) is read before and after.
Before the fix every relayed delta stayed in a list until the settle (and a >= 1M-character text
then failed to count, so nothing was settled either); now the text is counted as it passes.
Also runnable as a script for the figures alone: `python tests/e2e/test_money_stream_memory.py`
(MEM_CHARS=12000000 for longer streams). Measured here (2 shared cores, under load), 20 streams:
1M chars +24 MiB, 4M +32 MiB, 12M +39 MiB (the per-concurrency buffers, not the text); before the
fix 4M chars took RSS 201 -> 358 MiB and no stream was settled.
"""
from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

import httpx2
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import Admin, GatewayProcess, bootstrap_admin, write_config  # noqa: E402
from money_procs import SMALL, MisbehavingUpstream, write_money_catalog  # noqa: E402

pytestmark = [pytest.mark.slow]
STREAMS = 20
CHARS = int(os.environ.get("MEM_CHARS", 4_000_000))
DELTA = 256
# Measured (session 12, 2 cores): +29..+51 MiB on this code and on session 11's alike, once +62 in a
# whole-suite CI run (allocator arenas, not text); before the fix +157 MiB. 80 keeps the test
# well below the leak it guards against without failing on the allocator's spread.
MAX_GROWTH_MIB = 80


def _rss_mib(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def measure(tmp_path: Path) -> dict[str, float]:
    db = tmp_path / "r1.db"
    url = f"sqlite:///{db}"
    with MisbehavingUpstream() as upstream:
        cfg = write_config(tmp_path / "gateway.toml", database_url=url, upstream_url=upstream.base_url,
                           catalog_path=write_money_catalog(tmp_path / "catalog.toml"),
                           abandoned_stream_drain_s=120.0)
        await bootstrap_admin(url)
        gw = GatewayProcess(cfg, tmp_path, "memory").start()
        try:
            await asyncio.to_thread(gw.wait_ready)
            async with Admin(gw.url) as admin:
                key, account_id, _ = await admin.new_key(10_000_000)
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx2.AsyncClient(timeout=60) as http:
                # warm up: the tokenizer (a long prompt) and one short stream, so "before" includes them
                r = await http.post(gw.base_url + "/chat/completions", headers=headers, json={
                    "model": SMALL, "max_tokens": 5, "messages": [{"role": "user", "content": "warm " * 2000}]})
                assert r.status_code == 200, r.text
                await asyncio.sleep(0.5)
                before, _ = _rss_mib(gw.proc.pid)

                async def abandon(i: int) -> None:
                    body = {"model": SMALL, "stream": True, "max_tokens": 100, "messages": [
                        {"role": "user", "content": f"stream {i} [[big:{CHARS}]] [[delta:{DELTA}]] [[nousage:1]]"}]}
                    async with http.stream("POST", gw.base_url + "/chat/completions", headers=headers, json=body) as r:
                        assert r.status_code == 200
                        async for _ in r.aiter_bytes():
                            break                       # the client goes away after the first bytes
                t0 = time.monotonic()
                await asyncio.gather(*(abandon(i) for i in range(STREAMS)))

            def settled() -> int:
                with sqlite3.connect(db) as c:
                    return c.execute("SELECT COUNT(*) FROM usage WHERE account_id = ? AND stream = 1",
                                     (account_id,)).fetchone()[0]
            deadline = time.monotonic() + 300
            while settled() < STREAMS and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            drained_s = time.monotonic() - t0
            n = settled()
            await asyncio.sleep(0.5)
            after, peak = _rss_mib(gw.proc.pid)
            with sqlite3.connect(db) as c:
                tokens = c.execute("SELECT MIN(completion_tokens) FROM usage WHERE account_id = ? AND stream = 1",
                                   (account_id,)).fetchone()[0]
        finally:
            gw.stop()
    return {"before": before, "after": after, "peak": peak, "settled": n, "drained_s": drained_s,
            "min_tokens": tokens or 0}


async def test_twenty_abandoned_long_streams_keep_memory_bounded(tmp_path: Path) -> None:
    f = await measure(tmp_path)
    print(f"\nFIGURES abandoned streams: {STREAMS} x {CHARS:,} characters drained and settled in "
          f"{f['drained_s']:.1f}s; gateway RSS before {f['before']:.0f} MiB, after {f['after']:.0f} MiB, "
          f"peak {f['peak']:.0f} MiB")
    assert f["settled"] == STREAMS, "not every abandoned stream was settled with its usage row"
    assert f["min_tokens"] >= CHARS // 6 * 0.9   # the whole stream was drained and counted (6 chars/token)
    assert f["after"] - f["before"] < MAX_GROWTH_MIB
    assert f["peak"] - f["before"] < MAX_GROWTH_MIB * 2


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        print(asyncio.run(measure(Path(d))))

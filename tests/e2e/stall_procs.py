"""A harness for "does one client's expensive request stall everybody else?".

    with stall_gateway(tmp_path, upstream) as gw:            # a real gateway process
        with StallProbe(gw.url, gw.key) as probe:            # another client, in its own process
            status, body = post_raw(gw.url, "/v1/chat/completions", gw.key, huge_body)
        assert probe.max_gap_ms < STALL_LIMIT_MS

The gateway runs as `python -m routerone serve` (billing_procs.GatewayProcess) in front of the
fake OpenAI upstream; the probe (stall_probe.py) is a third process that sends small requests
back to back and reports the longest time between two of its replies. The expensive request's
body is built before the probe starts, and sent with one `sendall` (which does not hold this
process's interpreter lock), so nothing in the test process slows the measurement. `rss_kib`
reads the gateway's resident memory (and `peak_rss_kib` its high-water mark) from /proc.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import asyncio

from billing_procs import ADMIN_KEY, FakeUpstream, GatewayProcess, bootstrap_admin, write_config

__all__ = ["StallProbe", "StallGateway", "stall_gateway", "post_raw", "STALL_LIMIT_MS", "CATALOG"]

STALL_LIMIT_MS = 100.0     # the brief's bar: no client waits longer than this because of another's request
PROBE_SCRIPT = Path(__file__).with_name("stall_probe.py")

CATALOG = """
[[model]]
id = "stall-chat"
provider = "openai"
upstream = "fake-model"
context_window = 100000000
max_output = 1000000
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
quality = 0.5
"""


@dataclass
class StallGateway:
    proc: GatewayProcess
    key: str
    account_id: int
    db_url: str

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def pid(self) -> int:
        assert self.proc.proc is not None
        return self.proc.proc.pid

    def admin(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        return request_json(self.url, method, path, ADMIN_KEY, body)

    def account(self) -> dict:
        return self.admin("GET", f"/admin/accounts/{self.account_id}")[1]["data"]

    def rss_kib(self) -> int:
        return _proc_status_kib(self.pid, "VmRSS")

    def peak_rss_kib(self) -> int:
        return _proc_status_kib(self.pid, "VmHWM")


def _proc_status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def request_json(url: str, method: str, path: str, key: str, body: dict | None = None,
                 timeout_s: float = 30.0) -> tuple[int, dict]:
    raw = json.dumps(body).encode() if body is not None else None
    status, data = post_raw(url, path, key, raw, method=method, timeout_s=timeout_s)
    return status, json.loads(data) if data else {}


def post_raw(url: str, path: str, key: str, body: bytes | None, *, method: str = "POST",
             timeout_s: float = 60.0, headers: dict | None = None) -> tuple[int, bytes]:
    """One request on a fresh connection; the whole body in one send. (status, response body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        hdrs = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@contextlib.contextmanager
def stall_gateway(tmp: Path, upstream: FakeUpstream, balance_micros: int = 100_000_000,
                  **settings) -> Iterator[StallGateway]:
    """A gateway process (SQLite, the fake upstream as `openai`, model `stall-chat`) and a funded key."""
    db_url = f"sqlite:///{tmp / 'stall.sqlite'}"
    asyncio.run(bootstrap_admin(db_url))
    catalog = tmp / "catalog.toml"
    catalog.write_text(CATALOG)
    config = write_config(tmp / "stall.toml", database_url=db_url, upstream_url=upstream.base_url,
                          catalog_path=catalog, **settings)
    proc = GatewayProcess(config, tmp, "stall").start()
    try:
        proc.wait_ready()
        _, acc = request_json(proc.url, "POST", "/admin/accounts", ADMIN_KEY,
                              {"name": "stall", "balance_micros": balance_micros})
        _, key = request_json(proc.url, "POST", "/admin/keys", ADMIN_KEY, {"account_id": acc["data"]["id"]})
        yield StallGateway(proc, key["data"]["key"], acc["data"]["id"], db_url)
    finally:
        proc.stop()


class StallProbe:
    """The other client: started (and warmed up) on enter; `max_gap_ms` after exit."""

    def __init__(self, url: str, key: str, settle_s: float = 0.3) -> None:
        self.url, self.key, self.settle_s = url, key, settle_s
        self.proc: subprocess.Popen | None = None
        self.result: dict = {}
        self.window_s = 0.0                # how long it measured (from ready to the end of the block)

    def __enter__(self) -> "StallProbe":
        self.proc = subprocess.Popen([sys.executable, str(PROBE_SCRIPT), self.url, self.key],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"probe did not start: {line!r}"
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        time.sleep(self.settle_s)          # a stall that outlives the expensive request's reply counts too
        self.window_s = time.monotonic() - self._t0
        out, _ = self.proc.communicate("", timeout=60)
        self.result = json.loads(out.strip().splitlines()[-1])

    @property
    def max_gap_ms(self) -> float:
        return self.result["max_gap_ms"]

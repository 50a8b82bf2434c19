"""Helpers for the billing end-to-end tests: real gateway processes, a throwaway PostgreSQL database,
a fake upstream, an operator catalog where only output tokens cost, and an async admin client.

Gateways run as `python -m routerone --config FILE serve --port P`, separate OS processes, so the
proofs cover what a deployment runs (several processes on one database), not an in-process shortcut.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from routerone.settings import Settings
from routerone.testing import fake_openai
from routerone.testing.harness import ADMIN_KEY
from routerone.testing.threaded import ThreadedServer

__all__ = ["ADMIN_KEY", "MODEL", "OUTPUT_MICROS_PER_TOKEN", "MAX_OUTPUT", "PRICED_MODEL",
           "PRICED_INPUT_MICROS_PER_TOKEN", "fake_prompt_tokens", "PG_URL", "FakeUpstream",
           "GatewayProcess", "Admin", "pg_database", "require_postgres", "write_catalog", "write_config",
           "free_port", "bootstrap_admin", "cost_header_micros", "usage_cost_micros", "has_setting",
           "SEED_402", "wait_until", "billing_id"]

PG_URL = os.environ.get("ROUTERONE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_PROBE_TIMEOUT_S = 3.0

# The test model: input tokens free, output $10 / 1M tokens = 10 micro-dollars per token, so the
# worst case (max_tokens * output price) is exactly what the fake upstream (which generates exactly
# max_tokens) costs. Without max_tokens the worst case is MAX_OUTPUT tokens, the reply 12 tokens.
MODEL = "r1-billing-test"
OUTPUT_MICROS_PER_TOKEN = 10
MAX_OUTPUT = 100
# A second model where input tokens cost too (3 micro-dollars each), for exact-charge checks that
# must include the prompt as the upstream counted it.
PRICED_MODEL = "r1-billing-test-priced"
PRICED_INPUT_MICROS_PER_TOKEN = 3

SEED_402 = {"error": {"message": "Insufficient balance", "type": "billing_error", "param": None,
                      "code": "insufficient_balance"}}


# -- PostgreSQL -----------------------------------------------------------------------------------
def _with_db(url: str, database: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + database, p.query, p.fragment))


async def _probe(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=PG_PROBE_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def require_postgres() -> None:
    """Skip (printing why) when PostgreSQL is unreachable; fail instead when CI is set."""
    problem = asyncio.run(_probe(_with_db(PG_URL, "postgres")))
    if problem is None:
        return
    reason = f"PostgreSQL unreachable at {PG_URL} ({problem}); set ROUTERONE_TEST_PG_URL"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}. CI is set, so the multi-process billing proofs must run.", pytrace=False)
    print(f"SKIP: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh database `routerone_test_<random>` (created from the `postgres` database), dropped
    afterwards even if gateways still hold connections. Yields its URL."""
    require_postgres()
    name = f"routerone_test_{uuid.uuid4().hex[:12]}"
    admin_url = _with_db(PG_URL, "postgres")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin_url, timeout=PG_PROBE_TIMEOUT_S)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_db(PG_URL, name)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- configuration ---------------------------------------------------------------------------------
def has_setting(name: str) -> bool:
    return any(f.name == name for f in dataclasses.fields(Settings))


def write_catalog(path: Path) -> Path:
    path.write_text(f"""
[[model]]
id = "{MODEL}"
provider = "openai"
upstream = "fake-model"
context_window = 128000
max_output = {MAX_OUTPUT}
input_usd_per_mtok = "0"
output_usd_per_mtok = "{OUTPUT_MICROS_PER_TOKEN}"
quality = 0.5

[[model]]
id = "{PRICED_MODEL}"
provider = "openai"
upstream = "fake-model"
context_window = 128000
max_output = {MAX_OUTPUT}
input_usd_per_mtok = "{PRICED_INPUT_MICROS_PER_TOKEN}"
output_usd_per_mtok = "{OUTPUT_MICROS_PER_TOKEN}"
quality = 0.4
""")
    return path


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, *, database_url: str, upstream_url: str, catalog_path: Path,
                 **settings: Any) -> Path:
    """A gateway config file: the fake upstream as the `openai` provider, demo off."""
    values = {"database_url": database_url, "catalog_path": str(catalog_path), "demo": "off",
              "usage_flush_interval_s": 0.05, "log_level": "warning", **settings}
    lines = [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    lines += ["", "[providers.openai]", f'api_key = "sk-fake-upstream"', f'base_url = "{upstream_url}"']
    path.write_text("\n".join(lines) + "\n")
    return path


async def bootstrap_admin(database_url: str) -> None:
    """Migrate and create the admin key before the gateways start, so that processes starting
    together do not race on it (see the bootstrap note in test_billing_concurrency.py)."""
    from routerone.services.accounts import AccountsService
    from routerone.store.factory import open_store
    store = open_store(database_url)
    try:
        await store.migrate()
        await AccountsService(store).bootstrap_admin(ADMIN_KEY)
    finally:
        await store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- processes and servers --------------------------------------------------------------------------
class FakeUpstream(ThreadedServer):
    """The fake OpenAI upstream on a real socket in a background thread."""

    def __init__(self, **options: Any) -> None:
        super().__init__(lambda: fake_openai.make_app(**options))

    @property
    def base_url(self) -> str:
        return self.url + "/v1"


class GatewayProcess:
    """`python -m routerone --config FILE serve --port P` as its own OS process."""

    def __init__(self, config: Path, log_dir: Path, name: str) -> None:
        self.config, self.name = config, name
        self.port = free_port()
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self) -> "GatewayProcess":
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTERONE_")}
        env["ROUTERONE_ADMIN_KEY"] = ADMIN_KEY
        for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
            env.pop(var, None)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "routerone", "--config", str(self.config), "serve", "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> "GatewayProcess":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"gateway {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"gateway {self.name} not ready after {timeout_s}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no settle, no sweep."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


# -- admin API --------------------------------------------------------------------------------------
class Admin:
    """Async client for the admin API (and any other JSON endpoint) of one gateway."""

    def __init__(self, url: str, key: str = ADMIN_KEY) -> None:
        self.url, self.key = url, key
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Admin":
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._session is not None
        await self._session.close()

    async def call(self, method: str, path: str, body: dict | None = None, *,
                   key: str | None = None) -> tuple[int, dict]:
        assert self._session is not None
        async with self._session.request(method, self.url + path, json=body,
                                         headers={"Authorization": f"Bearer {key or self.key}"}) as r:
            return r.status, await r.json(content_type=None)

    async def ok(self, method: str, path: str, body: dict | None = None, *, key: str | None = None) -> Any:
        status, data = await self.call(method, path, body, key=key)
        assert status == 200, f"{method} {path} -> {status}: {data}"
        return data["data"]

    async def new_key(self, balance_micros: int, *, markup_bps: int = 0, **key_opts: Any) -> tuple[str, int, int]:
        """A fresh account with `balance_micros` and a user key on it: (secret, account_id, key_id)."""
        acc = await self.ok("POST", "/admin/accounts", {"name": f"acct-{uuid.uuid4().hex[:6]}",
                                                        "balance_micros": balance_micros,
                                                        "markup_bps": markup_bps})
        key = await self.ok("POST", "/admin/keys", {"account_id": acc["id"], **key_opts})
        return key["key"], acc["id"], key["id"]

    async def account(self, account_id: int) -> dict:
        return await self.ok("GET", f"/admin/accounts/{account_id}")

    async def ledger(self, account_id: int) -> list[dict]:
        return await self.ok("GET", f"/admin/accounts/{account_id}/ledger?limit=100000")

    async def usage(self, account_id: int, expect: int | None = None, timeout_s: float = 10.0) -> dict:
        """Usage page for the account; with `expect`, wait until that many records are written
        (they are flushed off the hot path)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, page = await self.call("GET", f"/admin/usage?account_id={account_id}&limit=100000")
            assert status == 200, page
            if expect is None or len(page["data"]) >= expect or time.monotonic() > deadline:
                return page
            await asyncio.sleep(0.05)


async def wait_until(pred, timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await pred():
            return True
        await asyncio.sleep(interval_s)
    return bool(await pred())


def fake_prompt_tokens(prompt: str) -> int:
    """Prompt tokens as the fake upstream reports them for one user message (o200k, at least 1)."""
    from routerone.tokens import count_text_tokens
    return max(1, count_text_tokens(prompt))


# -- money on the wire --------------------------------------------------------------------------------
def billing_id(headers) -> str:
    """The id Router One bills a request under (ledger `request_id`, usage record): its own
    `x-routerone-request-id`; `x-request-id` echoes the caller's id when the caller sent one."""
    return headers.get("x-routerone-request-id") or headers["x-request-id"]


def cost_header_micros(value: str) -> int:
    """`x-routerone-cost: 0.000050` -> 50."""
    d = Decimal(value) * 1_000_000
    assert d == d.to_integral_value(), value
    return int(d)


def usage_cost_micros(usage: Any) -> int:
    """`usage.cost` (USD, an extra field on the SDK's CompletionUsage) -> micro-dollars."""
    extra = getattr(usage, "model_extra", None) or {}
    cost = extra.get("cost", getattr(usage, "cost", None))
    assert cost is not None, f"usage has no cost: {usage!r}"
    return int(round(Decimal(str(cost)) * 1_000_000))

"""Helpers for the rate-limit end-to-end tests (issue 5): Redis availability, a private Redis key
namespace per test run, gateway processes with extra `serve` arguments (`--workers N`), and the
parsing of OpenAI's rate-limit headers.

Builds on billing_procs.py (fake upstream, config/catalog files, admin client, process handling).

Redis namespace: the Redis limiter keeps its state under `ro:rl:v1:<scope>:...` with scopes
`key:<key id>` and `acct:<account id>`, and has no per-deployment prefix option. A fresh database
numbers keys from 1, so two test runs (or another engineer's tests) on the same Redis would share
buckets. `isolate_ids` therefore moves the database's id sequences to a random high start, which
gives every run its own scopes, and `delete_scopes` removes exactly those scopes' keys afterwards
(SCAN + DEL on our own patterns; never FLUSHALL/FLUSHDB).
"""
from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

import pytest
import redis

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import ADMIN_KEY, GatewayProcess  # noqa: E402

from routerone.limits import KEY_PREFIX  # noqa: E402

__all__ = ["REDIS_URL", "SEED_429", "require_redis", "isolate_ids", "delete_scopes", "ServeProcess",
           "run_cli", "parse_duration_s", "routerone_env"]

REDIS_URL = os.environ.get("ROUTERONE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_PROBE_TIMEOUT_S = 2.0

# The seed's 429 body, plus the `"param": null` Router One adds to every error.
SEED_429 = {"error": {"message": "Rate limit exceeded", "type": "rate_limit_error", "param": None,
                      "code": "rate_limit_exceeded"}}


# -- Redis ----------------------------------------------------------------------------------------
def _redis_problem(url: str) -> str | None:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_PROBE_TIMEOUT_S,
                                      socket_timeout=REDIS_PROBE_TIMEOUT_S)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def require_redis() -> str:
    """The Redis URL; skips (printing why) when Redis is unreachable, fails instead when CI is set."""
    problem = _redis_problem(REDIS_URL)
    if problem is None:
        return REDIS_URL
    reason = (f"Redis unreachable at {REDIS_URL} ({problem}); start redis-server or set "
              f"ROUTERONE_TEST_REDIS_URL")
    if os.environ.get("CI"):
        pytest.fail(f"{reason}. CI is set, so the multi-instance rate-limit proofs must run.", pytrace=False)
    print(f"SKIP: {reason}")
    pytest.skip(reason)


def isolate_ids(sqlite_path: str | Path) -> int:
    """Make accounts and keys created from now on in this SQLite database get ids above a random
    start (so their limiter scopes `key:<id>` / `acct:<id>` are this run's alone). Needs the schema
    (run the migrations first). Returns the start."""
    start = random.SystemRandom().randrange(10**9, 10**12)
    db = sqlite3.connect(str(sqlite_path), timeout=30)
    try:
        with db:
            for table in ("accounts", "api_keys"):
                cur = db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (start, table))
                if cur.rowcount == 0:
                    db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, start))
    finally:
        db.close()
    return start


def delete_scopes(url: str, scopes: Iterable[str]) -> int:
    """Delete the limiter's keys of exactly these scopes (e.g. "key:123"); returns how many."""
    client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_PROBE_TIMEOUT_S)
    deleted = 0
    try:
        for scope in scopes:
            keys = list(client.scan_iter(match=f"{KEY_PREFIX}{scope}:*", count=1000))
            if keys:
                deleted += client.delete(*keys)
    finally:
        client.close()
    return deleted


# -- processes ------------------------------------------------------------------------------------
def routerone_env(**extra: str) -> dict[str, str]:
    """The environment for a gateway process: no ROUTERONE_* or provider keys leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTERONE_")}
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        env.pop(var, None)
    env["ROUTERONE_ADMIN_KEY"] = ADMIN_KEY
    env.update(extra)
    return env


class ServeProcess(GatewayProcess):
    """`python -m routerone --config FILE serve --port P [extra args]` as its own OS process (and
    session). `stop()` also ends any worker process it spawned that outlived it (by pid)."""

    def __init__(self, config: Path, log_dir: Path, name: str, *, extra_args: Sequence[str] = ()) -> None:
        super().__init__(config, log_dir, name)
        self.extra_args = list(extra_args)
        self.worker_pids: set[int] = set()

    def start(self) -> "ServeProcess":
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "routerone", "--config", str(self.config), "serve",
             "--port", str(self.port), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=routerone_env(), start_new_session=True)
        log.close()
        return self

    def children(self) -> set[int]:
        """Pids of the direct children, remembered for stop(): the workers of `--workers N` and
        multiprocessing's helper (its resource tracker)."""
        found: set[int] = set()
        if self.proc is not None:
            for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
                try:
                    found.update(int(p) for p in (task / "children").read_text().split())
                except OSError:
                    pass
        self.worker_pids |= found
        return found

    def workers(self) -> set[int]:
        """Pids of the worker processes (children started by multiprocessing's spawn)."""
        return {pid for pid in self.children() if "spawn_main" in _cmdline(pid)}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.children()
        super().stop()
        deadline = time.monotonic() + 10
        for pid in self.worker_pids:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def run_cli(config: Path, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """Run `python -m routerone --config FILE ARGS...` to completion."""
    return subprocess.run([sys.executable, "-m", "routerone", "--config", str(config), *args],
                          capture_output=True, text=True, env=routerone_env(), timeout=timeout_s)


# -- headers --------------------------------------------------------------------------------------
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?")


def parse_duration_s(value: str) -> float:
    """OpenAI's x-ratelimit-reset-* value (Go duration: "0s", "20ms", "1.5s", "6m0s") -> seconds."""
    m = _DURATION.fullmatch(value)
    assert m and value, f"not a duration: {value!r}"
    h, mi, s, ms = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0) + int(ms or 0) / 1000

"""Issue 5 "done when", multi-instance: limits hold exactly across gateway processes sharing Redis.

Three `python -m routerone serve` processes (separate OS processes, different ports) share one Redis
and one SQLite database file. A key limited to R requests per minute receives 5xR concurrent requests
spread over the three: exactly R succeed, the rest get the seed's 429 with a Retry-After that says
when the window frees. The same for a TPM limit in tokens, and for a concurrency limit. Finally
`serve --workers 2` refuses to start with the per-process limiter (`limiter = "memory"`) and, with
Redis or without it (the shared-memory limiter), serves from two processes on one port (SO_REUSEPORT)
that share the limits.

The production window (60 s) is used throughout; nothing here waits for it to pass (see
test_rate_limits.py for the short-window tests). Figures are printed on lines starting with
`FIGURES` (run with `pytest -s`).
"""
from __future__ import annotations

import asyncio
import collections
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import (MODEL, Admin, FakeUpstream, bootstrap_admin, free_port, write_catalog,  # noqa: E402
                           write_config)
from ratelimit_procs import (SEED_429, ServeProcess, delete_scopes, isolate_ids,  # noqa: E402
                             parse_duration_s, require_redis, run_cli)

from routerone.tokens import count_prompt_tokens, count_text_tokens  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.redis]

WINDOW_S = 60                 # the production window: make_limiter has no window override
BALANCE_MICROS = 100_000_000  # $100: billing never refuses here (the catalog's output price is $10/M)
N_GATEWAYS = 3


# -- the cluster: three gateway processes, one Redis, one SQLite file --------------------------------
@dataclass
class Cluster:
    redis_url: str
    db_path: Path
    gateways: list[ServeProcess]
    scopes: list[str] = field(default_factory=list)   # limiter scopes this run created (for cleanup)

    @property
    def admin_url(self) -> str:
        return self.gateways[0].url

    async def new_key(self, **limits: int) -> tuple[str, int]:
        """A funded account and a key on it with these limits: (secret, key id)."""
        async with Admin(self.admin_url) as admin:
            secret, account_id, key_id = await admin.new_key(BALANCE_MICROS, **limits)
        self.scopes += [f"key:{key_id}", f"acct:{account_id}"]
        return secret, key_id

    async def fallback_events(self) -> list[int]:
        """routerone_limiter_fallback_events of every gateway (0: Redis decided every request)."""
        out = []
        async with aiohttp.ClientSession() as s:
            for gw in self.gateways:
                async with s.get(gw.url + "/metrics") as r:
                    text = await r.text()
                m = re.search(r"^routerone_limiter_fallback_events\S*\s+(\S+)$", text, re.M)
                assert m, "no routerone_limiter_fallback_events metric"
                out.append(int(float(m.group(1))))
        return out


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, upstream: FakeUpstream) -> Iterator[Cluster]:
    redis_url = require_redis()
    tmp = tmp_path_factory.mktemp("ratelimit-cluster")
    db_path = tmp / "shared.sqlite"
    db_url = f"sqlite:///{db_path}"
    asyncio.run(bootstrap_admin(db_url))        # migrate + admin key before three processes start
    isolate_ids(db_path)                        # this run's own Redis scopes
    config = write_config(tmp / "gateway.toml", database_url=db_url, upstream_url=upstream.base_url,
                          catalog_path=write_catalog(tmp / "catalog.toml"), redis_url=redis_url)
    gateways = [ServeProcess(config, tmp, f"gw{i}") for i in range(N_GATEWAYS)]
    cl = Cluster(redis_url, db_path, gateways)
    try:
        for gw in gateways:
            gw.start()
        for gw in gateways:
            gw.wait_ready()
        yield cl
    finally:
        for gw in gateways:
            gw.stop()
        delete_scopes(redis_url, cl.scopes)


# -- one request, recorded --------------------------------------------------------------------------
@dataclass
class Outcome:
    gateway: int
    status: int                    # 200, 429, or -1 for anything unexpected (see `error`)
    headers: dict[str, str]
    done_s: float                  # seconds since the burst started
    body: Any = None               # the SDK's exc.body for errors
    completion_tokens: int | None = None
    error: str | None = None


async def send(client: AsyncOpenAI, gateway: int, t0: float, content: str, max_tokens: int) -> Outcome:
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=max_tokens)
        completion = raw.parse()
        return Outcome(gateway, 200, dict(raw.headers), time.monotonic() - t0,
                       completion_tokens=completion.usage.completion_tokens)
    except openai.RateLimitError as exc:
        return Outcome(gateway, 429, dict(exc.response.headers), time.monotonic() - t0, body=exc.body)
    except Exception as exc:  # noqa: BLE001 - reported by the assertions with the rest
        return Outcome(gateway, -1, {}, time.monotonic() - t0, error=f"{type(exc).__name__}: {exc}")


async def burst(clients: list[AsyncOpenAI], n: int, content: str, max_tokens: int) -> tuple[list[Outcome], float]:
    """n concurrent requests, request i to gateway i % len(clients); (outcomes, wall seconds).
    Each client opens a connection first (GET /v1/models, not rate limited), so that no gateway
    starts the burst late."""
    await asyncio.gather(*(c.models.list() for c in clients))
    t0 = time.monotonic()
    outcomes = await asyncio.gather(*(send(clients[i % len(clients)], i % len(clients), t0, content, max_tokens)
                                      for i in range(n)))
    return list(outcomes), time.monotonic() - t0


def clients_for(cluster: Cluster, make_async_openai_client, key: str) -> list[AsyncOpenAI]:
    return [make_async_openai_client(gw.base_url, api_key=key, max_retries=0) for gw in cluster.gateways]


def check_429s(denied: list[Outcome], *, window_s: float) -> list[int]:
    """Every 429: the seed's body, an integer Retry-After >= 1 that is consistent with the window:
    the earliest admission was at or after the burst started, so capacity frees no earlier than
    `window_s - done_s` from the reply, and no later than a whole window. Returns the values."""
    values = []
    for o in denied:
        assert o.body == SEED_429["error"], o.body
        ra = o.headers.get("retry-after")
        assert ra is not None and ra.isdigit(), f"Retry-After must be whole seconds, got {ra!r}"
        value = int(ra)
        assert 1 <= value <= window_s, value
        assert value >= math.floor(window_s - o.done_s), (value, o.done_s)
        values.append(value)
    return values


def figures(label: str, **values: Any) -> None:
    print(f"FIGURES {label}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def split(outcomes: list[Outcome]) -> tuple[list[Outcome], list[Outcome]]:
    others = [o for o in outcomes if o.status not in (200, 429)]
    assert not others, f"unexpected outcomes: {[o.error for o in others][:5]}"
    return [o for o in outcomes if o.status == 200], [o for o in outcomes if o.status == 429]


def per_gateway(outcomes: list[Outcome]) -> str:
    c = collections.Counter(o.gateway for o in outcomes)
    return "/".join(str(c.get(i, 0)) for i in range(N_GATEWAYS))


# The admitted requests of a burst wait upstream for the test's release (fake_openai's [[hold:ms]]),
# so "a 429 came without waiting for the upstream" is "it came before the release", on any machine.
DENIALS_WAIT_S = 15.0   # how long burst_held waits for the denials before it releases the upstream
HOLD_MAX_MS = 25_000    # the upstream's own bound on a hold: later than any release
HOLD = f"[[hold:{HOLD_MAX_MS}]]"


def assert_denied_while_held(ok: list[Outcome], denied: list[Outcome], release_s: float) -> None:
    """Every 429 came while the admitted requests were held upstream (a 429 that waited for the
    upstream would have come after the release), and the admitted ones were held until then."""
    assert all(o.done_s < release_s for o in denied), \
        ("a 429 waited for the slow upstream", release_s, sorted(round(o.done_s, 3) for o in denied))
    assert all(o.done_s > release_s for o in ok), "an admitted request was not held by the upstream"


# -- 1. RPM: exactly R of 5xR ---------------------------------------------------------------------
R = 20


async def test_rpm_exactly_r_succeed_across_three_gateways(cluster: Cluster, make_async_openai_client):
    key, key_id = await cluster.new_key(rpm=R)
    clients = clients_for(cluster, make_async_openai_client, key)
    outcomes, wall = await burst(clients, 5 * R, "count me", max_tokens=5)
    ok, denied = split(outcomes)
    retry_afters = check_429s(denied, window_s=WINDOW_S) if len(ok) == R else []
    figures("rpm", R=R, gateways=N_GATEWAYS, requests=len(outcomes), successes=len(ok), rate_limited=len(denied),
            ok_per_gateway=per_gateway(ok), denied_per_gateway=per_gateway(denied),
            retry_after=dict(sorted(collections.Counter(retry_afters).items())), wall_s=f"{wall:.3f}")
    assert len(ok) == R, f"{len(ok)} of {5 * R} succeeded, want exactly {R}"
    assert len(denied) == 4 * R
    assert all(o.completion_tokens == 5 for o in ok)
    # headers: every admission saw its own count, so the successes' remaining values are R-1 .. 0
    assert sorted(int(o.headers["x-ratelimit-remaining-requests"]) for o in ok) == list(range(R))
    for o in ok + denied:
        assert o.headers["x-ratelimit-limit-requests"] == str(R)
        assert 0 < parse_duration_s(o.headers["x-ratelimit-reset-requests"]) <= WINDOW_S
        assert "x-ratelimit-limit-tokens" not in o.headers      # no tpm on this key
    assert all(o.headers["x-ratelimit-remaining-requests"] == "0" for o in denied)
    assert await cluster.fallback_events() == [0] * N_GATEWAYS, "a gateway decided without Redis"


# -- 1b. TPM: exactly k, in tokens ----------------------------------------------------------------
K = 5
TPM_MAX_TOKENS = 40
# The fake upstream holds the k admitted requests (HOLD) until the test releases them, which it does
# once every other request has its answer: so no give-back (release lowers a reservation to the
# tokens actually used) happens during the burst, and a 429 that waited for the upstream would come
# only after the release (after DENIALS_WAIT_S), however slow or loaded the machine is.
# Long enough (>= EXACT_COUNT_MIN_BYTES) that the gateway counts it exactly rather than bounding it
# by its byte length, so the give-back per request is small and the arithmetic below is tight.
TPM_CONTENT = "how many tokens does this take? " * 130 + HOLD


async def burst_held(clients: list[AsyncOpenAI], upstream: FakeUpstream, n: int, n_answered_first: int,
                     content: str, max_tokens: int) -> tuple[list[Outcome], float, float, int]:
    """Like burst(), for a content with HOLD: once n_answered_first requests have their answer (or
    DENIALS_WAIT_S passed), release the held upstream calls. Returns (outcomes, wall seconds,
    seconds from the burst's start to the release, how many upstream calls the release let go)."""
    await asyncio.gather(*(c.models.list() for c in clients))
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(send(clients[i % len(clients)], i % len(clients), t0, content, max_tokens))
             for i in range(n)]
    pending: set[asyncio.Future] = set(tasks)
    deadline = t0 + DENIALS_WAIT_S
    while n - len(pending) < n_answered_first and (left := deadline - time.monotonic()) > 0:
        _, pending = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
    release_s = time.monotonic() - t0
    async with aiohttp.ClientSession() as s:
        async with s.post(upstream.url + "/_control/release") as r:
            released = (await r.json())["released"]
    outcomes = await asyncio.gather(*tasks)
    return list(outcomes), time.monotonic() - t0, release_s, released


async def test_tpm_exactly_k_succeed_across_three_gateways(cluster: Cluster, upstream: FakeUpstream,
                                                           make_async_openai_client):
    # what the gateway reserves per request: its prompt estimate + max_tokens (routerone.tokens)
    per_request = count_prompt_tokens(TPM_CONTENT, 1) + TPM_MAX_TOKENS
    used = count_text_tokens(TPM_CONTENT) + TPM_MAX_TOKENS     # what the fake upstream reports
    tpm = K * per_request
    # even after every admitted request gave its surplus back, another would not fit
    assert K * (per_request - used) < per_request
    key, key_id = await cluster.new_key(tpm=tpm)
    clients = clients_for(cluster, make_async_openai_client, key)
    outcomes, wall, release_s, released = await burst_held(clients, upstream, 5 * K, 4 * K, TPM_CONTENT,
                                                            max_tokens=TPM_MAX_TOKENS)
    ok, denied = split(outcomes)
    retry_afters = check_429s(denied, window_s=WINDOW_S) if len(ok) == K else []
    figures("tpm", tpm=tpm, tokens_per_request=per_request, k=K, gateways=N_GATEWAYS, requests=len(outcomes),
            successes=len(ok), rate_limited=len(denied), ok_per_gateway=per_gateway(ok),
            denied_per_gateway=per_gateway(denied),
            retry_after=dict(sorted(collections.Counter(retry_afters).items())),
            last_429_s=f"{max((o.done_s for o in denied), default=0):.3f}", release_s=f"{release_s:.3f}",
            held_at_release=released, wall_s=f"{wall:.3f}")
    assert len(ok) == K, f"{len(ok)} of {5 * K} succeeded, want exactly {K} (tpm {tpm} = {K} x {per_request})"
    assert len(denied) == 4 * K
    assert all(o.completion_tokens == TPM_MAX_TOKENS for o in ok)
    assert sorted(int(o.headers["x-ratelimit-remaining-tokens"]) for o in ok) == \
        [i * per_request for i in range(K)]
    for o in ok + denied:
        assert o.headers["x-ratelimit-limit-tokens"] == str(tpm)
        assert 0 < parse_duration_s(o.headers["x-ratelimit-reset-tokens"]) <= WINDOW_S
        assert "x-ratelimit-limit-requests" not in o.headers    # no rpm on this key
    # the 429s came while the admitted requests were held upstream, so nothing had been given back yet
    assert_denied_while_held(ok, denied, release_s)
    assert all(o.headers["x-ratelimit-remaining-tokens"] == "0" for o in denied)
    assert await cluster.fallback_events() == [0] * N_GATEWAYS, "a gateway decided without Redis"


# -- concurrency across processes ---------------------------------------------------------------------
async def test_concurrency_limit_holds_across_gateways(cluster: Cluster, upstream: FakeUpstream,
                                                       make_async_openai_client):
    key, _ = await cluster.new_key(concurrency=2)
    clients = clients_for(cluster, make_async_openai_client, key)
    outcomes, wall, release_s, released = await burst_held(clients, upstream, 6, 4, "slow one " + HOLD,
                                                            max_tokens=3)
    ok, denied = split(outcomes)
    figures("concurrency", concurrency=2, gateways=N_GATEWAYS, requests=6, successes=len(ok),
            rate_limited=len(denied), retry_after=[o.headers.get("retry-after") for o in denied],
            last_429_s=f"{max((o.done_s for o in denied), default=0):.3f}", release_s=f"{release_s:.3f}",
            held_at_release=released, wall_s=f"{wall:.3f}")
    assert len(ok) == 2 and len(denied) == 4
    for o in denied:
        assert o.body == SEED_429["error"]
        assert o.headers["retry-after"] == "1"
    assert_denied_while_held(ok, denied, release_s)     # refused at once, not queued behind the slow ones
    # the leases were given back when the calls ended: two more fit at once, on any gateways
    again, _ = await burst(clients[1:], 2, "slow one [[sleep:300]]", max_tokens=3)
    assert [o.status for o in again] == [200, 200], [o.error or o.body for o in again]


SEQUENTIAL_MAX = 1500


async def test_concurrency_one_sequential_requests_never_collide(cluster: Cluster, make_async_openai_client):
    """A client that waits for each reply never trips concurrency=1, even when its next request
    goes to another process: the lease must be gone (in Redis) by the time the reply is read.
    Stops at the first refusal; SEQUENTIAL_MAX requests without one pass."""
    key, _ = await cluster.new_key(concurrency=1)
    clients = clients_for(cluster, make_async_openai_client, key)
    t0 = time.monotonic()
    for i in range(SEQUENTIAL_MAX):
        o = await send(clients[i % N_GATEWAYS], i % N_GATEWAYS, t0, "one at a time", 3)
        if o.status != 200:
            figures("sequential-concurrency-1", requests=i + 1, first_refusal_at=i, status=o.status,
                    body=o.body, retry_after=o.headers.get("retry-after"))
        assert o.status == 200, f"request {i} (gateway {o.gateway}, after a completed one) -> {o.status} {o.body}"
    figures("sequential-concurrency-1", requests=SEQUENTIAL_MAX, refusals=0)


# -- 5. serve --workers -----------------------------------------------------------------------------
def test_workers_with_the_per_process_limiter_exit_with_a_clear_message(tmp_path: Path, upstream: FakeUpstream):
    config = write_config(tmp_path / "no-redis.toml", database_url=f"sqlite:///{tmp_path / 'w.sqlite'}",
                          upstream_url=upstream.base_url, catalog_path=write_catalog(tmp_path / "catalog.toml"),
                          limiter="memory")
    done = run_cli(config, "serve", "--port", str(free_port()), "--workers", "2", timeout_s=60)
    assert done.returncode != 0, (done.returncode, done.stdout, done.stderr)
    assert "--workers" in done.stderr and '"memory"' in done.stderr, done.stderr
    assert '"auto"' in done.stderr and "redis" in done.stderr.lower(), done.stderr   # what to set instead
    assert "listening" not in done.stdout.lower()


@pytest.mark.parametrize("limiter", ["redis", "shared"])
async def test_two_workers_share_one_port_and_the_limits(tmp_path: Path, upstream: FakeUpstream,
                                                         make_async_openai_client, limiter: str):
    """With Redis, or (no redis_url, limiter = "auto") through the shared-memory limiter."""
    redis_url = require_redis() if limiter == "redis" else None
    db_path = tmp_path / "workers.sqlite"
    db_url = f"sqlite:///{db_path}"
    await bootstrap_admin(db_url)
    isolate_ids(db_path)
    config = write_config(tmp_path / "workers.toml", database_url=db_url, upstream_url=upstream.base_url,
                          catalog_path=write_catalog(tmp_path / "catalog.toml"),
                          **({"redis_url": redis_url} if redis_url else {}))
    server = ServeProcess(config, tmp_path, "workers", extra_args=["--workers", "2"])
    scopes: list[str] = []
    try:
        server.start()
        await asyncio.to_thread(server.wait_ready)
        async with Admin(server.url) as admin:
            key, account_id, key_id = await admin.new_key(BALANCE_MICROS)
            limited, account2, key2 = await admin.new_key(BALANCE_MICROS, rpm=4)
        scopes += [f"key:{key_id}", f"acct:{account_id}", f"key:{key2}", f"acct:{account2}"]
        workers = server.workers()
        assert len(workers) == 2, f"want 2 worker processes, found {workers}"

        # every request on a fresh connection, so SO_REUSEPORT spreads them over the workers; the
        # minted x-request-id starts with a per-process prefix, which tells who answered
        async def ask(session: aiohttp.ClientSession) -> str:
            async with session.post(server.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                    json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                          "max_tokens": 2}) as r:
                assert r.status == 200, await r.text()
                return r.headers["x-request-id"][:-10]
        answered: collections.Counter[str] = collections.Counter()
        deadline = time.monotonic() + 30      # "listening" is printed before the workers have started
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            while len(answered) < 2 and time.monotonic() < deadline:
                answered = collections.Counter(await asyncio.gather(*(ask(session) for _ in range(20))))
                if len(answered) < 2:
                    await asyncio.sleep(0.2)

        # and the two workers share one set of limits (through Redis, or shared memory)
        client = make_async_openai_client(server.base_url, api_key=limited, max_retries=0)
        outcomes, _ = await burst([client], 12, "count me", max_tokens=2)
        ok, denied = split(outcomes)
        figures(f"workers ({limiter})", workers=len(workers), processes_answering=len(answered), requests_per_process=
                sorted(answered.values()), rpm=4, requests=12, successes=len(ok), rate_limited=len(denied))
        assert len(answered) == 2, f"only {len(answered)} process answered: {answered}"
        assert len(ok) == 4 and len(denied) == 8
        check_429s(denied, window_s=WINDOW_S)
    finally:
        await asyncio.to_thread(server.stop)
        if redis_url:
            delete_scopes(redis_url, scopes)

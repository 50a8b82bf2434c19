"""Issue 5 "done when", one gateway: what the official `openai` SDK sees of Router One's rate limits.

- a refused request raises `openai.RateLimitError` whose body is the seed's 429 (plus `"param": null`);
- the SDK's automatic retry honours Retry-After: with a 2 s window and R=1, the retried request
  succeeds after waiting Retry-After seconds (not the SDK's own shorter backoff);
- the x-ratelimit-* headers (requests and tokens trios) on non-streamed and streamed 200s, exact,
  and on the 429 together with Retry-After;
- a concurrency limit refuses the extra requests at once (no queueing) and frees its slots when the
  calls end.

Gateways run in-thread (routerone.testing). The short-window gateway is built with
`create_app(settings, limiter=...)`: `make_limiter(settings)` has no window override. The
multi-process proofs are in test_rate_limits_multi.py.
"""
from __future__ import annotations

import asyncio
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx2
import openai
import pytest
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).parent))
from ratelimit_procs import SEED_429, delete_scopes, isolate_ids, parse_duration_s, require_redis  # noqa: E402

from routerone.app import create_app  # noqa: E402
from routerone.limits import LimitDecision, Limiter, LimitRule, LimitTicket, MemoryLimiter  # noqa: E402
from routerone.settings import ProviderSettings, Settings  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402
from routerone.tokens import count_prompt_tokens, count_text_tokens  # noqa: E402

MODEL = "gpt-4o"
WINDOW_S = 60


def user(content: str) -> list[dict]:
    return [{"role": "user", "content": content}]


# -- a gateway with a limiter of our choosing ---------------------------------------------------
class LimiterGateway(Gateway):
    """An in-thread Gateway whose app gets `make_limiter()` (built inside the server's loop)."""

    def __init__(self, settings: Settings, make_limiter: Callable[[], Limiter]) -> None:
        super().__init__(settings)
        self._make_app = lambda: create_app(self.settings, limiter=make_limiter())


@pytest.fixture
def limiter_gateway(tmp_path: Path, fake_upstream) -> Iterator[Callable[..., LimiterGateway]]:
    started: list[LimiterGateway] = []

    def make(make_limiter: Callable[[], Limiter]) -> LimiterGateway:
        settings = Settings(database_url=f"sqlite:///{tmp_path / f'gw-{len(started)}.sqlite'}", demo="off",
                            usage_flush_interval_s=0.05,
                            providers={"openai": ProviderSettings(api_key=fake_upstream.api_key,
                                                                  base_url=fake_upstream.base_url)})
        gw = LimiterGateway(settings, make_limiter)
        gw.start()
        started.append(gw)
        return gw

    yield make
    for gw in reversed(started):
        gw.stop()


class Responses:
    """Every HTTP response a client received: (status, retry-after, monotonic time)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str | None, float]] = []

    def hook(self, response: httpx2.Response) -> None:
        self.seen.append((response.status_code, response.headers.get("retry-after"), time.monotonic()))


def recording_client(gw: Gateway, key: str, openai_wire, responses: Responses, **opts: Any) -> OpenAI:
    """A sync OpenAI client whose responses are recorded and validated against OpenAI's spec."""
    http = httpx2.Client(transport=openai_wire.transport(), timeout=30.0,
                         event_hooks={"response": [responses.hook]})
    return OpenAI(base_url=gw.base_url, api_key=key, http_client=http, **opts)


# -- 2. the SDK: RateLimitError with the seed's body; automatic retry honours Retry-After ----------
SHORT_WINDOW_S = 2.0


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_sdk_gets_the_seed_429_and_its_retry_honours_retry_after(backend, limiter_gateway, openai_wire):
    scopes: list[str] = []
    redis_url = ""
    if backend == "redis":
        redis_url = require_redis()
        from routerone.limits import RedisLimiter
        gw = limiter_gateway(lambda: RedisLimiter(redis_url, window_s=SHORT_WINDOW_S))
        isolate_ids(gw.settings.database_url.removeprefix("sqlite:///"))   # this run's own Redis scopes
    else:
        gw = limiter_gateway(lambda: MemoryLimiter(window_s=SHORT_WINDOW_S))
    try:
        acc = gw.admin("POST", "/admin/accounts", {"name": "retry", "balance_micros": 10_000_000})["data"]
        rec = gw.admin("POST", "/admin/keys", {"account_id": acc["id"], "rpm": 1})["data"]
        scopes += [f"key:{rec['id']}", f"acct:{acc['id']}"]
        once, again = Responses(), Responses()
        no_retry = recording_client(gw, rec["key"], openai_wire, once, max_retries=0)
        retrying = recording_client(gw, rec["key"], openai_wire, again, max_retries=2)

        t0 = time.monotonic()
        no_retry.chat.completions.create(model=MODEL, messages=user("first"), max_tokens=3)
        with pytest.raises(openai.RateLimitError) as caught:
            no_retry.chat.completions.create(model=MODEL, messages=user("second"), max_tokens=3)
        exc = caught.value
        assert exc.status_code == 429
        assert exc.body == SEED_429["error"]
        assert exc.code == "rate_limit_exceeded" and exc.type == "rate_limit_error"
        first_ra = int(exc.response.headers["retry-after"])
        assert 1 <= first_ra <= SHORT_WINDOW_S

        # the retrying client: refused, waits Retry-After, then served (the window has moved on)
        started = time.monotonic()
        completion = retrying.chat.completions.create(model=MODEL, messages=user("third"), max_tokens=3)
        elapsed = time.monotonic() - started
        assert completion.choices[0].message.content
        statuses = [(s, ra) for s, ra, _ in again.seen]
        assert [s for s, _ in statuses] == [429, 200], statuses
        ra = int(statuses[0][1])
        assert 1 <= ra <= SHORT_WINDOW_S
        waited = again.seen[1][2] - again.seen[0][2]
        print(f"FIGURES sdk-retry[{backend}]: window_s={SHORT_WINDOW_S}, R=1, retry_after={ra}, "
              f"sdk_waited_s={waited:.3f}, call_elapsed_s={elapsed:.3f}, since_first_s={time.monotonic() - t0:.3f}")
        # honoured: it waited Retry-After (the SDK's own first backoff would be 0.375-0.5 s) and no
        # more than a moment beyond it
        assert ra - 0.05 <= waited <= ra + 1.0, (ra, waited)
    finally:
        if redis_url:
            delete_scopes(redis_url, scopes)


# -- 3. headers on 200s (JSON and SSE) and on the 429 --------------------------------------------------
RPM, TPM, MAX_TOKENS = 4, 10_000, 10
CONTENT = "what are my limits?"


def _assert_reset(value: str, *, full_window: bool) -> None:
    seconds = parse_duration_s(value)
    assert 0 < seconds <= WINDOW_S, value
    if full_window:                       # the newest entry was just logged: a whole window to go
        assert seconds > WINDOW_S - 1, value


def test_rate_limit_headers_on_json_and_streamed_200s_and_on_the_429(gw, make_openai_client):
    key, _ = gw.new_key(rpm=RPM, tpm=TPM)
    client = make_openai_client(gw, key)
    reserved = count_prompt_tokens(CONTENT, 1) + MAX_TOKENS      # what the gateway reserves
    used = count_text_tokens(CONTENT) + MAX_TOKENS                # what the upstream reports (released)

    t0 = time.monotonic()
    for i in range(RPM):
        stream = i % 2 == 1
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=user(CONTENT), max_tokens=MAX_TOKENS, stream=stream)
        h = raw.headers
        if stream:
            assert h["content-type"].startswith("text/event-stream")
            chunks = list(raw.parse())
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            assert raw.parse().usage.total_tokens == used
        assert h["x-ratelimit-limit-requests"] == str(RPM)
        assert h["x-ratelimit-remaining-requests"] == str(RPM - 1 - i), (i, stream)
        _assert_reset(h["x-ratelimit-reset-requests"], full_window=True)
        assert h["x-ratelimit-limit-tokens"] == str(TPM)
        # earlier requests count what they used (the reservation was lowered on release), this one
        # what it reserved
        assert h["x-ratelimit-remaining-tokens"] == str(TPM - i * used - reserved), (i, stream)
        _assert_reset(h["x-ratelimit-reset-tokens"], full_window=True)

    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=MODEL, messages=user(CONTENT), max_tokens=MAX_TOKENS,
                                           stream=stream)
        exc = caught.value
        h = exc.response.headers
        assert exc.body == SEED_429["error"]
        assert h["x-ratelimit-limit-requests"] == str(RPM)
        assert h["x-ratelimit-remaining-requests"] == "0"
        _assert_reset(h["x-ratelimit-reset-requests"], full_window=False)
        assert h["x-ratelimit-limit-tokens"] == str(TPM)
        assert h["x-ratelimit-remaining-tokens"] == str(TPM - RPM * used)   # nothing taken by a refusal
        _assert_reset(h["x-ratelimit-reset-tokens"], full_window=False)
        ra = h["retry-after"]
        assert ra.isdigit() and 1 <= int(ra) <= WINDOW_S
        # the oldest request leaves the window WINDOW_S after it was admitted (>= t0)
        assert int(ra) >= math.floor(WINDOW_S - (time.monotonic() - t0)), ra


# -- 4. concurrency: the extra requests are refused at once, the slots come back -------------------
# The admitted calls wait upstream until the test releases them (fake_openai's [[hold:ms]]), so "a
# refusal did not queue behind the slow calls" is "it came before the release", on any machine.
HOLD = "[[hold:25000]]"   # the upstream's own bound: later than any release below
REFUSALS_WAIT_S = 15.0    # how long the test waits for the refusals before it releases the upstream


async def _timed(coro) -> tuple[str, Any, float]:
    """(outcome, completion or error, time.monotonic() when it ended)."""
    try:
        return "ok", await coro, time.monotonic()
    except openai.RateLimitError as exc:
        return "429", exc, time.monotonic()


async def _release(upstream) -> int:
    """Let the held upstream calls go; how many there were."""
    def post() -> int:
        return httpx2.post(upstream.url + "/_control/release", timeout=10).json()["released"]
    return await asyncio.to_thread(post)


async def _reached_upstream(upstream, n: int, timeout_s: float = 15.0) -> bool:
    """Wait until the fake upstream has received n requests (it keeps their bodies)."""
    deadline = time.monotonic() + timeout_s
    while len(upstream.app["fake"].requests) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return len(upstream.app["fake"].requests) >= n


async def test_concurrency_limit_refuses_at_once_and_frees_its_slots(gw, fake_upstream, make_async_openai_client):
    key, _ = gw.new_key(concurrency=2)
    client = make_async_openai_client(gw, key, max_retries=0)

    def slow(hold: str = HOLD):
        return client.chat.completions.create(model=MODEL, messages=user(f"take your time {hold}"), max_tokens=3)
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(_timed(slow())) for _ in range(6)]
    pending: set[asyncio.Future] = set(tasks)
    while len(pending) > 2 and (left := t0 + REFUSALS_WAIT_S - time.monotonic()) > 0:
        _, pending = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
    released_at = time.monotonic()
    held = await _release(fake_upstream)
    results = await asyncio.gather(*tasks)
    ok = [r for r in results if r[0] == "ok"]
    refused = [r for r in results if r[0] == "429"]
    print(f"FIGURES concurrency[in-thread]: concurrency=2, requests=6, successes={len(ok)}, "
          f"rate_limited={len(refused)}, refused_after_s={[round(r[2] - t0, 3) for r in refused]}, "
          f"released_after_s={released_at - t0:.3f}, held_at_release={held}, "
          f"served_after_s={[round(r[2] - t0, 3) for r in ok]}")
    assert len(ok) == 2 and len(refused) == 4
    for _, exc, ended in refused:
        assert exc.body == SEED_429["error"]
        assert exc.response.headers["retry-after"] == "1"
        assert ended < released_at, f"a refusal came {ended - released_at:.3f}s after the release: it queued"
    for _, _, ended in ok:
        assert ended > released_at, "an admitted call was not held by the upstream"
    # both calls ended: both slots are free again
    again = await asyncio.gather(*(_timed(slow("[[sleep:200]]")) for _ in range(2)))
    assert [r[0] for r in again] == ["ok", "ok"]
    # and while two are in flight (held upstream) a third is still refused
    seen = len(fake_upstream.app["fake"].requests)
    busy = [asyncio.ensure_future(_timed(slow())) for _ in range(2)]
    assert await _reached_upstream(fake_upstream, seen + 2), "the two busy calls never reached the upstream"
    third = await _timed(slow("[[sleep:0]]"))
    await _release(fake_upstream)
    assert third[0] == "429"
    assert [r[0] for r in await asyncio.gather(*busy)] == ["ok", "ok"]


# -- the concurrency lease must be gone before the reply reaches the client -----------------------------
class SlowRelease:
    """Delegates to a MemoryLimiter; `release` takes RELEASE_DELAY_S first, like a Redis round trip
    on a busy gateway (the race seen between gateway processes in test_rate_limits_multi.py)."""

    RELEASE_DELAY_S = 0.1

    def __init__(self) -> None:
        self.inner = MemoryLimiter()

    async def acquire(self, rules: list[LimitRule], request_id: str, tokens: int) -> LimitDecision:
        return await self.inner.acquire(rules, request_id, tokens)

    async def release(self, ticket: LimitTicket, tokens_used: int) -> None:
        await asyncio.sleep(self.RELEASE_DELAY_S)
        await self.inner.release(ticket, tokens_used)

    async def peek(self, rules: list[LimitRule], tokens: int = 0) -> bool:
        return await self.inner.peek(rules, tokens)

    async def close(self) -> None:
        await self.inner.close()


def test_a_sequential_client_never_trips_its_own_concurrency_limit(limiter_gateway, openai_wire):
    gw = limiter_gateway(SlowRelease)
    acc = gw.admin("POST", "/admin/accounts", {"name": "seq", "balance_micros": 10_000_000})["data"]
    key = gw.admin("POST", "/admin/keys", {"account_id": acc["id"], "concurrency": 1})["data"]["key"]
    seen = Responses()
    client = recording_client(gw, key, openai_wire, seen, max_retries=0)
    for stream in (False, False, True, True):
        try:
            resp = client.chat.completions.create(model=MODEL, messages=user("one at a time"), max_tokens=3,
                                                  stream=stream)
            if stream:
                list(resp)
        except openai.RateLimitError:
            pass
    assert [s for s, _, _ in seen.seen] == [200] * 4, seen.seen

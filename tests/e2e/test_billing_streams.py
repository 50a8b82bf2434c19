"""Issue 4 "done when", streams: a client that goes away mid-stream is billed for what was generated.

The fake upstream paces its stream (one token per `chunk_interval_ms`). The client (the official
`openai` SDK) reads a few chunks and closes the connection; Router One keeps reading the upstream to
its usage event (bounded by `abandoned_stream_drain_s`), then settles: the ledger shows the charge
for the whole completion and the usage record exists. A stream read to the end carries the cost in
its final usage chunk (`stream_options.include_usage`), equal to the ledger charge.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import (OUTPUT_MICROS_PER_TOKEN, PRICED_INPUT_MICROS_PER_TOKEN, PRICED_MODEL,  # noqa: E402
                           Admin, FakeUpstream, billing_id, fake_prompt_tokens, usage_cost_micros, wait_until,
                           write_catalog)

from routerone.services import streaming  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402

CHUNK_INTERVAL_MS = 50
STREAM_TOKENS = 40                    # 40 x 50 ms = 2 s of generation
READ_CHUNKS = 3
FUNDED = 1_000_000


@pytest.fixture(scope="module", params=[True, False], ids=["http1", "aiohttp"])
def upstream(request):
    """The fake upstream, reached through each upstream client in turn (`upstream.http1`): the lean
    HTTP/1.1 one (plain-http upstreams, pushed streams) and aiohttp's (https upstreams)."""
    with FakeUpstream(chunk_interval_ms=CHUNK_INTERVAL_MS) as up:
        up.http1 = request.param
        yield up


def _gateway(upstream: FakeUpstream, tmp: Path, **overrides) -> Gateway:
    return Gateway.for_upstreams(str(tmp / "r1.db"), {"openai": (upstream.base_url, "sk-fake-upstream")},
                                 catalog_path=str(write_catalog(tmp / "catalog.toml")),
                                 upstream_http1=upstream.http1, **overrides)


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    with _gateway(upstream, tmp_path_factory.mktemp("streams"), abandoned_stream_drain_s=10.0) as gw:
        yield gw


@pytest.fixture
def abandoned(monkeypatch) -> list[str]:
    """Request ids of streams the HTTP layer abandoned (the client went away), recorded without
    changing what `ChatStream.abandon` does."""
    seen: list[str] = []
    original = streaming.ChatStream.abandon

    def spy(self) -> None:
        seen.append(self.call.request_id)
        original(self)
    monkeypatch.setattr(streaming.ChatStream, "abandon", spy)
    return seen


def _cost(prompt: str, completion_tokens: int) -> int:
    return (fake_prompt_tokens(prompt) * PRICED_INPUT_MICROS_PER_TOKEN
            + completion_tokens * OUTPUT_MICROS_PER_TOKEN)


async def _open_stream(client: AsyncOpenAI, prompt: str, max_tokens: int):
    """(billing id, the SDK's AsyncStream) of a streamed completion with include_usage."""
    raw = await client.chat.completions.with_raw_response.create(
        model=PRICED_MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
        stream=True, stream_options={"include_usage": True})
    return billing_id(raw.headers), raw.parse()


async def _read_then_disconnect(base_url: str, key: str, prompt: str) -> tuple[str, int, float]:
    """Stream a completion, read READ_CHUNKS content chunks, close the connection.
    Returns (billing id, content chunks read, seconds from request to close)."""
    client = AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)
    t0 = time.perf_counter()
    rid, stream = await _open_stream(client, prompt, STREAM_TOKENS)
    got = 0
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            got += 1
            if got == READ_CHUNKS:
                break
    await stream.close()
    await client.close()
    return rid, got, time.perf_counter() - t0


async def _charge(admin: Admin, account_id: int, rid: str) -> int | None:
    for e in await admin.ledger(account_id):
        if e["request_id"] == rid and e["kind"] == "charge":
            return -e["amount_micros"]
    return None


async def test_disconnected_client_is_billed_for_the_whole_completion(gateway: Gateway,
                                                                      abandoned: list[str]) -> None:
    prompt = "tell me a long story"
    async with Admin(gateway.url) as admin:
        key, account_id, _ = await admin.new_key(FUNDED)
        rid, got, closed_after_s = await _read_then_disconnect(gateway.base_url, key, prompt)
        t_closed = time.perf_counter()
        assert got == READ_CHUNKS

        async def charged() -> bool:
            return await _charge(admin, account_id, rid) is not None
        assert await wait_until(charged, timeout_s=8), "no charge after the drain"
        settled_after_s = time.perf_counter() - t_closed
        charge = await _charge(admin, account_id, rid)
        usage = await admin.usage(account_id, expect=1)
        acc = await admin.account(account_id)

    assert abandoned == [rid], "the HTTP layer must have seen the client go away"
    expected = _cost(prompt, STREAM_TOKENS)
    assert charge == expected, f"charged {charge}, the whole completion costs {expected}"
    [rec] = usage["data"]
    assert rec["request_id"] == rid and rec["stream"] in (True, 1)
    assert rec["completion_tokens"] == STREAM_TOKENS, "billed for every generated token, not the 3 read"
    assert rec["prompt_tokens"] == fake_prompt_tokens(prompt), "the upstream's usage event, not an estimate"
    assert rec["cost_micros"] == charge and rec["status"] == 200
    assert acc["reserved_micros"] == 0 and acc["balance_micros"] == FUNDED - charge
    print(f"\nFIGURES abandoned stream: read {got}/{STREAM_TOKENS} chunks, closed after {closed_after_s:.2f}s, "
          f"settled {settled_after_s:.2f}s later, charged {charge} micros = full completion "
          f"({STREAM_TOKENS} tokens)")


async def test_drain_limit_bounds_the_hold_and_bills_what_was_relayed(upstream: FakeUpstream,
                                                                      tmp_path: Path) -> None:
    """With a drain limit shorter than the rest of the generation, the hold is still closed when
    the limit is reached, charging the locally counted part (never more than the worst case)."""
    prompt = "tell me a long story"
    with _gateway(upstream, tmp_path, abandoned_stream_drain_s=0.5) as gw:
        async with Admin(gw.url) as admin:
            key, account_id, _ = await admin.new_key(FUNDED)
            rid, _, _ = await _read_then_disconnect(gw.base_url, key, prompt)
            t_closed = time.perf_counter()

            async def settled() -> bool:
                return (await admin.account(account_id))["reserved_micros"] == 0
            assert await wait_until(settled, timeout_s=5), "the hold outlived the drain limit"
            released_s = time.perf_counter() - t_closed
            charge = await _charge(admin, account_id, rid)
            [rec] = (await admin.usage(account_id, expect=1))["data"]
    full = _cost(prompt, STREAM_TOKENS)
    assert released_s < 0.5 + 1.5, f"released {released_s:.2f}s after the client left"
    assert charge is not None and 0 < charge < full, (charge, full)
    assert READ_CHUNKS <= rec["completion_tokens"] < STREAM_TOKENS
    assert rec["cost_micros"] == charge
    print(f"\nFIGURES drain limit 0.5s: hold released {released_s:.2f}s after disconnect, charged {charge} "
          f"of {full} micros ({rec['completion_tokens']} tokens relayed)")


async def test_stream_usage_chunk_cost_equals_ledger_charge(gateway: Gateway) -> None:
    prompt, tokens = "a short one", 8
    async with Admin(gateway.url) as admin:
        key, account_id, _ = await admin.new_key(FUNDED)
        async with AsyncOpenAI(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=30) as client:
            rid, stream = await _open_stream(client, prompt, tokens)
            chunks = [c async for c in stream]
        charge = await _charge(admin, account_id, rid)
        [rec] = (await admin.usage(account_id, expect=1))["data"]
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert final.usage.completion_tokens == tokens
    assert usage_cost_micros(final.usage) == charge == rec["cost_micros"] == _cost(prompt, tokens)


async def test_client_abandoning_a_stream_is_not_an_upstream_failure(upstream: FakeUpstream,
                                                                     tmp_path: Path) -> None:
    with _gateway(upstream, tmp_path, abandoned_stream_drain_s=0.3) as gw:
        async with Admin(gw.url) as admin:
            key, account_id, _ = await admin.new_key(FUNDED)
            await _read_then_disconnect(gw.base_url, key, "tell me a long story")

            async def settled() -> bool:
                return (await admin.account(account_id))["reserved_micros"] == 0
            assert await wait_until(settled, timeout_s=5)
            [rec] = (await admin.usage(account_id, expect=1))["data"]
            health = await admin.ok("GET", "/admin/health")
    assert rec["error_type"] != "upstream_unavailable" and rec["status"] != 502, rec
    assert all(h["errors"] == 0 for h in health.values()), health

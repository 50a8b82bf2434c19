"""The fake OpenAI upstream's `[[hold:ms]]` directive and `POST /_control/release`, over a real socket:
a held request gets no byte until it is released (or its hold runs out), and the release says how
many requests it let go. The rate-limit e2e tests rely on both to prove when a 429 was decided.
"""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from routerone.testing import fake_openai
from routerone.testing.threaded import ThreadedServer


@pytest.fixture(scope="module")
def fake():
    with ThreadedServer(fake_openai.make_app) as server:
        yield server


async def chat(session: aiohttp.ClientSession, fake: ThreadedServer, content: str) -> tuple[int, float]:
    t0 = time.monotonic()
    async with session.post(fake.url + "/v1/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": 2}) as r:
        body = await r.json()
        assert body["usage"]["completion_tokens"] == 2, body
        return r.status, time.monotonic() - t0


async def release(session: aiohttp.ClientSession, fake: ThreadedServer) -> int:
    async with session.post(fake.url + "/_control/release") as r:
        assert r.status == 200
        return (await r.json())["released"]


async def test_held_requests_wait_for_the_release_and_it_counts_them(fake):
    async with aiohttp.ClientSession() as session:
        calls = [asyncio.ensure_future(chat(session, fake, "wait [[hold:20000]]")) for _ in range(3)]
        quick = await chat(session, fake, "no hold")           # others are not held meanwhile
        assert quick[0] == 200
        await asyncio.sleep(0.3)
        assert not any(c.done() for c in calls)
        assert await release(session, fake) == 3
        results = await asyncio.wait_for(asyncio.gather(*calls), 10)
        assert [status for status, _ in results] == [200, 200, 200]
        assert all(0.3 <= elapsed_s < 10 for _, elapsed_s in results), results
        assert await release(session, fake) == 0                 # nothing is held any more


async def test_a_hold_ends_by_itself_after_its_bound(fake):
    async with aiohttp.ClientSession() as session:
        status, elapsed_s = await chat(session, fake, "[[hold:300]]")
        assert status == 200 and 0.29 <= elapsed_s < 5, elapsed_s
        assert await release(session, fake) == 0

"""redis_failure_policy = "closed": once Redis is back, the very next requests are decided by Redis.
Before (ops7), a failed recovery probe meant no call tried Redis again for a second, so every
request in that second got 503 `limiter_unavailable` although Redis answered (15 of a burst were
measured). Staged on a redis-server of the test's own (tests/e2e/redis_server.py), killed and
started again on the same port."""
from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import redis

sys.path.insert(0, str(Path(__file__).parent))
from redis_server import OwnRedis  # noqa: E402

BURST = 15


def _ask(client: openai.OpenAI) -> int:
    try:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=5)
        return 200
    except openai.APIStatusError as exc:
        return exc.status_code


@pytest.mark.redis
def test_closed_policy_lets_redis_decide_the_first_requests_after_it_returns(gateway, make_openai_client):
    with OwnRedis() as own:
        gw = gateway(limiter="redis", redis_url=own.url, redis_failure_policy="closed")
        key, _ = gw.new_key(rpm=10_000)
        client = make_openai_client(gw, key)
        assert _ask(client) == 200
        own.stop()
        assert [_ask(client) for _ in range(2)] == [503, 503]      # the outage is known, and probed
        t_down = time.monotonic()
        own.start()
        with ThreadPoolExecutor(BURST) as pool:
            statuses = list(pool.map(lambda _: _ask(client), range(BURST)))
        assert time.monotonic() - t_down < 1.0, "the burst must land inside the old probe interval"
        assert statuses == [200] * BURST
        # and Redis decided them: its log of the key holds each one
        conn = redis.Redis.from_url(own.url)
        try:
            counted = sum(conn.zcard(k) for k in conn.scan_iter("ro:rl:v1:*:req"))
        finally:
            conn.close()
        assert counted >= BURST

"""Without Redis configured, starting Router One loads no Redis client (limits/factory.py, app.py
import it only when `redis_url` is set): the redis package and the opentelemetry it pulls in cost
each worker about 7 MB of memory (bench/results/session14-ab.md). server.py imports the workers'
shared cooldown table (routing/cooldown_shared.py) whatever the configuration."""
from __future__ import annotations

import subprocess
import sys


def test_the_embedded_server_modules_load_no_redis_client():
    code = ("import sys, routerone.server, routerone.app, routerone.routing.cooldown_shared; "
            "print(sorted(m for m in sys.modules if m == 'redis' or m.startswith('redis.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"

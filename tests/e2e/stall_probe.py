"""A client in its own process that measures how long a gateway stops serving it.

    python stall_probe.py URL KEY        # prints "ready", then on stdin EOF one JSON line

It sends small requests (`GET /v1/models` with KEY: authentication, routing table, a JSON reply,
no upstream) one after the other on one kept-alive connection and records when each reply
arrives. Each takes about a millisecond, so the longest time between two replies is how long the
gateway's event loop was held by something else (another client's request). Measured outside
the gateway, over a socket, in a process of its own (no shared interpreter lock with the test).
"""
from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

LONG_GAP_S = 0.05     # gaps longer than this are listed (seconds since start, milliseconds)


def main() -> None:
    url, key = sys.argv[1], sys.argv[2]
    parts = urlsplit(url)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Authorization": f"Bearer {key}"}
    n, errors, max_gap_s, worst_at = 0, 0, 0.0, 0.0
    start = last = time.monotonic()
    said_ready = False
    long_gaps: list[tuple[float, float]] = []
    while not stop.is_set():
        try:
            conn.request("GET", "/v1/models", headers=headers)
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            ok = False
        now = time.monotonic()
        if not ok:
            errors += 1
            continue
        n += 1
        if said_ready and now - last > LONG_GAP_S:
            long_gaps.append((round(now - start, 3), round((now - last) * 1000, 1)))
        if now - last > max_gap_s and said_ready:
            max_gap_s, worst_at = now - last, now - start
        last = now
        if not said_ready and n >= 20:
            said_ready = True
            print("ready", flush=True)
    print(json.dumps({"requests": n, "errors": errors, "max_gap_ms": round(max_gap_s * 1000, 1),
                      "worst_at_s": round(worst_at, 3), "long_gaps": long_gaps[:20]}), flush=True)


if __name__ == "__main__":
    main()

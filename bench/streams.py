"""Many concurrent paced streams: does any stall, what is the time to first token, how many fail.

`-c N` clients each send one streaming chat request, read it to its end, and send the next,
until `--duration` seconds have passed (each request on a new connection, or with `--keep-alive`
on the client's one connection, as the OpenAI and Anthropic SDKs do) (their first requests spread over `--stagger` seconds). Per
stream it records the time to the first content token and the longest gap between two socket reads
that carried content. The upstream paces its chunks (`[[pace:MS]]`), so a gap much longer than the
pace (`--stall-ms`, default 1000) is one the gateway made: a stall. Raw asyncio protocol on uvloop:
the client costs little next to the server. Prints one JSON object.

    python bench/streams.py --url http://127.0.0.1:9101/v1/chat/completions -c 1000 -d 6 --pace 100 --words 20
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import time
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

_CONTENT = re.compile(rb'"content": ?"[^"]')     # a chunk with content (not the empty role chunk)


class StreamConn(asyncio.Protocol):
    def __init__(self, done: asyncio.Future) -> None:
        self.done, self.buf = done, bytearray()
        self.t0 = time.perf_counter()
        self.first = 0.0
        self.last_content = 0.0
        self.max_gap = 0.0
        self.transport = None
        self.status = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.status and b"\r\n" in data:
            try:
                self.status = int(data.split(b" ", 2)[1])
            except (IndexError, ValueError):
                self.status = -1
        if _CONTENT.search(data):
            if self.first:
                self.max_gap = max(self.max_gap, now - self.last_content)
            else:
                self.first = now
            self.last_content = now
        self.buf += data[-16:]
        del self.buf[:-16]
        if self.buf.endswith(b"0\r\n\r\n") and not self.done.done():
            self.done.set_result(now)

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed before the end ({exc})"))


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


async def run(a: argparse.Namespace) -> dict:
    loop = asyncio.get_running_loop()
    u = urlsplit(a.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("streams: loopback targets only")
    body = json.dumps({"model": a.model, "stream": True, "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": f"Stream slowly. [[words:{a.words}]] [[pace:{a.pace}]]"}]},
                      separators=(",", ":")).encode()
    head = [f"POST {u.path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Connection: " + ("keep-alive" if a.keep_alive else "close")]
    if a.key:
        head.append(f"Authorization: Bearer {a.key}")
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    ttft, gaps, totals, errors = [], [], [], {}
    deadline = time.perf_counter() + a.stagger + a.duration
    peak = {"open": 0, "now": 0}

    async def one(kept: dict) -> None:
        done = loop.create_future()
        conn = StreamConn(done)
        tr = kept.pop("tr", None)
        try:
            if tr is not None and not tr.is_closing():      # --keep-alive: the previous request's connection
                conn.transport = tr
                tr.set_protocol(conn)
            else:
                tr, _ = await loop.create_connection(lambda: conn, host, port)
        except OSError as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            await asyncio.sleep(0.05)
            return
        peak["now"] += 1
        peak["open"] = max(peak["open"], peak["now"])
        try:
            tr.write(raw)
            end = await asyncio.wait_for(done, a.timeout)
            if conn.status != 200 or not conn.first:
                errors[f"http_{conn.status}"] = errors.get(f"http_{conn.status}", 0) + 1
                return
            ttft.append((conn.first - conn.t0) * 1000)
            gaps.append(conn.max_gap * 1000)
            totals.append((end - conn.t0) * 1000)
        except (asyncio.TimeoutError, ConnectionError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        finally:
            peak["now"] -= 1
            if a.keep_alive and done.done() and not done.cancelled() and done.exception() is None:
                kept["tr"] = tr
            else:
                tr.close()

    async def worker(i: int) -> None:
        await asyncio.sleep(a.stagger * i / a.concurrency)
        kept: dict = {}
        while time.perf_counter() < deadline:
            await one(kept)
        if kept.get("tr") is not None:
            kept["tr"].close()

    await asyncio.gather(*(worker(i) for i in range(a.concurrency)))
    stalls = [g for g in gaps if g > a.stall_ms]
    return {"url": a.url, "concurrency": a.concurrency, "peak_open": peak["open"], "streams": len(ttft),
            "errors": sum(errors.values()), "error_kinds": errors, "pace_ms": a.pace, "words": a.words,
            "stagger_s": a.stagger, "keep_alive": a.keep_alive,
            "ttft_ms": {"p50": pct(ttft, 50), "p99": pct(ttft, 99), "max": max(ttft, default=None)},
            "max_gap_ms": max(gaps, default=None), "gap_p99_ms": pct(gaps, 99), "stalls": len(stalls),
            "total_ms": {"p50": pct(totals, 50), "p99": pct(totals, 99)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", default="")
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("-c", "--concurrency", type=int, default=1000)
    ap.add_argument("-d", "--duration", type=float, default=6.0)
    ap.add_argument("--stagger", type=float, default=2.0,
                    help="spread the first requests over this long (default: one paced stream, 20 x 100 ms), "
                         "so streams start at the steady-state rate, not in one burst")
    ap.add_argument("--pace", type=int, default=100, help="ms between the upstream's chunks")
    ap.add_argument("--words", type=int, default=20, help="content chunks per stream")
    ap.add_argument("--stall-ms", type=float, default=1000.0)
    ap.add_argument("--keep-alive", action="store_true",
                    help="each client reuses its connection (default: a new connection per stream)")
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * a.concurrency + 256)), hard))
    if uvloop is not None:
        uvloop.install()
    json.dump(asyncio.run(run(a)), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

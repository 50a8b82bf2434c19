"""Closed-loop HTTP/1.1 load generator: asyncio + uvloop with a raw protocol (no HTTP client library),
so it spends as little CPU as possible and the server under test is what gets measured.

`--concurrency` keep-alive connections each send a request, wait for the whole response, and send
the next, for `--warmup` seconds (not recorded) and then `--duration` seconds (recorded). Every run
is bounded: by time, by `--max-requests`, and by a per-request timeout (counted as an error).

Connections start staggered over the first half of the warm-up, so that concurrent streams of equal
length do not arrive in synchronized waves (which would measure burst queueing, not overhead).

Per request it records the latency to the last byte; for streams also the time to the first content
token (the first SSE chunk whose delta has non-empty `content`) and how many socket reads the body
arrived in (a gateway that buffers the stream shows few reads and a late first token).

With `--watch PID,...` it reads those processes' CPU time (utime+stime from /proc) at the start and
end of the recorded window, so CPU per request covers exactly the measured requests.

Prints one JSON object on stdout.

    python bench/loadgen.py --url http://127.0.0.1:9101/v1/chat/completions -c 32 -d 5 [--stream]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

_CONTENT = re.compile(rb'"content": ?"[^"]')
_CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _CLK   # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


class Conn(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: bool) -> None:
        self.loop = loop
        self.stream = stream
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.fut: asyncio.Future | None = None
        self._reset()

    def _reset(self) -> None:
        self.buf = bytearray()
        self.head_end = -1
        self.status = 0
        self.clen = -1
        self.chunked = False
        self.until_close = False
        self.pos = 0          # chunked: start of the next chunk-size line
        self.scan = 0         # stream: where to resume looking for the first content token
        self.t_first_byte = 0.0
        self.t_ttft = 0.0
        self.reads = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        fut = self.fut
        if fut is not None and not fut.done():
            if self.until_close and self.head_end >= 0:
                self._finish(True)
            else:
                fut.set_exception(ConnectionError("connection closed mid-response"))

    def request(self, data: bytes) -> asyncio.Future:
        self._reset()
        self.fut = self.loop.create_future()
        self.transport.write(data)
        return self.fut

    def data_received(self, data: bytes) -> None:
        if self.fut is None or self.fut.done():
            return
        now = time.perf_counter()
        if not self.t_first_byte:
            self.t_first_byte = now
        self.reads += 1
        self.buf += data
        buf = self.buf
        if self.head_end < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head_end = end + 4
            self.pos = self.scan = end + 4
            lines = bytes(buf[:end]).split(b"\r\n")
            try:
                self.status = int(lines[0].split(b" ", 2)[1])
            except (IndexError, ValueError):
                self.fut.set_exception(ConnectionError("bad status line"))
                return
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    self.clen = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    self.chunked = True
            if self.clen < 0 and not self.chunked:
                self.until_close = True
        if self.stream and not self.t_ttft:
            m = _CONTENT.search(buf, max(self.head_end, self.scan - 16))
            if m is not None:
                self.t_ttft = now
            else:
                self.scan = len(buf)
        if self.chunked:
            pos = self.pos
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    break
                size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
                if size == 0:
                    if len(buf) >= nl + 4:
                        self._finish(False)
                        return
                    break
                nxt = nl + 2 + size + 2
                if len(buf) < nxt:
                    break
                pos = nxt
            self.pos = pos
        elif self.clen >= 0 and len(buf) - self.head_end >= self.clen:
            self._finish(False)

    def _finish(self, at_close: bool) -> None:
        body = bytes(self.buf[self.head_end:])
        if self.stream:
            ok = self.status == 200 and b"[DONE]" in body
        else:
            ok = self.status == 200 and b'"choices"' in body
        self.fut.set_result((self.status, ok, self.t_first_byte, self.t_ttft, self.reads, body[:300]))


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


async def run(a: argparse.Namespace) -> dict:
    loop = asyncio.get_running_loop()
    u = urlsplit(a.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loadgen: loopback targets only")
    body = a.body.encode() if a.body else json.dumps({
        "model": a.model, "messages": [{"role": "user", "content": a.prompt}],
        **({"stream": True, "stream_options": {"include_usage": True}} if a.stream else {})},
        separators=(",", ":")).encode()
    headers = [f"POST {u.path or '/'} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
               f"Content-Length: {len(body)}", "Accept: */*", "User-Agent: routerone-bench"]
    if a.key:
        headers.append(f"Authorization: Bearer {a.key}")
    raw = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    watch = [int(p) for p in a.watch.split(",") if p] if a.watch else []

    lat: list[float] = []
    ttft: list[float] = []
    first_byte: list[float] = []
    reads: list[int] = []
    errors: dict[str, int] = {}
    samples: list[str] = []
    state = {"n": 0, "last_end": 0.0, "cpu0": 0.0, "t_measure": 0.0}
    t_start = time.perf_counter()
    t_measure = t_start + a.warmup
    deadline = t_measure + a.duration

    async def connect() -> Conn:
        _, conn = await loop.create_connection(lambda: Conn(loop, a.stream), host, port)
        return conn

    def err(kind: str, detail: str = "") -> None:
        errors[kind] = errors.get(kind, 0) + 1
        if detail and len(samples) < 3:
            samples.append(detail[:300])

    stagger = a.warmup / 2 if a.stagger is None else a.stagger

    async def worker(i: int) -> None:
        conn: Conn | None = None
        if stagger > 0 and a.concurrency > 1:   # spread the first requests: no synchronized waves
            await asyncio.sleep(stagger * i / a.concurrency)
        while True:
            t0 = time.perf_counter()
            if t0 >= deadline or state["n"] >= a.max_requests:
                break
            if not state["cpu0"] and t0 >= t_measure:
                state["cpu0"], state["t_measure"] = cpu_seconds(watch) or -1.0, t0
            measured = t0 >= t_measure
            try:
                if conn is None or conn.closed:
                    conn = await connect()
                fut = conn.request(raw)
                timer = loop.call_later(a.timeout, lambda f=fut: f.done() or f.set_exception(TimeoutError()))
                try:
                    status, ok, t_fb, t_tt, nreads, snippet = await fut
                finally:
                    timer.cancel()
            except TimeoutError:
                if measured:
                    state["n"] += 1
                    err("timeout")
                if conn is not None:
                    conn.transport.close()
                conn = None
                continue
            except (ConnectionError, OSError) as exc:
                if measured:
                    state["n"] += 1
                    err(type(exc).__name__, str(exc))
                conn = None
                await asyncio.sleep(0.01)
                continue
            t1 = time.perf_counter()
            if not measured:
                continue
            state["n"] += 1
            state["last_end"] = max(state["last_end"], t1)
            if not ok:
                err(f"http_{status}" if status != 200 else "bad_body", snippet.decode("utf-8", "replace"))
                continue
            lat.append((t1 - t0) * 1000)
            first_byte.append((t_fb - t0) * 1000)
            if a.stream:
                reads.append(nreads)
                if t_tt:
                    ttft.append((t_tt - t0) * 1000)
                else:
                    err("no_content_token")
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    cpu_lg0 = time.process_time()
    tasks = [asyncio.ensure_future(worker(i)) for i in range(a.concurrency)]
    done, pending = await asyncio.wait(tasks, timeout=a.warmup + a.duration + a.timeout + 5)
    for t in pending:
        t.cancel()
    cpu1 = cpu_seconds(watch)
    for t in done:
        if t.exception() is not None:
            err("loadgen_" + type(t.exception()).__name__, repr(t.exception()))
    window = max(1e-9, (state["last_end"] or time.perf_counter()) - (state["t_measure"] or t_measure))
    n_ok = len(lat)
    n_err = sum(errors.values())
    out = {
        "url": a.url, "stream": a.stream, "concurrency": a.concurrency, "duration_s": round(window, 3),
        "requests": n_ok + n_err, "ok": n_ok, "errors": n_err, "error_kinds": errors, "error_samples": samples,
        "rps": n_ok / window,
        "lat_ms": {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
                   "max": max(lat) if lat else None, "mean": sum(lat) / n_ok if n_ok else None},
        "first_byte_ms": {"p50": pct(first_byte, 50), "p99": pct(first_byte, 99)},
        "loadgen_cpu_s": time.process_time() - cpu_lg0,
    }
    if a.stream:
        out["ttft_ms"] = {"p50": pct(ttft, 50), "p90": pct(ttft, 90), "p99": pct(ttft, 99)}
        out["reads_per_stream_p50"] = pct(reads, 50)
    if watch and state["cpu0"] > 0:
        out["server_cpu_s"] = cpu1 - state["cpu0"]
        out["server_cpu_ms_per_req"] = (cpu1 - state["cpu0"]) * 1000 / max(1, n_ok)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", default="")
    ap.add_argument("-c", "--concurrency", type=int, default=1)
    ap.add_argument("-d", "--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    ap.add_argument("--stagger", type=float, default=None,
                    help="spread the connections' first requests over this many seconds (default: half the "
                         "warm-up), so a closed loop of equal-length streams does not move in lockstep waves")
    ap.add_argument("--max-requests", type=int, default=1_000_000)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--prompt", default="Say hello in a few words. [[words:16]]")
    ap.add_argument("--body", default="", help="a raw JSON body instead of --model/--prompt")
    ap.add_argument("--watch", default="", help="comma-separated PIDs whose CPU time to measure")
    a = ap.parse_args()
    if not (1 <= a.concurrency <= 1024 and 0 < a.duration <= 600):
        raise SystemExit("loadgen: concurrency 1..1024 and duration (0, 600] s")
    if uvloop is not None:
        uvloop.install()
    out = asyncio.run(run(a))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

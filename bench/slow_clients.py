"""1,000 slow clients (slowloris) against a real `routerone serve` process: RSS and open connections.

    .venv/bin/python bench/slow_clients.py [--clients 1000] [--seconds 30]

Each client opens a connection and trickles a request head, one header byte per second, never
finishing it. Prints the server's RSS before, with the clients connected, and at the end, and how
many of the connections the server had closed by then (client_header_timeout_s, default 15 s).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def client(port: int, seconds: float, closed: list[float], t0: float) -> None:
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        closed.append(0.0)
        return
    w.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    end = t0 + seconds
    try:
        while time.monotonic() < end:
            w.write(b"a")
            await w.drain()
            try:
                if await asyncio.wait_for(r.read(1024), 1.0) == b"":
                    closed.append(time.monotonic() - t0)
                    return
            except asyncio.TimeoutError:
                pass
    except (ConnectionError, OSError):
        closed.append(time.monotonic() - t0)
        return
    finally:
        w.close()


async def main(args) -> None:
    port = free_port()
    tmp = tempfile.mkdtemp()
    env = {**os.environ, "ROUTERONE_PORT": str(port), "ROUTERONE_DATABASE_URL": f"sqlite:///{tmp}/r.db"}
    proc = subprocess.Popen([sys.executable, "-m", "routerone", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                await asyncio.sleep(0.2)
        await asyncio.sleep(1)
        before = rss_mib(proc.pid)
        closed: list[float] = []
        t0 = time.monotonic()
        tasks = [asyncio.create_task(client(port, args.seconds, closed, t0)) for _ in range(args.clients)]
        await asyncio.sleep(5)
        during = rss_mib(proc.pid)
        await asyncio.gather(*tasks)
        after = rss_mib(proc.pid)
        by = f", the last after {max(closed):.1f} s" if closed else ""
        print(f"{args.clients} slow clients for {args.seconds:g} s: server RSS {before:.1f} MiB before, "
              f"{during:.1f} MiB with them connected, {after:.1f} MiB at the end; "
              f"{len(closed)} of {args.clients} connections closed by the server{by}")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=30)
    asyncio.run(main(p.parse_args()))

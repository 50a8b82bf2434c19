"""CPU-heavy work on large inputs, off the event loop, in a small bounded pool of threads.

Router One is one asyncio loop per worker: a request whose handling holds the loop stalls every
other client's stream. Counting the tokens of a 20 MB prompt takes ~0.6 s, parsing and translating
a 20 MB body ~0.1 s; done on the loop they stalled every other client that long (measured from
another client over a socket: tests/e2e/test_huge_requests.py). `run_heavy` runs such work inline
when its input is small (a thread hop costs more than the work) and in `HEAVY_WORKERS` threads
when it is not: the loop gets the interpreter lock back between the tokenizer's pieces (each at
most tokens.PIECE_CHARS characters), so it keeps serving. At most `HEAVY_WORKERS` such jobs run at
once whatever the number of huge requests in flight (the rest wait their turn, off the loop); a
job whose request is cancelled before its turn does not run.
"""
from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

__all__ = ["run_heavy", "OFF_LOOP_BYTES", "HEAVY_WORKERS"]

T = TypeVar("T")

OFF_LOOP_BYTES = 256 * 1024   # below this an input is parsed and counted inline (a few ms at most)
HEAVY_WORKERS = 2

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=HEAVY_WORKERS, thread_name_prefix="routerone-heavy")
    return _pool


async def run_heavy(size_bytes: int, fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)`: inline when `size_bytes` (the input's size) is under OFF_LOOP_BYTES,
    else in the bounded pool, awaited."""
    if size_bytes < OFF_LOOP_BYTES:
        return fn(*args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_executor(), functools.partial(fn, *args, **kwargs))

"""Group concurrent calls into one round trip (group commit for a network store).

`Batcher.submit(item)` queues the item and returns its result. While fewer than `max_in_flight`
batches are running, a flush task starts; it runs on the next turn of the event loop, so every
call made in the same turn joins it, and calls made while a batch is in flight join the next one.
A lone call therefore pays one event-loop turn of latency; under load a round trip carries as many
calls as arrived during the previous one (at most `max_batch`).

If a batch fails as a whole, its items are retried one by one, so a bad item (a duplicate request
id, say) fails only its own caller. A caller cancelled while its item is queued is dropped from the
batch; one cancelled while its batch is in flight still has its item executed: `on_orphan(item,
result)` is called for those, so a reservation nobody waits for can be released at once.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Generic, Sequence, TypeVar

__all__ = ["Batcher"]
I = TypeVar("I")
R = TypeVar("R")
log = logging.getLogger("routerone.batching")


class Batcher(Generic[I, R]):
    def __init__(self, run: Callable[[Sequence[I]], Awaitable[Sequence[R]]], *, max_batch: int = 256,
                 max_in_flight: int = 1, on_orphan: Callable[[I, R], None] | None = None) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be >= 1")
        self._run = run
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._on_orphan = on_orphan
        self._queue: list[tuple[I, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()
        self.batches = 0          # round trips made (for tests and metrics)
        self.items = 0            # items carried by them

    async def submit(self, item: I) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await fut

    async def _flush(self) -> None:
        try:
            while True:
                batch = [(item, fut) for item, fut in self._queue[:self._max_batch] if not fut.cancelled()]
                del self._queue[:self._max_batch]
                if not batch:
                    if not self._queue:
                        return
                    continue
                self.batches += 1
                self.items += len(batch)
                try:
                    results = await self._run([item for item, _ in batch])
                except asyncio.CancelledError:    # shutdown: its callers must not wait forever
                    for _, fut in batch + self._queue:
                        fut.cancel()
                    self._queue.clear()
                    raise
                except Exception as exc:  # noqa: BLE001 - retried item by item below
                    if len(batch) == 1:
                        self._set(batch[0], exc=exc)
                        continue
                    log.warning("batch of %d failed (%s: %s); retrying its items one by one",
                                len(batch), type(exc).__name__, exc)
                    for entry in batch:
                        try:
                            self._set(entry, result=(await self._run([entry[0]]))[0])
                        except Exception as one_exc:  # noqa: BLE001 - that caller's own error
                            self._set(entry, exc=one_exc)
                    continue
                for entry, result in zip(batch, results):
                    self._set(entry, result=result)
        finally:
            self._in_flight -= 1

    def _set(self, entry: tuple[I, asyncio.Future[R]], *, result: R | None = None,
             exc: BaseException | None = None) -> None:
        item, fut = entry
        if fut.cancelled():
            if exc is None and self._on_orphan is not None:
                self._on_orphan(item, result)      # type: ignore[arg-type]
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)                 # type: ignore[arg-type]

    async def close(self) -> None:
        """Wait for the batches in flight."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

"""Usage records written off the hot path: queued in memory, inserted in batches, flushed on stop."""
from __future__ import annotations

import asyncio
import logging

from ..store.base import Store, UsageRecord
from .background import cancel_and_wait

__all__ = ["UsageWriter"]
log = logging.getLogger("routerone.usage")


class UsageWriter:
    def __init__(self, store: Store, *, flush_interval_s: float = 0.5, batch_size: int = 500) -> None:
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self._queue: list[UsageRecord] = []
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self.written = 0

    @property
    def depth(self) -> int:
        return len(self._queue)

    def add(self, record: UsageRecord) -> None:
        self._queue.append(record)
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:self.batch_size], self._queue[self.batch_size:]
            try:
                await self.store.insert_usage(batch)
                self.written += len(batch)
            except Exception:  # noqa: BLE001 - keep the records and try again next tick
                log.exception("usage batch insert failed; %d records kept", len(batch))
                self._queue[:0] = batch
                return

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.flush()

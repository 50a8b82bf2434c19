"""How long stored /v1/responses responses are kept (`responses_retention_days`, 0 = until deleted).

A stored response holds its whole input chain (prompts) and output. Once it is older than the
retention it is a 404 everywhere (ResponsesService checks `expired` on every read and deletes the
row it found expired); `ResponsePurge` deletes the rest in the background, every
`responses_purge_interval_s`, BATCH_ROWS rows per store call (each call off the event loop: a
PostgreSQL round trip, or SQLite's writer thread), yielding to the loop between batches.
"""
from __future__ import annotations

import asyncio
import logging
import time

from ..store.base import Store
from .background import cancel_and_wait

__all__ = ["ResponsePurge", "retention_cutoff", "BATCH_ROWS"]
log = logging.getLogger("routerone.responses")

DAY_S = 86_400.0
BATCH_ROWS = 500


def retention_cutoff(retention_days: int, now: float | None = None) -> float | None:
    """Stored responses created before this time have expired; None: they never do (0 days)."""
    if retention_days <= 0:
        return None
    return (time.time() if now is None else now) - retention_days * DAY_S


class ResponsePurge:
    """The background deletion of expired stored responses (one per process; several processes
    purging at once delete each row once)."""

    def __init__(self, store: Store, retention_days: int, interval_s: float, batch_rows: int = BATCH_ROWS) -> None:
        self.store = store
        self.retention_days = retention_days
        self.interval_s = interval_s
        self.batch_rows = batch_rows
        self.purged = 0                         # rows deleted by this process's purge
        self._task: asyncio.Task | None = None

    async def purge_expired(self) -> int:
        """Delete every response expired now, a batch at a time; how many were deleted."""
        cutoff = retention_cutoff(self.retention_days)
        if cutoff is None:
            return 0
        total = 0
        while True:
            n = await self.store.purge_responses(cutoff, self.batch_rows)
            total += n
            self.purged += n
            if n < self.batch_rows:
                return total
            await asyncio.sleep(0)              # let requests in between batches

    async def start(self) -> None:
        if self.retention_days > 0:
            self._task = asyncio.create_task(self._loop(), name="responses-purge")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                n = await self.purge_expired()
                if n:
                    log.info("deleted %d stored response(s) older than %d days", n, self.retention_days)
            except Exception:  # noqa: BLE001 - the database may be down: the next round tries again
                log.warning("purging expired stored responses failed", exc_info=True)
            await asyncio.sleep(self.interval_s)

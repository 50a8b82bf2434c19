"""Usage records that are not written with a settle, written off the hot path in batches; and the
records the database refused (rejects).

Since issue 11 a request's usage row is written in its settle's transaction (services/billing.py),
so this queue only carries the rows of requests whose reservation was missing at settle time
(nothing was charged for them). Requests refused before a hold (bad input, auth, limits, balance)
get no usage row: they are counted in routerone_rejections and in the request log instead.

One bad record never blocks the others: a batch the database refuses is written record by record,
and a record refused on its own is a *reject*: logged at ERROR with the whole record, counted
(`rejected`, routerone_usage_rejects), and kept in the `usage_rejects` table (JSON text) for an
operator. Only when the database is unreachable are records kept for the next flush, at most
MAX_QUEUED of them (beyond that the oldest are dropped, logged and counted in `dropped`).
"""
from __future__ import annotations

import asyncio
import logging
import time

from ..store import rows
from ..store.base import Store, UsageRecord, UsageReject
from ..store.errors import is_unavailable
from .background import cancel_and_wait

__all__ = ["UsageWriter"]
log = logging.getLogger("routerone.usage")

MAX_QUEUED = 100_000


class UsageWriter:
    def __init__(self, store: Store, *, flush_interval_s: float = 0.5, batch_size: int = 500) -> None:
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self._queue: list[UsageRecord] = []
        self._rejects: list[UsageReject] = []
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self.written = 0
        self.rejected = 0      # records the database refused (kept in usage_rejects)
        self.dropped = 0       # records lost because the queue overflowed while the database was down

    @property
    def depth(self) -> int:
        return len(self._queue)

    def add(self, record: UsageRecord) -> None:
        self._queue.append(record)
        if len(self._queue) > MAX_QUEUED:
            lost = self._queue[:len(self._queue) - MAX_QUEUED]
            del self._queue[:len(lost)]
            self.dropped += len(lost)
            log.error("usage queue full (database unavailable): dropped %d record(s), first %s",
                      len(lost), lost[0].request_id)
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    def reject(self, record: UsageRecord, exc: BaseException) -> None:
        """A record the database refused: log it whole, count it, keep it in usage_rejects."""
        self.rejected += 1
        text = rows.reject_json(record)
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        log.error("usage row refused by the database (%s); kept in usage_rejects: %s", reason, text)
        self._rejects.append(UsageReject(record.request_id, reason, text, time.time()))
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
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 - never let the writer die
                log.exception("usage flush failed")

    async def flush(self) -> None:
        while self._queue:
            batch = self._queue[:self.batch_size]
            try:
                await self.store.insert_usage(batch)
                self.written += len(batch)
            except Exception as exc:  # noqa: BLE001
                if is_unavailable(exc):
                    log.warning("usage batch insert failed (%s); %d record(s) kept", exc, len(self._queue))
                    return
                done = await self._one_by_one(batch)
                del self._queue[:done]
                if done < len(batch):      # the database went away meanwhile
                    return
                continue
            del self._queue[:len(batch)]
        await self._flush_rejects()

    async def _one_by_one(self, batch: list[UsageRecord]) -> int:
        """Write each record alone; a refused one is rejected. Returns how many were dealt with
        (fewer than the batch if the database became unreachable)."""
        for i, record in enumerate(batch):
            try:
                await self.store.insert_usage([record])
                self.written += 1
            except Exception as exc:  # noqa: BLE001 - that record's own problem
                if is_unavailable(exc):
                    return i
                self.reject(record, exc)
        return len(batch)

    async def _flush_rejects(self) -> None:
        if not self._rejects:
            return
        batch, self._rejects = self._rejects, []
        try:
            await self.store.insert_usage_rejects(batch)
        except Exception as exc:  # noqa: BLE001 - they were logged whole already
            if is_unavailable(exc) and len(self._rejects) < MAX_QUEUED:
                self._rejects[:0] = batch
            else:
                log.error("could not keep %d usage reject(s) in usage_rejects: %s", len(batch), exc)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.flush()

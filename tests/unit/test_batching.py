"""Batcher: concurrent calls share round trips; failures and cancellations reach only their callers."""
from __future__ import annotations

import asyncio

import pytest

from routerone.batching import Batcher


class Recorder:
    def __init__(self, fail_on: set[int] | None = None, delay_s: float = 0.001) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on or set()
        self.delay_s = delay_s

    async def __call__(self, items):
        self.batches.append(list(items))
        await asyncio.sleep(self.delay_s)
        if self.fail_on & set(items):
            raise ValueError(f"bad item in {list(items)}")
        return [i * 10 for i in items]


async def test_calls_made_together_share_one_round_trip_and_results_keep_their_order() -> None:
    rec = Recorder()
    b = Batcher(rec)
    assert await asyncio.gather(*(b.submit(i) for i in range(50))) == [i * 10 for i in range(50)]
    assert rec.batches == [list(range(50))]
    assert (b.batches, b.items) == (1, 50)


async def test_calls_arriving_during_a_round_trip_ride_the_next_one() -> None:
    rec = Recorder(delay_s=0.02)
    b = Batcher(rec)
    first = asyncio.ensure_future(b.submit(0))
    await asyncio.sleep(0.005)                   # batch [0] is in flight now
    later = [asyncio.ensure_future(b.submit(i)) for i in range(1, 6)]
    assert await first == 0 and await asyncio.gather(*later) == [10, 20, 30, 40, 50]
    assert rec.batches == [[0], [1, 2, 3, 4, 5]]


async def test_max_batch_splits_a_burst() -> None:
    rec = Recorder()
    b = Batcher(rec, max_batch=4)
    await asyncio.gather(*(b.submit(i) for i in range(10)))
    assert rec.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_a_failing_batch_is_retried_item_by_item_so_only_the_bad_caller_fails() -> None:
    rec = Recorder(fail_on={3})
    b = Batcher(rec)
    results = await asyncio.gather(*(b.submit(i) for i in range(6)), return_exceptions=True)
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 10, 20, 40, 50]
    assert rec.batches[0] == list(range(6)) and rec.batches[1:] == [[i] for i in range(6)]


async def test_a_caller_cancelled_in_flight_gets_its_result_to_on_orphan_and_queued_ones_are_dropped() -> None:
    orphans: list[tuple[int, int]] = []
    rec = Recorder(delay_s=0.02)
    b = Batcher(rec, on_orphan=lambda item, result: orphans.append((item, result)))
    in_flight = asyncio.ensure_future(b.submit(1))
    await asyncio.sleep(0.005)
    queued = asyncio.ensure_future(b.submit(2))
    other = asyncio.ensure_future(b.submit(3))
    await asyncio.sleep(0)
    in_flight.cancel()
    queued.cancel()
    assert await other == 30
    with pytest.raises(asyncio.CancelledError):
        await in_flight
    assert orphans == [(1, 10)]
    assert rec.batches == [[1], [3]]


def test_rejects_nonsense_sizes() -> None:
    with pytest.raises(ValueError):
        Batcher(Recorder(), max_batch=0)


async def test_a_flush_cancelled_mid_round_trip_cancels_its_callers_instead_of_stranding_them() -> None:
    b = Batcher(Recorder(delay_s=1.0))
    calls = [asyncio.ensure_future(b.submit(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    later = asyncio.ensure_future(b.submit(9))
    await asyncio.sleep(0)
    for task in list(b._tasks):
        task.cancel()
    done, pending = await asyncio.wait([*calls, later], timeout=1)
    assert not pending and all(t.cancelled() for t in done)

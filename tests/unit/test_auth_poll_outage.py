"""The auth-version poll during a database outage: a warning, not a traceback per poll.

Found by blackbox11: `pg_terminate_backend` on Router One's connections during traffic made the poll
(every second) log "auth version poll failed" with a full asyncpg traceback. A database that cannot
be asked (store.errors.is_unavailable) is said in one line; anything else keeps its traceback.
"""
from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from routerone.services.auth import Authenticator


class FlakyStore:
    def __init__(self, failure: BaseException) -> None:
        self.failure = failure
        self.calls = 0

    async def auth_version(self) -> int:
        self.calls += 1
        if self.calls == 1:
            return 1
        raise self.failure


async def _poll_a_while(store: FlakyStore) -> None:
    auth = Authenticator(store, poll_interval_s=0.005)    # type: ignore[arg-type]
    await auth.start()
    while store.calls < 4:
        await asyncio.sleep(0.005)
    await auth.stop()


DROPPED = asyncpg.InternalClientError("cannot switch to state 11; another operation (2) is in progress")


@pytest.mark.parametrize("failure", [ConnectionRefusedError(111, "Connection refused"), DROPPED],
                         ids=["refused", "dropped-mid-operation"])
async def test_an_unreachable_database_is_one_line_without_a_traceback(failure, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="routerone.auth"):
        await _poll_a_while(FlakyStore(failure))
    polls = [r for r in caplog.records if "auth version poll" in r.getMessage()]
    assert polls and not [r for r in polls if r.exc_info], [r.getMessage() for r in polls]
    assert type(failure).__name__ in polls[0].getMessage()


async def test_any_other_failure_keeps_its_traceback(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="routerone.auth"):
        await _poll_a_while(FlakyStore(RuntimeError("a bug")))
    assert [r for r in caplog.records if r.exc_info]

"""Per-client-address limit on failed authentication, in process and bounded in memory.

Unauthenticated traffic costs Router One a database lookup per unknown key; this caps what one
address can make it spend. Each address gets `max_failures` failures per `window_s` (a fixed window
per address); past that, requests from it that cannot be authenticated from the cache are refused
with 429 `too_many_auth_failures` before any lookup, until its window ends. Keys already in the
authentication cache keep working from a blocked address (clients behind one NAT are not punished
for a neighbour's typos). At most `max_tracked` addresses are remembered (the oldest are forgotten),
so memory stays bounded whatever the number of addresses. Per worker process, not shared.
"""
from __future__ import annotations

import time
from typing import Callable

__all__ = ["AuthFailureLimiter"]


class AuthFailureLimiter:
    __slots__ = ("max_failures", "window_s", "max_tracked", "_clock", "_windows")

    def __init__(self, max_failures: int, *, window_s: float = 60.0, max_tracked: int = 65536,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_tracked = max_tracked
        self._clock = clock
        self._windows: dict[str, list] = {}     # address -> [window start, failures]; insertion ordered

    @property
    def enabled(self) -> bool:
        return self.max_failures > 0

    @property
    def tracked(self) -> int:
        return len(self._windows)

    def blocked_for_s(self, address: str | None) -> float:
        """Seconds until `address` may try again (0 when it may now)."""
        if not self.enabled or address is None:
            return 0.0
        w = self._windows.get(address)
        if w is None or w[1] < self.max_failures:
            return 0.0
        left = w[0] + self.window_s - self._clock()
        if left <= 0:
            del self._windows[address]
            return 0.0
        return left

    def failed(self, address: str | None) -> None:
        if not self.enabled or address is None:
            return
        now = self._clock()
        w = self._windows.get(address)
        if w is None or now - w[0] >= self.window_s:
            if w is not None:
                del self._windows[address]          # re-insert at the end: newest
            elif len(self._windows) >= self.max_tracked:
                del self._windows[next(iter(self._windows))]
            self._windows[address] = [now, 1]
        else:
            w[1] += 1

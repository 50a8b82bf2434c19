"""Reserve the worst case before a call, settle the real cost after (idempotent by request id),
and sweep reservations whose request died."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ..billing.prices import Price
from ..errors import InsufficientBalance, PermissionDenied
from ..store.base import Reservation, Settlement, Store
from ..wire.types import Usage
from .background import cancel_and_wait
from .auth import AuthContext

__all__ = ["Billing", "Hold"]
log = logging.getLogger("routerone.billing")


@dataclass(frozen=True, slots=True)
class Hold:
    request_id: str
    amount_micros: int
    markup_bps: int


class Billing:
    def __init__(self, store: Store, *, reservation_ttl_s: int = 900, sweep_interval_s: float = 10.0) -> None:
        self.store = store
        self.reservation_ttl_s = reservation_ttl_s
        self.sweep_interval_s = sweep_interval_s
        self.rejections = 0
        self.uncharged_micros = 0      # usage cost beyond what was reserved (never charged; see settle)
        self.overruns = 0              # settlements where that happened
        self._task: asyncio.Task | None = None

    async def reserve(self, auth: AuthContext, request_id: str, worst_case_micros: int) -> Hold:
        key = auth.key
        if key.spend_cap_micros is not None and key.spent_micros >= key.spend_cap_micros:
            raise PermissionDenied("This API key has reached its spend cap", code="spend_cap_reached")
        r = Reservation(request_id, auth.account.id, key.id, worst_case_micros,
                        time.time() + self.reservation_ttl_s)
        if not await self.store.reserve(r):
            self.rejections += 1
            fresh = await self.store.get_key(key.id)   # refusal path only: which check failed?
            if fresh is not None and fresh.spend_cap_micros is not None and \
                    fresh.spent_micros + fresh.reserved_micros + worst_case_micros > fresh.spend_cap_micros:
                raise PermissionDenied("This API key has reached its spend cap", code="spend_cap_reached")
            raise InsufficientBalance()
        return Hold(request_id, worst_case_micros, auth.account.markup_bps)

    async def settle(self, hold: Hold, price: Price, usage: Usage | None) -> Settlement:
        """Charge min(cost, hold): a balance is never taken past what was reserved for the call. Usage
        beyond the worst case (an upstream that ignores max_tokens or miscounts) is not charged, but
        it is not silent either: it is logged and counted (`uncharged_micros`, a metric)."""
        cost = price.cost_micros(usage, hold.markup_bps) if usage else 0
        if cost > hold.amount_micros:
            self.overruns += 1
            self.uncharged_micros += cost - hold.amount_micros
            log.warning("request %s: upstream usage costs %d micro-USD, more than the %d reserved; "
                        "charged the reservation, %d uncharged", hold.request_id, cost, hold.amount_micros,
                        cost - hold.amount_micros)
        for attempt in range(5):
            try:
                s = await self.store.settle(hold.request_id, cost)
                return s or Settlement(hold.request_id, 0, 0)
            except Exception:  # noqa: BLE001 - retried; the reservation sweep is the last resort
                log.exception("settle failed (attempt %d) for %s", attempt + 1, hold.request_id)
                await asyncio.sleep(0.05 * 2 ** attempt)
        raise RuntimeError(f"could not settle {hold.request_id}")

    async def release(self, hold: Hold) -> None:
        """The call produced nothing billable: close the hold with a zero charge."""
        await self.store.settle(hold.request_id, 0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._sweep(), name="reservation-sweep")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                n = await self.store.release_expired(time.time())
                if n:
                    log.warning("released %d expired reservation(s)", n)
            except Exception:  # noqa: BLE001
                log.warning("reservation sweep failed", exc_info=True)

"""Reserve the worst case before a call, settle the real cost after (idempotent by request id),
and sweep reservations whose request died.

Live holds: a reservation expires `reservation_ttl_s` after it is made, and any process's sweep
then releases it. A call may run longer than that (a long stream), so Billing keeps the holds
reserved here and not yet settled (pending settles included) and, at each sweep, before releasing
expired ones, moves the expiry of those that are near it (less than half the TTL, or two sweep
intervals, left) to now + TTL, in one store call for all (Store.extend_reservations). Nothing is
added to the request's own path: reserve and settle only update an in-memory map. A hold is live
while its Hold object is referenced: one dropped without a settle or a release (a bug) is no longer
extended and expires as before, as do the holds of a process that died.

A charge and its usage record cannot disagree: `settle(..., record=...)` hands the request's usage
row to the store, which writes it in the settle's own transaction (Store.settle_recorded) with the
charge as its cost. A released hold (`release`) writes its failure row the same way.

What comes from upstreams is checked first (`sane_usage`): prompt or completion counts that are
not plausible (not a number, a fraction, negative, above MAX_REPORTED_TOKENS) were marked where
usage is parsed (Usage.unreadable), and `usage_to_bill`, where every path's reported usage meets
Router One's own count, marks 0 for a prompt or for output that was relayed
(Usage.implausible_zeros) and replaces them all by that count (Usage.filled_from: a negative
count with text relayed is billed for that text, not 0); any other count that is negative is taken
as 0 and one above MAX_REPORTED_TOKENS as that bound; in every case the request is flagged (a
warning and `usage_flagged`). The charge is then, as always, min(cost, hold): a report beyond the
worst case costs the client at most what was reserved for it, and the part beyond the hold is not
charged but counted (`uncharged_micros`, exported as routerone_billing_uncharged_micros).

A usage row that the database refuses (it should not happen after rows.usage_tuple, but a
database may have its own limits) never blocks the charge: the settle is retried without it and
the record goes to the usage writer's rejects (a log line, a metric, the usage_rejects table).

Database unreachable at settle time: after a few quick retries the settle becomes *pending*: it
is kept in memory and retried by the background task until the database answers; its hold stays,
so it will charge exactly min(cost, hold), which is what the caller is told (Settlement.pending).
While any settle is pending this process does not sweep expired holds (a pending settle's hold
must not be released before it is charged). If another process sweeps the hold first, the late
settle charges what the balance and the key's cap still cover (the store's "expired" rule). A
process that dies with settles pending loses them (their holds expire unbilled): the count is
exported (routerone_billing_pending_settles) and stop() tries once more before exiting.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

from ..billing.prices import Price
from ..errors import DatabaseUnavailable, InsufficientBalance, PermissionDenied
from ..store.base import Reservation, Settlement, Store, UsageRecord
from ..store.errors import is_data_error, is_unavailable
from ..wire.types import MAX_REPORTED_TOKENS, Usage
from .background import cancel_and_wait
from .auth import AuthContext

if TYPE_CHECKING:
    from .usage import UsageWriter

__all__ = ["Billing", "Hold", "sane_usage", "usage_to_bill", "MAX_REPORTED_TOKENS"]
log = logging.getLogger("routerone.billing")

SETTLE_ATTEMPTS = 3                   # in the request, before the settle becomes pending
PENDING_RETRY_S = 1.0                 # how often pending settles are retried
_TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens")


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Hold:
    request_id: str
    amount_micros: int
    markup_bps: int


@dataclass(slots=True)
class _Pending:
    hold: Hold
    cost_micros: int
    record: UsageRecord | None
    since: float


@dataclass(slots=True)
class _Live:
    hold: "weakref.ref[Hold]"     # dead: the request dropped its hold without settling it
    expires_at: float             # as last written to the store


def sane_usage(usage: Usage) -> tuple[Usage, list[str]]:
    """Usage with every count an int in [0, MAX_REPORTED_TOKENS], and what had to be changed."""
    problems = [f"{name} unreadable (counted by Router One)" for name in usage.unreadable]
    fixed: dict = {"unreadable": ()} if usage.unreadable else {}     # said once, not at every check
    for name in _TOKEN_FIELDS:
        v = getattr(usage, name)
        try:
            n = int(v) if not isinstance(v, bool) else 0
        except (TypeError, ValueError, OverflowError):
            n = 0
        n = min(max(n, 0), MAX_REPORTED_TOKENS)
        if n != v or type(v) is not int:
            problems.append(f"{name}={v!r}")
            fixed[name] = n
    return (dataclasses.replace(usage, **fixed) if fixed else usage), problems


async def usage_to_bill(reported: Usage | None, *, prompt_tokens: int, has_output: Callable[[], bool],
                        count: Callable[[], Awaitable[Usage]]) -> Usage:
    """The usage a reply or stream is billed for, before `Billing.check_usage`: the upstream's
    `reported` counts where plausible, else Router One's own (`count`, awaited only then: it may
    load the tokenizer). A count of 0 where there was something to count (a prompt of
    `prompt_tokens`, output relayed: `has_output`) is not plausible either: a server that counts
    nothing says 0 and 0 (Usage.implausible_zeros). No usage at all: the count, estimated."""
    if reported is not None and 0 in (reported.prompt_tokens, reported.completion_tokens):
        reported = reported.implausible_zeros(prompt=prompt_tokens > 0, output=has_output())
    if reported is None:
        return await count()
    if reported.unreadable:          # counts that are not numbers, or implausible: Router One's own
        return reported.filled_from(await count())
    return reported


def _usd(micros: int) -> str:
    return f"${micros // 1_000_000}.{micros % 1_000_000:06d}"


def _cap_message(cap_micros: int, spent_micros: int, reserved_micros: int, worst_case_micros: int) -> str:
    """Why a key is refused at its spend cap. Spent at or over the cap: it "has reached" it. Else this
    request's worst case (its prompt and max_tokens, or the model's output cap, at the model's price,
    held until it ends) is more than the cap leaves after what the key spent and holds for calls in
    flight; the message gives both amounts (a key with nothing spent was told it "has reached" its cap)."""
    left = cap_micros - spent_micros - reserved_micros
    if spent_micros >= cap_micros:
        return "This API key has reached its spend cap"
    held = " and holds for calls in flight" if reserved_micros else ""
    return (f"This request could cost up to {_usd(worst_case_micros)} (its prompt and max_tokens, or the "
            f"model's output cap, at the model's price), more than the {_usd(max(left, 0))} left of this "
            f"API key's {_usd(cap_micros)} spend cap "
            f"(after what it spent{held}); send a lower max_tokens or raise the cap")


class Billing:
    def __init__(self, store: Store, *, reservation_ttl_s: int = 900, sweep_interval_s: float = 10.0,
                 usage: "UsageWriter | None" = None) -> None:
        self.store = store
        self.reservation_ttl_s = reservation_ttl_s
        self.sweep_interval_s = sweep_interval_s
        self.usage = usage             # where records the usage table refuses go (rejects)
        self.rejections = 0
        self.uncharged_micros = 0      # usage cost beyond what was reserved (never charged; see settle)
        self.overruns = 0              # settlements where that happened
        self.usage_flagged = 0         # settlements whose upstream usage had to be corrected
        self._pending: dict[str, _Pending] = {}
        self._live: dict[str, _Live] = {}    # holds reserved here and not yet settled (module docstring)
        self.holds_extended = 0        # expiry extensions written by the sweep
        self.pending_settled = 0       # pending settles written later
        self.recorded = 0              # usage rows written in their settle's own transaction
        self._task: asyncio.Task | None = None

    @property
    def pending_settles(self) -> int:
        return len(self._pending)

    @property
    def live_holds(self) -> int:
        return len(self._live)

    async def reserve(self, auth: AuthContext, request_id: str, worst_case_micros: int) -> Hold:
        key = auth.key
        if key.spend_cap_micros is not None and key.spent_micros >= key.spend_cap_micros:
            raise PermissionDenied("This API key has reached its spend cap", code="spend_cap_reached")
        r = Reservation(request_id, auth.account.id, key.id, worst_case_micros,
                        time.time() + self.reservation_ttl_s)
        try:
            granted = await self.store.reserve(r)
            fresh = None if granted else await self.store.get_key(key.id)  # refusal: which check failed?
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("reserve for %s: database unavailable (%s: %s)", request_id, type(exc).__name__, exc)
                raise DatabaseUnavailable() from exc
            raise
        if not granted:
            self.rejections += 1
            if fresh is not None and fresh.spend_cap_micros is not None and \
                    fresh.spent_micros + fresh.reserved_micros + worst_case_micros > fresh.spend_cap_micros:
                raise PermissionDenied(_cap_message(fresh.spend_cap_micros, fresh.spent_micros, fresh.reserved_micros,
                                                    worst_case_micros), code="spend_cap_reached")
            raise InsufficientBalance()
        hold = Hold(request_id, worst_case_micros, auth.account.markup_bps)
        self._live[request_id] = _Live(weakref.ref(hold), r.expires_at)
        return hold

    def check_usage(self, request_id: str, usage: Usage) -> Usage:
        """`sane_usage`, logged and counted when something had to change."""
        fixed, problems = sane_usage(usage)
        if problems:
            self.usage_flagged += 1
            log.warning("request %s: implausible usage from upstream (%s); counted as %s",
                        request_id, ", ".join(problems), fixed.to_openai())
        return fixed

    async def settle(self, hold: Hold, price: Price, usage: Usage | None,
                     record: UsageRecord | None = None) -> Settlement:
        """Charge min(cost, hold): a balance is never taken past what was reserved for the call. Usage
        beyond the worst case (an upstream that ignores max_tokens or miscounts) is not charged, but
        it is not silent either: it is logged and counted (`uncharged_micros`, a metric).
        With `record`, its token counts are set from the (checked) usage and it is written with
        the charge. Never raises for a database problem: see "pending" in the module docstring."""
        if usage is not None:
            usage = self.check_usage(hold.request_id, usage)
        cost = price.cost_micros(usage, hold.markup_bps) if usage else 0
        if cost > hold.amount_micros:
            self.overruns += 1
            self.uncharged_micros += cost - hold.amount_micros
            log.warning("request %s: upstream usage costs %d micro-USD, more than the %d reserved; "
                        "charged the reservation, %d uncharged", hold.request_id, cost, hold.amount_micros,
                        cost - hold.amount_micros)
        if record is not None and usage is not None:
            record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            record.cached_tokens = usage.cached_tokens
        return await self._settle(hold, cost, record)

    async def release(self, hold: Hold, record: UsageRecord | None = None) -> Settlement:
        """The call produced nothing billable: close the hold with a zero charge (and its row)."""
        return await self._settle(hold, 0, record)

    async def _settle(self, hold: Hold, cost: int, record: UsageRecord | None) -> Settlement:
        try:
            return await self._settle_or_pend(hold, cost, record)
        finally:                       # written, or abandoned (cancelled): no longer extended
            if hold.request_id not in self._pending:
                self._live.pop(hold.request_id, None)

    async def _settle_or_pend(self, hold: Hold, cost: int, record: UsageRecord | None) -> Settlement:
        rid = hold.request_id
        p = _Pending(hold, cost, record, time.monotonic())
        for attempt in range(SETTLE_ATTEMPTS):
            try:
                return await self._write(p)
            except Exception as exc:  # noqa: BLE001 - retried, then pending
                level = logging.WARNING if is_unavailable(exc) else logging.ERROR
                log.log(level, "settle of %s failed (attempt %d): %s: %s", rid, attempt + 1,
                        type(exc).__name__, exc, exc_info=level == logging.ERROR)
                if attempt + 1 < SETTLE_ATTEMPTS:
                    await asyncio.sleep(0.05 * 2 ** attempt)
        self._pending[rid] = p
        log.warning("settle of %s is pending (database unavailable): %d micro-USD to charge when it is "
                    "back; its hold of %d stays", rid, min(cost, hold.amount_micros), hold.amount_micros)
        return Settlement(rid, min(cost, hold.amount_micros), 0, pending=True)

    async def _write(self, p: _Pending) -> Settlement:
        """One settle; a usage row the database refuses is set aside (p.record = None) and the
        settle goes on without it."""
        rid = p.hold.request_id
        if p.record is not None:
            try:
                s = await self.store.settle_recorded(rid, p.cost_micros, p.record)
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                self._reject(p.record, exc)
                p.record = None
            else:
                if s is None:                    # no reservation (lost): the row goes on its own
                    self._unrecorded(p.record)
                    return Settlement(rid, 0, 0)
                self.recorded += 1
                return s
        s = await self.store.settle(rid, p.cost_micros)
        return s or Settlement(rid, 0, 0)

    def _reject(self, record: UsageRecord, exc: BaseException) -> None:
        if self.usage is not None:
            self.usage.reject(record, exc)
        else:
            log.error("usage row for %s refused by the database (%s: %s): %r", record.request_id,
                      type(exc).__name__, exc, record)

    def _unrecorded(self, record: UsageRecord) -> None:
        if self.usage is not None:
            self.usage.add(record)

    async def retry_pending(self) -> int:
        """Try every pending settle once; returns how many are still pending."""
        if not self._pending:
            return 0
        items = list(self._pending.values())

        async def one(p: _Pending) -> None:
            try:
                await self._write(p)
            except Exception as exc:  # noqa: BLE001 - still pending
                log.debug("pending settle of %s still failing: %s", p.hold.request_id, exc)
                return
            self._pending.pop(p.hold.request_id, None)
            self._live.pop(p.hold.request_id, None)
            self.pending_settled += 1
            log.warning("pending settle of %s written after %.1f s", p.hold.request_id,
                        time.monotonic() - p.since)
        for i in range(0, len(items), 256):
            await asyncio.gather(*(one(p) for p in items[i:i + 256]))
        return len(self._pending)

    async def start(self) -> None:
        if 2 * self.sweep_interval_s >= self.reservation_ttl_s:
            log.warning("reservation_sweep_interval_s (%s) is not under half of reservation_ttl_s (%s): a "
                        "running call's hold may expire between two sweeps, and another process's sweep "
                        "release it", self.sweep_interval_s, self.reservation_ttl_s)
        self._task = asyncio.create_task(self._sweep(), name="reservation-sweep")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._pending:
            try:
                await asyncio.wait_for(self.retry_pending(), 5.0)
            except asyncio.TimeoutError:
                pass
            for p in self._pending.values():
                log.error("stopping with the settle of %s still pending: %d micro-USD uncharged, its hold "
                          "expires unbilled", p.hold.request_id, min(p.cost_micros, p.hold.amount_micros))

    async def _sweep(self) -> None:
        last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(min(self.sweep_interval_s, PENDING_RETRY_S))
            still_pending = bool(self._pending) and await self.retry_pending() > 0
            if time.monotonic() - last_sweep < self.sweep_interval_s:
                continue
            last_sweep = time.monotonic()
            await self.extend_live_holds(time.time())
            if still_pending:
                continue     # never release holds while their settles wait (module docstring)
            try:
                n = await self.store.release_expired(time.time())
                if n:
                    log.warning("released %d expired reservation(s)", n)
            except Exception:  # noqa: BLE001
                log.warning("reservation sweep failed", exc_info=True)

    async def extend_live_holds(self, now: float) -> int:
        """Move the expiry of this process's live holds that are near it to now + TTL (one store
        call); returns how many the store moved. A failure is logged and retried at the next sweep."""
        margin_s = max(self.reservation_ttl_s / 2, 2 * self.sweep_interval_s)
        due: list[str] = []
        for rid, live in list(self._live.items()):
            if live.hold() is None:
                del self._live[rid]
                log.error("hold of %s was dropped without a settle or a release; it expires at its TTL", rid)
            elif live.expires_at - now < margin_s:
                due.append(rid)
        if not due:
            return 0
        until = now + self.reservation_ttl_s
        try:
            n = await self.store.extend_reservations(due, until)
        except Exception:  # noqa: BLE001
            log.warning("extending %d live hold(s) failed", len(due), exc_info=True)
            return 0
        for rid in due:
            if (live := self._live.get(rid)) is not None:
                live.expires_at = until
        self.holds_extended += n
        return n

"""The storage seam. Two implementations (sqlite.py, postgres.py), one contract suite.

Money is integer micro-dollars. The ledger is append-only; `accounts.balance_micros` is its running
sum, updated in the same transaction as every ledger row. A reservation holds part of a balance
during a call: available = balance - reserved. `reserve` is all-or-nothing and atomic across
processes; `settle` is idempotent by request id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

__all__ = ["Account", "ApiKey", "Limits", "Reservation", "Settlement", "UsageRecord", "UsageQuery",
           "Store", "NewKey", "LedgerEntry"]


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    balance_micros: int
    reserved_micros: int
    spent_micros: int
    markup_bps: int = 0
    limits: Limits = Limits()
    created_at: float = 0.0

    @property
    def available_micros(self) -> int:
        return self.balance_micros - self.reserved_micros


@dataclass(frozen=True, slots=True)
class NewKey:
    account_id: int
    key_hash: str
    prefix: str
    name: str = ""
    role: str = "user"                         # user | admin
    expires_at: float | None = None
    spend_cap_micros: int | None = None
    allowed_models: tuple[str, ...] = ()
    limits: Limits = Limits()
    strategy: str | None = None
    willingness_to_pay: float | None = None    # `auto` routing default for this key, 0..1


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    account_id: int
    prefix: str
    name: str
    role: str
    revoked: bool
    expires_at: float | None
    spend_cap_micros: int | None
    spent_micros: int
    reserved_micros: int
    allowed_models: tuple[str, ...]
    limits: Limits
    strategy: str | None
    created_at: float
    willingness_to_pay: float | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    request_id: str
    account_id: int
    key_id: int
    amount_micros: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class Settlement:
    request_id: str
    charged_micros: int          # what the ledger recorded (never more than was reserved)
    balance_micros: int          # account balance after the charge


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    account_id: int
    amount_micros: int           # + credit, - charge/debit
    kind: str                    # credit | debit | charge
    note: str
    request_id: str | None
    created_at: float


@dataclass(slots=True)
class UsageRecord:
    request_id: str
    key_id: int
    account_id: int
    requested_model: str
    routed_model: str
    provider: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_micros: int = 0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: int = 200
    error_type: str | None = None
    stream: bool = False
    created_at: float = 0.0
    protocol: str = "chat"                    # chat | messages | responses | embeddings
    route_reason: str | None = None           # the routing plan's reason (x-routerone-reason)
    fallbacks: str | None = None              # what was tried before the answer (x-routerone-fallbacks)


@dataclass(frozen=True, slots=True)
class UsageQuery:
    account_id: int | None = None
    key_id: int | None = None
    model: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class UsageTotals:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0


@dataclass(slots=True)
class UsagePage:
    records: list[UsageRecord] = field(default_factory=list)
    totals: UsageTotals = UsageTotals()


class Store(Protocol):
    async def migrate(self) -> None: ...
    async def close(self) -> None: ...

    # accounts and money
    async def create_account(self, name: str, *, markup_bps: int = 0, limits: Limits = Limits()) -> Account: ...
    async def get_account(self, account_id: int) -> Account | None: ...
    async def list_accounts(self) -> list[Account]: ...
    async def update_account(self, account_id: int, *, markup_bps: int | None = None,
                             limits: Limits | None = None) -> Account | None: ...
    async def adjust_balance(self, account_id: int, amount_micros: int, *, kind: str, note: str = "") -> Account:
        """Credit (amount > 0) or debit (amount < 0). A debit may not take available below zero."""
    async def ledger(self, account_id: int, limit: int = 100) -> list[LedgerEntry]: ...
    async def ledger_sum(self, account_id: int) -> int: ...

    # keys
    async def create_key(self, new: NewKey) -> ApiKey: ...
    async def key_by_hash(self, key_hash: str) -> ApiKey | None: ...
    async def get_key(self, key_id: int) -> ApiKey | None: ...
    async def list_keys(self, account_id: int | None = None) -> list[ApiKey]: ...
    async def update_key(self, key_id: int, *, limits: Limits | None = None, spend_cap_micros: int | None = None,
                         allowed_models: Sequence[str] | None = None, expires_at: float | None = None) -> ApiKey | None: ...
    async def revoke_key(self, key_id: int) -> bool: ...
    async def bootstrap_admin(self, key_hash: str, prefix: str, *, only_if_no_admin: bool) -> ApiKey | None:
        """Atomically, once across processes: an 'admin' account (the first account, made if there
        is none) and an admin key with this hash. Returns the key if made now, None if it (or, with
        only_if_no_admin, any active admin key) already exists."""
    async def auth_version(self) -> int:
        """A counter bumped by every change to keys or accounts that auth caches must see."""

    # billing
    async def reserve(self, r: Reservation) -> bool:
        """Hold r.amount_micros if account available (and key cap) allow; False otherwise."""
    async def settle(self, request_id: str, cost_micros: int) -> Settlement | None:
        """Charge and release the hold. Idempotent: a repeated call returns the first result."""
    async def release_expired(self, now: float) -> int: ...
    async def open_reservations(self, account_id: int | None = None) -> int: ...

    # usage
    async def insert_usage(self, records: Sequence[UsageRecord]) -> None: ...
    async def query_usage(self, q: UsageQuery) -> UsagePage: ...

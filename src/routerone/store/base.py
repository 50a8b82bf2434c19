"""The storage seam. Two implementations (sqlite.py, postgres.py), one contract suite.

Money is integer micro-dollars. The ledger is append-only; `accounts.balance_micros` is its running
sum, updated in the same transaction as every ledger row. A reservation holds part of a balance
during a call: available = balance - reserved. `reserve` is all-or-nothing and atomic across
processes; `settle` is idempotent by request id.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final, Iterable, Protocol, Sequence

__all__ = ["Account", "ApiKey", "Limits", "Reservation", "Settlement", "UsageRecord", "UsageQuery",
           "Store", "NewKey", "LedgerEntry", "AuditEntry", "StoredResponse", "UsageReject", "Unset", "UNSET",
           "DuplicateAccountName", "account_name_key", "refuse_taken_name", "PING_LOCK_WAIT_MS",
           "REQUEST_PATH_TABLES"]

# `Store.ping`: how long it waits for the request path's write locks before calling the store
# locked (a lock held for less, e.g. a quick migration, does not make an instance unready), and
# the tables whose writes every billed request makes (reserve, settle, usage, the auth cache).
PING_LOCK_WAIT_MS: Final = 250
REQUEST_PATH_TABLES: Final = ("accounts", "api_keys", "auth_version", "ledger", "reservations", "usage")


class Unset(enum.Enum):
    """A field a patch leaves alone, where None is a value (a key's strategy or willingness to pay:
    None means the gateway's default)."""
    UNSET = "unset"


UNSET: Final = Unset.UNSET


def account_name_key(name: str) -> str:
    """What makes two account names the same: case (casefold) and the ends' whitespace do not count."""
    return name.strip().casefold()


class DuplicateAccountName(ValueError):
    """`create_account` with a name another account has (`account_name_key`): `account_id` / `name`
    are that account's. Databases from before the check may hold duplicates; they keep working."""

    def __init__(self, account_id: int, name: str) -> None:
        super().__init__(f"account {account_id} is already named {name!r}")
        self.account_id, self.name = account_id, name


def refuse_taken_name(accounts: Iterable[tuple[int, str]], name: str) -> None:
    """Raise DuplicateAccountName for the first of `accounts` (id, name) named like `name`. Compared
    in Python, not SQL: SQLite's lower() folds ASCII only, PostgreSQL's depends on the locale."""
    key = account_name_key(name)
    for account_id, other in accounts:
        if account_name_key(other) == key:
            raise DuplicateAccountName(account_id, other)


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
    pending: bool = False        # not written yet (database unreachable): Billing retries it; the
                                 # hold stays, so charged_micros is what the retry will charge


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    account_id: int
    amount_micros: int           # + credit, - charge/debit
    kind: str                    # credit | debit | charge
    note: str
    request_id: str | None
    created_at: float
    actor: str = ""              # who made a credit/debit ("admin-key:3", "console:ops@x", "cli"); '' for charges


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    created_at: float
    actor: str                   # "admin-key:<id>", "console:<email>", "cli"
    action: str                  # e.g. "key.create", "key.revoke", "account.credit"
    target: str                  # e.g. "key:12", "account:3"
    detail: str                  # JSON text of what changed (never a secret)


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
    async def create_account(self, name: str, *, markup_bps: int = 0, limits: Limits = Limits()) -> Account:
        """DuplicateAccountName when another account has this name (atomic: of two at once, one wins)."""
    async def get_account(self, account_id: int) -> Account | None: ...
    async def list_accounts(self) -> list[Account]: ...
    async def has_accounts(self) -> bool:
        """Whether any account exists (one indexed probe: start-up asks it on every start)."""
        ...
    async def update_account(self, account_id: int, *, markup_bps: int | None = None,
                             limits: Limits | None = None) -> Account | None: ...
    async def adjust_balance(self, account_id: int, amount_micros: int, *, kind: str, note: str = "",
                             actor: str = "") -> Account:
        """Credit (amount > 0) or debit (amount < 0). A debit may not take available below zero.
        `actor` is recorded on the ledger row (who did it)."""
    async def ledger(self, account_id: int, limit: int = 100, *, before_id: int | None = None) -> list[LedgerEntry]:
        """Newest first; with `before_id`, only entries older than that one (the next page)."""
    async def ledger_sum(self, account_id: int) -> int: ...
    async def withdraw_unspent_grant(self, *, grant_note: str, note: str, actor: str) -> tuple[int, int] | None:
        """On the first account (the one the first start makes): debit (kind debit, `note`, `actor`)
        what is left of its first credit noted `grant_note` (bounds.unspent_grant_micros), in one
        transaction, so that gateways starting together take it once. Returns (account id, micros
        taken), or None when nothing was. A withdrawal of all that was left is noted `note` (by
        `actor`) and marked in grant_withdrawals; once one is (or, in a database from before that
        table, a debit noted `note` by `actor` is in the ledger), or with nothing available, the
        ledger since the grant is not summed again; one held back by requests in flight is noted
        partial (bounds.withdrawal_note) and not marked."""

    # keys
    async def create_key(self, new: NewKey) -> ApiKey: ...
    async def key_by_hash(self, key_hash: str) -> ApiKey | None: ...
    async def get_key(self, key_id: int) -> ApiKey | None: ...
    async def list_keys(self, account_id: int | None = None, limit: int | None = None, *,
                        after_id: int | None = None) -> list[ApiKey]:
        """Oldest first (by id): one account's keys (None: every account's), at most `limit` (None:
        all; never from a request handler), with `after_id` only keys newer than that one (the next page)."""
    async def recent_keys(self, account_id: int | None, limit: int, *, before_id: int | None = None) -> list[ApiKey]:
        """Newest first, at most `limit`; with `before_id`, only keys older than that one (the next page)."""
    async def key_named(self, account_id: int, name: str) -> ApiKey | None:
        """The oldest active (not revoked) user-role key of this account with this name, if any."""
    async def count_keys(self, account_id: int, *, active_only: bool = False, at_most: int | None = None) -> int:
        """How many keys the account has (`active_only`: not revoked), counting at most `at_most`."""
    async def update_key(self, key_id: int, *, limits: Limits | None = None,
                         spend_cap_micros: int | None | Unset = UNSET, allowed_models: Sequence[str] | None = None,
                         expires_at: float | None | Unset = UNSET, name: str | None = None, strategy: str | None | Unset = UNSET,
                         willingness_to_pay: float | None | Unset = UNSET) -> ApiKey | None:
        """Change the fields given (None: unchanged; for spend_cap_micros and expires_at None removes
        the cap or expiry, for strategy and willingness_to_pay it is the gateway default, and UNSET
        leaves them alone), in one transaction that bumps auth_version."""
    async def revoke_key(self, key_id: int) -> bool: ...
    async def bootstrap_admin(self, key_hash: str, prefix: str, *, only_if_no_admin: bool,
                              name: str = "bootstrap admin") -> ApiKey | None:
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
    async def extend_reservations(self, request_ids: Sequence[str], expires_at: float) -> int:
        """Move the expiry of those of these reservations that are open and expire before
        `expires_at` to `expires_at`: the holds of calls still running in this process (Billing's
        sweep). Returns how many were moved; ids that are settled, expired or unknown, or that
        already expire later, are left alone. A row that another transaction holds (being settled
        or released right now) may be skipped. One call for all: it runs in the sweep, not per request."""
    async def open_reservations(self, account_id: int | None = None) -> int: ...

    # usage
    async def insert_usage(self, records: Sequence[UsageRecord]) -> None: ...
    async def query_usage(self, q: UsageQuery) -> UsagePage: ...

    # audit
    async def record_audit(self, actor: str, action: str, target: str = "", detail: str = "") -> None:
        """Append one audit entry (who, what, when). Never pass a secret in `detail`."""
    async def list_audit(self, limit: int = 100, *, target: str | None = None,
                         before_id: int | None = None) -> list[AuditEntry]:
        """Newest first; `target` filters on one object ("account:3"); with `before_id`, only
        entries older than that one (the next page)."""

    # health
    async def ping(self) -> None:
        """Readiness: one cheap round trip that also asks for the locks the request path's writes
        take (without writing), waiting at most PING_LOCK_WAIT_MS for them. Raises `StoreLocked`
        when another session holds a lock that blocks those writes, and the driver's error when
        the database cannot be reached."""

    # stored Responses-API responses (previous_response_id), always scoped to one account
    async def put_response(self, r: "StoredResponse") -> None:
        """Insert (or replace) a stored response."""
    async def get_response(self, response_id: str, account_id: int) -> "StoredResponse | None":
        """The response with this id if it belongs to `account_id`, else None."""
    async def delete_response(self, response_id: str, account_id: int, *, created_after: float | None = None) -> bool:
        """Delete it if it belongs to `account_id`; True when a row was deleted. With `created_after`,
        a row created before it (expired) is deleted all the same, but reported as False."""
    async def purge_responses(self, created_before: float, limit: int) -> int:
        """Delete at most `limit` stored responses created before `created_before` (any account,
        oldest first); how many were deleted. Never holds the event loop for the deletion."""

    # usage recorded with the charge (issue 11): a charge and its usage row cannot disagree
    async def settle_recorded(self, request_id: str, cost_micros: int, record: UsageRecord) -> Settlement | None:
        """`settle`, and in the same transaction the request's usage row, whose cost_micros is
        set to the charge. Only the call that settles the reservation writes the row (a repeat
        returns the first result and writes nothing); no reservation: nothing is written."""
    async def insert_usage_rejects(self, rejects: Sequence[UsageReject]) -> None:
        """Keep usage records the usage table refused, for an operator (table usage_rejects)."""

    # console (web console users, sessions, and the aggregates its pages read)
    async def create_console_user(self, email: str, password_hash: str, *, account_id: int,
                                  role: str = "user") -> "ConsoleUser":
        """A console user (email unique, stored lower-case). ValueError if the email is taken."""
    async def console_user_by_email(self, email: str) -> "ConsoleUser | None": ...
    async def get_console_user(self, user_id: int) -> "ConsoleUser | None": ...
    async def list_console_users(self, account_id: int | None = None) -> "list[ConsoleUser]": ...
    async def update_console_user(self, user_id: int, *, password_hash: str | None = None,
                                  disabled: bool | None = None) -> "ConsoleUser | None": ...
    async def create_console_session(self, session: "ConsoleSession") -> None: ...
    async def console_session(self, token_hash: str, now: float) -> "tuple[ConsoleSession, ConsoleUser] | None":
        """The unexpired session with this token hash and its (enabled) user, else None."""
    async def delete_console_sessions(self, *, token_hash: str | None = None, user_id: int | None = None,
                                      expired_before: float | None = None) -> int:
        """Delete sessions matching any given criterion; returns how many."""
    async def usage_rollup(self, q: UsageQuery, bucket_s: int) -> "list[UsageBucket]":
        """Usage summed per (time bucket, routed model, key) over q's filters (q.limit is ignored)."""
    async def usage_summary(self, q: UsageQuery, bucket_s: int) -> "UsageSummary":
        """usage_rollup's sums in two smaller groupings, read in one snapshot: per (time bucket,
        routed model), key_id 0, and per key, bucket_start 0.0 and routed_model "" (what the
        Activity page shows: ~1,000 rows for 100k usage rows, not one per bucket, model and key)."""
    async def usage_log(self, q: "UsageLogQuery") -> list[UsageRecord]:
        """One page of usage rows, newest first, filtered as q says."""
    async def key_last_used(self, account_id: int | None = None) -> dict[int, float]:
        """key id -> time of its newest usage row."""
    async def usage_count(self, q: UsageQuery) -> int:
        """How many usage rows match q's account and time range (an index-only count)."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A Responses-API response kept for `previous_response_id` and GET/DELETE: `body` is the
    Response object's JSON, `context` the JSON list of input and output items the next turn
    continues from."""
    id: str
    account_id: int
    key_id: int
    created_at: float
    body: str
    context: str


@dataclass(frozen=True, slots=True)
class UsageReject:
    request_id: str | None
    reason: str                  # why it could not be written (the database's error, one line)
    record: str                  # the record as JSON (rows.reject_json)
    created_at: float


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    id: int
    email: str
    account_id: int
    role: str                    # user | operator
    password_hash: str           # argon2id PHC string; never rendered
    disabled: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    token_hash: str              # sha256 of the cookie's token; the token itself is never stored
    user_id: int
    csrf_token: str
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class UsageBucket:
    bucket_start: float          # unix time, UTC, a multiple of the bucket size
    routed_model: str
    key_id: int
    requests: int
    errors: int                  # rows with status >= 400
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int


@dataclass(slots=True)
class UsageSummary:
    """Store.usage_summary: usage summed per (time bucket, routed model) and per key."""
    by_time_model: list[UsageBucket] = field(default_factory=list)
    by_key: list[UsageBucket] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.by_time_model) + len(self.by_key)

    def extend(self, other: "UsageSummary") -> None:
        self.by_time_model.extend(other.by_time_model)
        self.by_key.extend(other.by_key)


@dataclass(frozen=True, slots=True)
class UsageLogQuery:
    account_id: int | None = None
    key_id: int | None = None
    model: str | None = None     # matches the requested or the routed model
    status: str | None = None    # "ok" (< 400), "error" (>= 400), or an exact code such as "429"
    since: float | None = None
    until: float | None = None
    limit: int = 50
    offset: int = 0


__all__ += ["ConsoleUser", "ConsoleSession", "UsageBucket", "UsageLogQuery", "UsageSummary"]

"""Operator actions on accounts, keys and money, shared by the admin API and the CLI.

Every state change is checked here (the admin API checks its bodies first; the CLI and the
console come straight here), applied, and then recorded in the audit log with its actor:
"admin-key:<id>" (admin API), "cli", "console:<email>", or "system" (the bootstrap admin key).
Audit details never hold a secret: a new key is recorded by id, never by its value or prefix.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Collection, Literal, Mapping, Sequence

import orjson

from ..catalog import Catalog, allowlist_pattern_error
from ..embedding_catalog import load_embedding_models
from ..errors import Conflict, InvalidRequest, NotFound
from ..store.base import (UNSET, Account, ApiKey, AuditEntry, DuplicateAccountName, Limits, NewKey, Store, Unset,
                          UsagePage, UsageQuery)
from ..store.bounds import MAX_AMOUNT_MICROS, MAX_BALANCE_MICROS, MAX_SPEND_CAP_MICROS
from .auth import Authenticator
from .keys import display_prefix, generate_key, hash_key

__all__ = ["AccountsService", "IssuedKey", "AuditPage", "LimitsPatch", "DEFAULT_STRATEGIES", "CLI_ACTOR",
           "DEMO_CREDIT_NOTE",
           "AUDIT_SCAN_MAX"]

DEFAULT_STRATEGIES = ("balanced", "quality", "cost", "latency")
CLI_ACTOR = "cli"
SYSTEM_ACTOR = "system"
DEMO_CREDIT_NOTE = "demo credit"                 # the ledger note of the first start's demo credit
DEMO_WITHDRAWN_NOTE = "demo credit withdrawn"    # ... and of its withdrawal once the demo is off
# (keep its text: databases from before grant_withdrawals know a complete withdrawal only by it)
CONFIGURED_ADMIN = "configured admin"   # the name of an admin key registered from admin_key
log = logging.getLogger("routerone.accounts")
AUDIT_SCAN_MAX = 10_000          # entries one GET /admin/audit reads at most to filter by actor/action/since
AUDIT_SCAN_CHUNK = 1_000         # ... in store pages of this many
AUDIT_CLOCK_SLACK_S = 60.0       # ids follow time only up to clock differences between gateways
MAX_INT32 = 2**31 - 1
MAX_MARKUP_BPS = 1_000_000
MAX_EXPIRES_AT = 253_402_300_799.0
LimitName = Literal["rpm", "tpm", "concurrency"]
LimitsPatch = Mapping[LimitName, "int | None"]   # only the limits to change; None removes one


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: str          # the secret, shown once
    record: ApiKey


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]
    next_before_id: int | None       # pass as before_id for the next (older) page; None at the end


def _audit_page(entries: list[AuditEntry], limit: int, scan_cursor: int | None) -> AuditPage:
    """The first `limit` of `entries` (one more means there are more), else go on from scan_cursor."""
    if len(entries) > limit:
        return AuditPage(entries[:limit], entries[limit - 1].id)
    return AuditPage(entries, scan_cursor)


def _int_in(value: object, lo: int, hi: int, param: str) -> int:
    if type(value) is not int or not lo <= value <= hi:      # noqa: E721 - bool is not an int here
        raise InvalidRequest(f"'{param}' must be an integer between {lo} and {hi}", param=param)
    return value


def _text(value: str, param: str, *, max_len: int = 200, required: bool = False) -> str:
    if not isinstance(value, str) or "\x00" in value or len(value) > max_len or (required and not value):
        raise InvalidRequest(f"'{param}' must be {'a non-empty' if required else 'a'} string of at most "
                             f"{max_len} characters without NUL", param=param)
    return value


def _limits(limits: Limits) -> Limits:
    """rpm / tpm / concurrency: 1.. or None (no limit). 0 was stored and then read as no limit at all
    (`rpm or default_rpm`), so an operator's 0 meant to stop a key let it through unlimited."""
    for name in ("rpm", "tpm", "concurrency"):
        v = getattr(limits, name)
        if v is not None:
            _int_in(v, 1, MAX_INT32, name)
    return limits


def _stored(limits: Limits) -> Limits:
    """Limits as stored, a 0 from before 0 was refused read as what it did: no limit (so that a PATCH
    of another limit is not refused for a value the caller did not send)."""
    return Limits(*(v or None for v in (limits.rpm, limits.tpm, limits.concurrency)))


def _models(models: Sequence[str]) -> tuple[str, ...]:
    out = tuple(models)
    for m in out:     # stored comma-separated: a comma, space or empty name would change the list
        if not isinstance(m, str) or not m or len(m) > 200 or any(c in m for c in ", \t\n\r\x00"):
            raise InvalidRequest(f"'allowed_models' must be model ids without commas or spaces, got {m!r}",
                                 param="allowed_models")
    slow = allowlist_pattern_error(out)
    if slow is not None:
        raise InvalidRequest(f"'allowed_models' {slow}", param="allowed_models")
    return tuple(dict.fromkeys(out))


def _expiry(expires_at: float | None) -> float | None:
    if expires_at is not None and (isinstance(expires_at, bool) or not isinstance(expires_at, (int, float))
                                   or not math.isfinite(expires_at) or not 0 <= expires_at <= MAX_EXPIRES_AT):
        raise InvalidRequest(f"'expires_at' must be a unix timestamp between 0 and {MAX_EXPIRES_AT:.0f}",
                             param="expires_at")
    return None if expires_at is None else float(expires_at)


def _wtp(value: float | None) -> float | None:
    """A key's willingness to pay: a finite number 0..1, or None (the gateway default)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not math.isfinite(value) or not 0 <= value <= 1):
        raise InvalidRequest(f"'willingness_to_pay' must be a number from 0 to 1 (or null for the gateway "
                             f"default), got {str(value)[:40]!r}", param="willingness_to_pay")
    return None if value is None else float(value) + 0.0     # -0 (a -0.0 was stored and audited so) is 0.0


def _limits_dict(limits: Limits) -> dict:
    return {"rpm": limits.rpm, "tpm": limits.tpm, "concurrency": limits.concurrency}


class AccountsService:
    def __init__(self, store: Store, auth: Authenticator | None = None, *,
                 strategies: Collection[str] = DEFAULT_STRATEGIES, catalog: Catalog | None = None) -> None:
        self.store = store
        self.auth = auth
        self.strategies = tuple(strategies)
        self.catalog = catalog        # when given, a key's allowed_models must name models it knows
        self.embedding_ids = tuple(load_embedding_models(catalog)) if catalog is not None else ()

    def _changed(self) -> None:
        if self.auth is not None:
            self.auth.invalidate()

    async def _audit(self, actor: str, action: str, target: str, detail: dict) -> None:
        await self.store.record_audit(actor, action, target, orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode())

    # -- accounts and money ---------------------------------------------------------------------
    async def create_account(self, name: str, *, markup_bps: int = 0, limits: Limits = Limits(),
                             initial_micros: int = 0, actor: str = CLI_ACTOR) -> Account:
        _text(name, "name", required=True)
        _int_in(markup_bps, 0, MAX_MARKUP_BPS, "markup_bps")
        _limits(limits)
        if initial_micros:
            _int_in(initial_micros, 0, MAX_BALANCE_MICROS, "balance_micros")
        try:
            acc = await self.store.create_account(name, markup_bps=markup_bps, limits=limits)
        except DuplicateAccountName as exc:
            raise Conflict(f"The name is taken: account {exc.account_id} is named {exc.name!r} (account names are "
                           "unique, ignoring case and surrounding spaces)", param="name",
                           code="account_name_taken") from None
        await self._audit(actor, "account.create", f"account:{acc.id}", {
            "name": name, "markup_bps": markup_bps, "limits": _limits_dict(limits), "balance_micros": initial_micros})
        if initial_micros:
            acc = await self.store.adjust_balance(acc.id, initial_micros, kind="credit", note="initial balance",
                                                  actor=actor)
        return acc

    async def account(self, account_id: int) -> Account:
        acc = await self.store.get_account(account_id)
        if acc is None:
            raise NotFound(f"No account {account_id}")
        return acc

    async def credit(self, account_id: int, amount_micros: int, note: str = "", *, actor: str = CLI_ACTOR,
                     param: str = "amount_micros") -> Account:
        return await self._adjust(account_id, amount_micros, "credit", note, actor, param)

    async def debit(self, account_id: int, amount_micros: int, note: str = "", *, actor: str = CLI_ACTOR,
                    param: str = "amount_micros") -> Account:
        return await self._adjust(account_id, amount_micros, "debit", note, actor, param)

    async def _adjust(self, account_id: int, amount_micros: int, kind: str, note: str, actor: str,
                      param: str) -> Account:
        _int_in(amount_micros, 1, MAX_AMOUNT_MICROS, param)
        _text(note, "note", max_len=1000)
        await self.account(account_id)
        signed = amount_micros if kind == "credit" else -amount_micros
        try:
            acc = await self.store.adjust_balance(account_id, signed, kind=kind, note=note, actor=actor)
        except ValueError as exc:       # AmountOutOfRange, or a debit beyond the available balance
            raise InvalidRequest(str(exc)[0].upper() + str(exc)[1:], param=param) from None
        except KeyError:
            raise NotFound(f"No account {account_id}") from None
        await self._audit(actor, f"account.{kind}", f"account:{account_id}",
                          {"amount_micros": amount_micros, "note": note, "balance_micros": acc.balance_micros})
        return acc

    async def withdraw_demo_credit(self) -> tuple[int, int] | None:
        """The demo is off: what is left of the demo credit the first start gave the admin account is
        debited from it, once (Store.withdraw_unspent_grant), audited. (account id, micros) or None."""
        taken = await self.store.withdraw_unspent_grant(grant_note=DEMO_CREDIT_NOTE, note=DEMO_WITHDRAWN_NOTE,
                                                         actor=SYSTEM_ACTOR)
        if taken is not None:
            account_id, micros = taken
            await self._audit(SYSTEM_ACTOR, "account.debit", f"account:{account_id}",
                              {"amount_micros": micros, "note": DEMO_WITHDRAWN_NOTE})
            log.info("demo provider off: the unspent demo credit (%d micro-dollars) was withdrawn from account %d",
                     micros, account_id)
        return taken

    async def update_account(self, account_id: int, *, markup_bps: int | None = None,
                             limits: LimitsPatch | None = None, actor: str = CLI_ACTOR) -> Account:
        current = await self.account(account_id)
        if markup_bps is not None:
            _int_in(markup_bps, 0, MAX_MARKUP_BPS, "markup_bps")
        merged = _limits(replace(_stored(current.limits), **limits)) if limits else None
        acc = await self.store.update_account(account_id, markup_bps=markup_bps, limits=merged)
        if acc is None:
            raise NotFound(f"No account {account_id}")
        self._changed()
        changes = {k: v for k, v in (("markup_bps", markup_bps),) if v is not None}
        await self._audit(actor, "account.update", f"account:{account_id}", {**changes, **dict(limits or {})})
        return acc

    # -- keys -----------------------------------------------------------------------------------
    def _strategy(self, strategy: str | None) -> str | None:
        """One of the gateway's strategies, or None (the gateway default)."""
        if strategy is not None and strategy not in self.strategies:
            raise InvalidRequest(f"'strategy' must be one of {', '.join(self.strategies)} (or null for the "
                                 f"gateway default), got {str(strategy)[:40]!r}", param="strategy")
        return strategy

    def _known_models(self, models: tuple[str, ...]) -> tuple[str, ...]:
        unknown = self.catalog.unknown_models(models, self.embedding_ids) if self.catalog is not None else []
        if unknown:
            shown = ", ".join(repr(m) for m in unknown[:10]) + (f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else "")
            raise InvalidRequest(f"'allowed_models' names no model this gateway knows: {shown} (not a catalog "
                                 "model, alias or `provider/model` name, nor a `*` pattern matching one; "
                                 "`auto` is the router)", param="allowed_models")
        return models

    async def key(self, key_id: int) -> ApiKey:
        rec = await self.store.get_key(key_id)
        if rec is None:
            raise NotFound(f"No key {key_id}")
        return rec

    async def create_key(self, account_id: int, *, name: str = "", role: str = "user",
                         expires_at: float | None = None, spend_cap_micros: int | None = None,
                         allowed_models: Sequence[str] = (), limits: Limits = Limits(),
                         strategy: str | None = None, willingness_to_pay: float | None = None,
                         actor: str = CLI_ACTOR) -> IssuedKey:
        if role not in ("user", "admin"):
            raise InvalidRequest("'role' must be 'user' or 'admin'", param="role")
        self._strategy(strategy)
        willingness_to_pay = _wtp(willingness_to_pay)
        _text(name, "name")
        if spend_cap_micros is not None:
            _int_in(spend_cap_micros, 0, MAX_SPEND_CAP_MICROS, "spend_cap_micros")
        models, expiry = self._known_models(_models(allowed_models)), _expiry(expires_at)
        _limits(limits)
        if await self.store.get_account(account_id) is None:
            raise NotFound(f"No account {account_id}", param="account_id")
        secret = generate_key()
        rec = await self.store.create_key(NewKey(
            account_id=account_id, key_hash=hash_key(secret), prefix=display_prefix(secret), name=name,
            role=role, expires_at=expiry, spend_cap_micros=spend_cap_micros,
            allowed_models=models, limits=limits, strategy=strategy,
            willingness_to_pay=willingness_to_pay))
        await self._audit(actor, "key.create", f"key:{rec.id}", {
            "account_id": account_id, "name": name, "role": role, "expires_at": expiry,
            "spend_cap_micros": spend_cap_micros, "allowed_models": list(models), "limits": _limits_dict(limits),
            "strategy": strategy, "willingness_to_pay": willingness_to_pay})
        return IssuedKey(secret, rec)

    async def revoke_key(self, key_id: int, *, actor: str = CLI_ACTOR) -> bool:
        await self.key(key_id)
        ok = await self.store.revoke_key(key_id)
        self._changed()
        if ok:
            await self._audit(actor, "key.revoke", f"key:{key_id}", {})
        return ok

    async def update_key(self, key_id: int, *, limits: LimitsPatch | None = None,
                         spend_cap_micros: int | None | Unset = UNSET, allowed_models: Sequence[str] | None = None,
                         expires_at: float | None | Unset = UNSET, name: str | None = None,
                         strategy: str | None | Unset = UNSET, willingness_to_pay: float | None | Unset = UNSET,
                         actor: str = CLI_ACTOR) -> ApiKey:
        """Only the fields given change. `spend_cap_micros` / `expires_at`: None removes the cap or
        expiry; `strategy` / `willingness_to_pay`: None puts them back to the gateway default; UNSET
        leaves any of them alone. Requests see the change as a revocation: at once in
        this process, within the auth poll interval in the others (the store bumps auth_version)."""
        current = await self.key(key_id)
        if spend_cap_micros is not None and spend_cap_micros is not UNSET:
            _int_in(spend_cap_micros, 0, MAX_SPEND_CAP_MICROS, "spend_cap_micros")
        if name is not None:
            _text(name, "name")
        if strategy is not UNSET:
            self._strategy(strategy)
        if willingness_to_pay is not UNSET:
            willingness_to_pay = _wtp(willingness_to_pay)
        models = None if allowed_models is None else self._known_models(_models(allowed_models))
        expiry = expires_at if expires_at is UNSET else _expiry(expires_at)
        merged = _limits(replace(_stored(current.limits), **limits)) if limits else None
        rec = await self.store.update_key(key_id, limits=merged, spend_cap_micros=spend_cap_micros,
                                          allowed_models=models, expires_at=expiry, name=name, strategy=strategy,
                                          willingness_to_pay=willingness_to_pay)
        if rec is None:
            raise NotFound(f"No key {key_id}")
        self._changed()
        changes = {k: v for k, v in (("name", name), ("allowed_models", None if models is None else list(models)))
                   if v is not None}
        routing = {k: v for k, v in (("spend_cap_micros", spend_cap_micros), ("expires_at", expiry),
                                     ("strategy", strategy), ("willingness_to_pay", willingness_to_pay))
                   if v is not UNSET}         # kept when None: the audit says "removed" / "back to the default"
        await self._audit(actor, "key.update", f"key:{key_id}", {**changes, **routing, **dict(limits or {})})
        return rec

    # -- reads ----------------------------------------------------------------------------------
    async def usage(self, q: UsageQuery) -> UsagePage:
        return await self.store.query_usage(q)

    async def audit(self, *, limit: int = 100, target: str | None = None, actor: str | None = None,
                    action: str | None = None, since: float | None = None,
                    before_id: int | None = None) -> AuditPage:
        """Newest first, paged back to the first entry with `before_id` = the previous page's
        `next_before_id`. `action` ending in "." matches a family ("key."). The store applies
        `target` and `before_id`; `actor`, `action` and `since` are applied here over at most
        AUDIT_SCAN_MAX entries per call: when that many are read first, the page holds fewer than
        `limit` entries (maybe none) and `next_before_id` goes on from the last one read."""
        if actor is None and action is None and since is None:
            rows = await self.store.list_audit(limit + 1, target=target, before_id=before_id)
            return _audit_page(rows, limit, None)

        def keep(e: AuditEntry) -> bool:
            return ((actor is None or e.actor == actor) and (since is None or e.created_at >= since)
                    and (action is None or e.action == action or (action.endswith(".") and e.action.startswith(action))))
        picked: list[AuditEntry] = []
        cursor, scanned = before_id, 0
        while scanned < AUDIT_SCAN_MAX:
            want = min(AUDIT_SCAN_CHUNK, AUDIT_SCAN_MAX - scanned)
            rows = await self.store.list_audit(want, target=target, before_id=cursor)
            for e in rows:
                scanned, cursor = scanned + 1, e.id
                if since is not None and e.created_at < since - AUDIT_CLOCK_SLACK_S:
                    return _audit_page(picked, limit, None)     # all older entries are older still
                if keep(e):
                    picked.append(e)
                    if len(picked) > limit:
                        return _audit_page(picked, limit, None)
            if len(rows) < want:                                 # the first entry was read
                return _audit_page(picked, limit, None)
        return _audit_page(picked, limit, cursor)

    async def bootstrap_admin(self, admin_key: str | None) -> IssuedKey | None:
        """First start: an 'admin' account and an admin key (the configured one, or a new one),
        made atomically so that gateways starting together make exactly one. Returns the key when
        it was made now (to print once), else None."""
        secret = admin_key or generate_key()
        rec = await self.store.bootstrap_admin(hash_key(secret), display_prefix(secret),
                                               only_if_no_admin=admin_key is None,
                                               name=CONFIGURED_ADMIN if admin_key else "bootstrap admin")
        if rec is not None:
            await self._audit("system", "key.create", f"key:{rec.id}",
                              {"account_id": rec.account_id, "role": "admin", "bootstrap": True})
        if admin_key:
            await self._retire_configured_admins(hash_key(admin_key))
        return IssuedKey(secret, rec) if rec is not None else None

    async def _retire_configured_admins(self, key_hash: str) -> None:
        """admin_key changed in the configuration (a leaked key rotated, say): the admin keys an
        earlier configuration registered are revoked. Only older ones, and only while the configured
        key itself is active: a gateway still started with the old configuration (a rolling
        restart) finds its key revoked and revokes nothing, nor do two starting together undo each
        other. Keys made with the admin API or the CLI, and the generated first-start key, stay."""
        current = await self.store.key_by_hash(key_hash)
        if current is None or current.revoked:
            if current is not None:
                log.warning("the admin_key in the configuration was revoked: it is not an admin key")
            return
        for k in await self.store.list_keys(current.account_id):
            if k.name == CONFIGURED_ADMIN and k.role == "admin" and not k.revoked and k.id < current.id:
                if await self.store.revoke_key(k.id):
                    self._changed()
                    await self._audit("system", "key.revoke", f"key:{k.id}",
                                      {"reason": "admin_key changed in the configuration"})


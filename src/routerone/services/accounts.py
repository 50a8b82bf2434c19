"""Operator actions on accounts, keys and money, shared by the admin API and the CLI."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import InvalidRequest, NotFound
from ..store.base import Account, ApiKey, Limits, NewKey, Store, UsagePage, UsageQuery
from .auth import Authenticator
from .keys import display_prefix, generate_key, hash_key

__all__ = ["AccountsService", "IssuedKey"]


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: str          # the secret, shown once
    record: ApiKey


class AccountsService:
    def __init__(self, store: Store, auth: Authenticator | None = None) -> None:
        self.store = store
        self.auth = auth

    def _changed(self) -> None:
        if self.auth is not None:
            self.auth.invalidate()

    async def create_account(self, name: str, *, markup_bps: int = 0, limits: Limits = Limits(),
                             initial_micros: int = 0) -> Account:
        acc = await self.store.create_account(name, markup_bps=markup_bps, limits=limits)
        if initial_micros:
            acc = await self.store.adjust_balance(acc.id, initial_micros, kind="credit", note="initial balance")
        return acc

    async def account(self, account_id: int) -> Account:
        acc = await self.store.get_account(account_id)
        if acc is None:
            raise NotFound(f"No account {account_id}")
        return acc

    async def credit(self, account_id: int, amount_micros: int, note: str = "") -> Account:
        if amount_micros <= 0:
            raise InvalidRequest("amount must be positive", param="amount_micros")
        await self.account(account_id)
        return await self.store.adjust_balance(account_id, amount_micros, kind="credit", note=note)

    async def debit(self, account_id: int, amount_micros: int, note: str = "") -> Account:
        if amount_micros <= 0:
            raise InvalidRequest("amount must be positive", param="amount_micros")
        await self.account(account_id)
        try:
            return await self.store.adjust_balance(account_id, -amount_micros, kind="debit", note=note)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="amount_micros") from None

    async def create_key(self, account_id: int, *, name: str = "", role: str = "user",
                         expires_at: float | None = None, spend_cap_micros: int | None = None,
                         allowed_models: Sequence[str] = (), limits: Limits = Limits(),
                         strategy: str | None = None, willingness_to_pay: float | None = None) -> IssuedKey:
        if role not in ("user", "admin"):
            raise InvalidRequest("role must be 'user' or 'admin'", param="role")
        await self.account(account_id)
        secret = generate_key()
        rec = await self.store.create_key(NewKey(
            account_id=account_id, key_hash=hash_key(secret), prefix=display_prefix(secret), name=name,
            role=role, expires_at=expires_at, spend_cap_micros=spend_cap_micros,
            allowed_models=tuple(allowed_models), limits=limits, strategy=strategy,
            willingness_to_pay=willingness_to_pay))
        return IssuedKey(secret, rec)

    async def revoke_key(self, key_id: int) -> bool:
        if await self.store.get_key(key_id) is None:
            raise NotFound(f"No key {key_id}")
        ok = await self.store.revoke_key(key_id)
        self._changed()
        return ok

    async def update_key(self, key_id: int, **changes) -> ApiKey:
        rec = await self.store.update_key(key_id, **changes)
        if rec is None:
            raise NotFound(f"No key {key_id}")
        self._changed()
        return rec

    async def update_account(self, account_id: int, **changes) -> Account:
        acc = await self.store.update_account(account_id, **changes)
        if acc is None:
            raise NotFound(f"No account {account_id}")
        self._changed()
        return acc

    async def usage(self, q: UsageQuery) -> UsagePage:
        return await self.store.query_usage(q)

    async def bootstrap_admin(self, admin_key: str | None) -> IssuedKey | None:
        """First start: an 'admin' account and an admin key (the configured one, or a new one),
        made atomically so that gateways starting together make exactly one. Returns the key when
        it was made now (to print once), else None."""
        secret = admin_key or generate_key()
        rec = await self.store.bootstrap_admin(hash_key(secret), display_prefix(secret),
                                               only_if_no_admin=admin_key is None)
        return IssuedKey(secret, rec) if rec is not None else None

"""Admin API (JSON, admin key): accounts, credits/debits, keys, usage, audit, deployment health.

Each handler parses its body / query string with a strict model from wire.admin (400 naming the
field on any fault), calls one AccountsService method with the actor "admin-key:<id>", renders.
The reference is /openapi.json (http/apidoc/admin.py describes these routes).
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..errors import InvalidRequest, PermissionDenied, RouterOneError
from ..services.auth import AuthContext
from ..store.base import UNSET, Account, ApiKey, Limits, UsageQuery
from ..wire.admin import (MAX_ID, AccountCreate, AccountUpdate, AuditQueryParams, BalanceChange, Empty,
                          KeyCreate, KeysQuery, KeyUpdate, ListQuery, UsageQueryParams, parse_body, parse_query)
from .render import error_response, json_response
from .runtime import RUNTIME, Runtime

__all__ = ["add_admin_routes", "ADMIN_ROUTES"]

LIMIT_FIELDS = ("rpm", "tpm", "concurrency")


class Call:
    """One admin request: the runtime, the raw body, the caller (for the audit actor)."""
    __slots__ = ("request", "rt", "raw", "auth")

    def __init__(self, request: web.Request, rt: Runtime, raw: bytes, auth: AuthContext) -> None:
        self.request, self.rt, self.raw, self.auth = request, rt, raw, auth

    @property
    def actor(self) -> str:
        return f"admin-key:{self.auth.key.id}"

    def id(self, name: str = "id") -> int:
        text = self.request.match_info[name]
        if not (text.isascii() and text.isdigit() and len(text) <= 19 and 1 <= int(text) <= MAX_ID):
            raise InvalidRequest(f"Path parameter '{name}' must be an integer between 1 and {MAX_ID}", param=name)
        return int(text)

    def query(self, model):
        return parse_query(model, self.request.query)

    def no_query(self) -> None:
        parse_query(Empty, self.request.query)


Handler = Callable[[Call], Awaitable[Any]]


def admin(fn: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        rt = request.app[RUNTIME]
        try:
            auth = await rt.auth.authenticate(request.headers.get("Authorization"))
            if not auth.is_admin:
                raise PermissionDenied("This endpoint needs an admin key")
            raw = await request.read() if request.can_read_body else b""
            return json_response(await fn(Call(request, rt, raw, auth)))
        except RouterOneError as exc:
            return error_response(exc)
    handler.__name__ = fn.__name__
    return handler


def _account(a: Account) -> dict:
    return {**asdict(a), "available_micros": a.available_micros, "limits": asdict(a.limits)}


def _key(k: ApiKey) -> dict:
    d = asdict(k)
    d["allowed_models"] = list(k.allowed_models)
    d["limits"] = asdict(k.limits)
    return d


def _limit_patch(body) -> dict:
    return {f: getattr(body, f) for f in LIMIT_FIELDS if f in body.model_fields_set}


# -- accounts ---------------------------------------------------------------------------------
async def list_accounts(c: Call):
    c.no_query()
    return {"data": [_account(a) for a in await c.rt.accounts.store.list_accounts()]}


async def create_account(c: Call):
    c.no_query()
    b = parse_body(AccountCreate, c.raw)
    acc = await c.rt.accounts.create_account(
        b.name, markup_bps=b.markup_bps, limits=Limits(b.rpm, b.tpm, b.concurrency),
        initial_micros=b.balance_micros or b.balance_usd or 0, actor=c.actor)
    return {"data": _account(acc)}


async def get_account(c: Call):
    c.no_query()
    return {"data": _account(await c.rt.accounts.account(c.id()))}


async def update_account(c: Call):
    c.no_query()
    account_id = c.id()
    b = parse_body(AccountUpdate, c.raw)
    acc = await c.rt.accounts.update_account(account_id, markup_bps=b.markup_bps, limits=_limit_patch(b),
                                             actor=c.actor)
    return {"data": _account(acc)}


async def _balance(c: Call, kind: str):
    c.no_query()
    account_id = c.id()
    b = parse_body(BalanceChange, c.raw)
    fn = c.rt.accounts.credit if kind == "credit" else c.rt.accounts.debit
    acc = await fn(account_id, b.amount_micros or b.amount_usd, b.note, actor=c.actor,
                   param="amount_micros" if b.amount_micros else "amount_usd")
    return {"data": _account(acc)}


async def credit(c: Call):
    return await _balance(c, "credit")


async def debit(c: Call):
    return await _balance(c, "debit")


async def ledger(c: Call):
    q = c.query(ListQuery)
    account_id = c.id()
    await c.rt.accounts.account(account_id)
    return {"data": [asdict(e) for e in await c.rt.accounts.store.ledger(account_id, q.limit)]}


# -- keys -------------------------------------------------------------------------------------
async def list_keys(c: Call):
    """Oldest first, `limit` a page; `next_after_id` (null on the last page) is the next page's `after_id`."""
    q = c.query(KeysQuery)
    keys = await c.rt.accounts.store.list_keys(q.account_id, q.limit + 1, after_id=q.after_id)
    more = len(keys) > q.limit
    return {"data": [_key(k) for k in keys[:q.limit]], "next_after_id": keys[q.limit - 1].id if more else None}


async def get_key(c: Call):
    c.no_query()
    return {"data": _key(await c.rt.accounts.key(c.id()))}


async def create_key(c: Call):
    c.no_query()
    b = parse_body(KeyCreate, c.raw)
    issued = await c.rt.accounts.create_key(
        b.account_id, name=b.name, role=b.role, expires_at=b.expires_at,
        spend_cap_micros=b.spend_cap_micros if b.spend_cap_usd is None else b.spend_cap_usd,
        allowed_models=b.allowed_models or (), limits=Limits(b.rpm, b.tpm, b.concurrency),
        strategy=b.strategy, willingness_to_pay=b.willingness_to_pay, actor=c.actor)
    return {"data": {**_key(issued.record), "key": issued.key}}


async def update_key(c: Call):
    c.no_query()
    key_id = c.id()
    b = parse_body(KeyUpdate, c.raw)
    given = b.model_fields_set
    cap_given = given & {"spend_cap_micros", "spend_cap_usd"}      # null: no cap
    rec = await c.rt.accounts.update_key(
        key_id, limits=_limit_patch(b), allowed_models=b.allowed_models,
        expires_at=b.expires_at if "expires_at" in given else UNSET,
        spend_cap_micros=(b.spend_cap_micros if b.spend_cap_usd is None else b.spend_cap_usd) if cap_given else UNSET,
        name=b.name,
        strategy=b.strategy if "strategy" in given else UNSET,
        willingness_to_pay=b.willingness_to_pay if "willingness_to_pay" in given else UNSET, actor=c.actor)
    return {"data": _key(rec)}


async def revoke_key(c: Call):
    c.no_query()
    key_id = c.id()
    parse_body(Empty, c.raw)
    return {"data": {"revoked": await c.rt.accounts.revoke_key(key_id, actor=c.actor)}}


# -- reads ------------------------------------------------------------------------------------
async def usage(c: Call):
    q = c.query(UsageQueryParams)
    page = await c.rt.accounts.usage(UsageQuery(account_id=q.account_id, key_id=q.key_id, model=q.model,
                                                since=q.since, until=q.until, limit=q.limit))
    return {"data": [asdict(r) for r in page.records], "totals": asdict(page.totals)}


async def audit(c: Call):
    q = c.query(AuditQueryParams)
    page = await c.rt.accounts.audit(limit=q.limit, target=q.target, actor=q.actor, action=q.action,
                                     since=q.since, before_id=q.before_id)
    return {"data": [asdict(e) for e in page.entries], "next_before_id": page.next_before_id}


async def health(c: Call):
    c.no_query()
    return {"data": c.rt.chat.d.health.report()}


ADMIN_ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/admin/accounts", list_accounts),
    ("POST", "/admin/accounts", create_account),
    ("GET", "/admin/accounts/{id}", get_account),
    ("PATCH", "/admin/accounts/{id}", update_account),
    ("POST", "/admin/accounts/{id}/credit", credit),
    ("POST", "/admin/accounts/{id}/debit", debit),
    ("GET", "/admin/accounts/{id}/ledger", ledger),
    ("GET", "/admin/keys", list_keys),
    ("POST", "/admin/keys", create_key),
    ("GET", "/admin/keys/{id}", get_key),
    ("PATCH", "/admin/keys/{id}", update_key),
    ("POST", "/admin/keys/{id}/revoke", revoke_key),
    ("GET", "/admin/usage", usage),
    ("GET", "/admin/audit", audit),
    ("GET", "/admin/health", health),
)


def add_admin_routes(app: web.Application) -> None:
    for method, path, fn in ADMIN_ROUTES:
        app.router.add_route(method, path, admin(fn))

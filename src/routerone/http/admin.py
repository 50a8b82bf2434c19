"""Admin API (JSON, admin key): accounts, credits/debits, keys, usage, deployment health."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from ..errors import InvalidRequest, PermissionDenied, RouterOneError
from ..routing.wtp import parse_willingness_to_pay
from ..store.base import Account, ApiKey, Limits, UsageQuery
from .render import error_response, json_response
from .runtime import RUNTIME, Runtime

__all__ = ["add_admin_routes"]

INT32_MAX = 2**31 - 1     # rpm / tpm / concurrency / markup columns are INTEGER
INT64_MAX = 2**63 - 1     # money columns are BIGINT micro-dollars
INT32_FIELDS = {"rpm", "tpm", "concurrency", "markup_bps"}
Handler = Callable[[web.Request, Runtime, dict], Awaitable[Any]]


def _account(a: Account) -> dict:
    return {**asdict(a), "available_micros": a.available_micros, "limits": asdict(a.limits)}


def _key(k: ApiKey) -> dict:
    d = asdict(k)
    d["allowed_models"] = list(k.allowed_models)
    return d


def _int(body: dict, name: str, required: bool = False) -> int | None:
    v = body.get(name)
    if v is None:
        if required:
            raise InvalidRequest(f"'{name}' is required", param=name)
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidRequest(f"'{name}' must be an integer", param=name)
    limit = INT32_MAX if name in INT32_FIELDS else INT64_MAX
    if not 0 <= v <= limit:
        raise InvalidRequest(f"'{name}' must be between 0 and {limit}", param=name)
    return v


def _limits(body: dict) -> Limits | None:
    if not any(k in body for k in ("rpm", "tpm", "concurrency")):
        return None
    return Limits(_int(body, "rpm"), _int(body, "tpm"), _int(body, "concurrency"))


def admin(fn: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        rt = request.app[RUNTIME]
        try:
            auth = await rt.auth.authenticate(request.headers.get("Authorization"))
            if not auth.is_admin:
                raise PermissionDenied("This endpoint needs an admin key")
            body: dict = {}
            if request.can_read_body:
                try:
                    body = orjson.loads(await request.read())
                except orjson.JSONDecodeError:
                    raise InvalidRequest("The request body is not valid JSON", code="invalid_json") from None
                if not isinstance(body, dict):
                    raise InvalidRequest("The request body must be a JSON object")
            return json_response(await fn(request, rt, body))
        except RouterOneError as exc:
            return error_response(exc)
    return handler


def _path_id(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an integer", param=name) from None


async def list_accounts(request, rt, body):
    return {"data": [_account(a) for a in await rt.accounts.store.list_accounts()]}


async def create_account(request, rt, body):
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'name' is required", param="name")
    acc = await rt.accounts.create_account(name, markup_bps=_int(body, "markup_bps") or 0,
                                           limits=_limits(body) or Limits(),
                                           initial_micros=_int(body, "balance_micros") or 0)
    return {"data": _account(acc)}


async def get_account(request, rt, body):
    return {"data": _account(await rt.accounts.account(_path_id(request, "id")))}


async def update_account(request, rt, body):
    acc = await rt.accounts.update_account(_path_id(request, "id"), markup_bps=_int(body, "markup_bps"),
                                           limits=_limits(body))
    return {"data": _account(acc)}


async def credit(request, rt, body):
    acc = await rt.accounts.credit(_path_id(request, "id"), _int(body, "amount_micros", True), str(body.get("note", "")))
    return {"data": _account(acc)}


async def debit(request, rt, body):
    acc = await rt.accounts.debit(_path_id(request, "id"), _int(body, "amount_micros", True), str(body.get("note", "")))
    return {"data": _account(acc)}


async def ledger(request, rt, body):
    entries = await rt.accounts.store.ledger(_path_id(request, "id"), int(request.query.get("limit", 100)))
    return {"data": [asdict(e) for e in entries]}


async def list_keys(request, rt, body):
    acc = request.query.get("account_id")
    return {"data": [_key(k) for k in await rt.accounts.store.list_keys(int(acc) if acc else None)]}


async def create_key(request, rt, body):
    models = body.get("allowed_models") or []
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise InvalidRequest("'allowed_models' must be an array of model names", param="allowed_models")
    expires = body.get("expires_at")
    if expires is not None and not isinstance(expires, (int, float)):
        raise InvalidRequest("'expires_at' must be a unix timestamp", param="expires_at")
    issued = await rt.accounts.create_key(
        _int(body, "account_id", True), name=str(body.get("name", "")), role=str(body.get("role", "user")),
        expires_at=expires, spend_cap_micros=_int(body, "spend_cap_micros"), allowed_models=models,
        limits=_limits(body) or Limits(), strategy=body.get("strategy"),
        willingness_to_pay=parse_willingness_to_pay(body.get("willingness_to_pay"), "willingness_to_pay"))
    return {"data": {**_key(issued.record), "key": issued.key}}


async def update_key(request, rt, body):
    models = body.get("allowed_models")
    rec = await rt.accounts.update_key(_path_id(request, "id"), limits=_limits(body),
                                       spend_cap_micros=_int(body, "spend_cap_micros"),
                                       allowed_models=models, expires_at=body.get("expires_at"))
    return {"data": _key(rec)}


async def revoke_key(request, rt, body):
    return {"data": {"revoked": await rt.accounts.revoke_key(_path_id(request, "id"))}}


async def usage(request, rt, body):
    q = request.query
    def num(name, cast):
        try:
            return cast(q[name]) if name in q else None
        except ValueError:
            raise InvalidRequest(f"'{name}' must be a number", param=name) from None
    page = await rt.accounts.usage(UsageQuery(
        account_id=num("account_id", int), key_id=num("key_id", int), model=q.get("model"),
        since=num("since", float), until=num("until", float), limit=num("limit", int) or 100))
    return {"data": [asdict(r) for r in page.records], "totals": asdict(page.totals)}


async def health(request, rt, body):
    return {"data": {dep: h.as_dict() for dep, h in rt.chat.d.health.by_deployment.items()}}


def add_admin_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/accounts", admin(list_accounts))
    r.add_post("/admin/accounts", admin(create_account))
    r.add_get("/admin/accounts/{id}", admin(get_account))
    r.add_patch("/admin/accounts/{id}", admin(update_account))
    r.add_post("/admin/accounts/{id}/credit", admin(credit))
    r.add_post("/admin/accounts/{id}/debit", admin(debit))
    r.add_get("/admin/accounts/{id}/ledger", admin(ledger))
    r.add_get("/admin/keys", admin(list_keys))
    r.add_post("/admin/keys", admin(create_key))
    r.add_patch("/admin/keys/{id}", admin(update_key))
    r.add_post("/admin/keys/{id}/revoke", admin(revoke_key))
    r.add_get("/admin/usage", admin(usage))
    r.add_get("/admin/health", admin(health))

"""Operator pages: accounts (create, top up / debit, suspend, users), all users, providers and
models with live health, routing (changed at run time, in this process), gateway-wide activity."""
from __future__ import annotations

import json
import re

from aiohttp import web

from ..errors import Conflict, InvalidRequest
from ..providers.base import Vendor
from ..providers.vendors import ProviderEntry, keyless_templates
from . import forms, security
from .pages_user import activity_context
from .paging import PER_PAGE, keyset, name_matches, paginate, search_text, top_rows
from .users import ROLES, Viewer
from .web import BASE, Console, clip, page, path_int, render, see_other, usd

__all__ = ["add_operator_routes"]

OP = f"{BASE}/operator"
_FRACTION = re.compile(r"[0-9]{1,3}(\.[0-9]{0,20})?|\.[0-9]{1,20}")     # 0.5, 1, 1., .25


@page("operator")
async def accounts_get(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    return await _accounts_page(request, c, viewer)


async def _accounts_page(request, c: Console, viewer: Viewer, *, error: str = "", status: int = 200):
    """50 a page; `q` finds a name (any part, any case) or an id; `sort` id | name | balance | spent."""
    accounts = await c.store.list_accounts()
    q = search_text(request)
    if q:
        accounts = [a for a in accounts if name_matches(q, a.name) or q.lstrip("#") == str(a.id)]
    sort = request.query.get("sort", "id")
    if sort in _ACCOUNT_SORTS:
        accounts.sort(key=_ACCOUNT_SORTS[sort])
    per_account: dict[int, int] = {}
    for u in await c.store.list_console_users():
        per_account[u.account_id] = per_account.get(u.account_id, 0) + 1
    return render(request, "op_accounts.html", status=status, viewer=viewer, accounts=paginate(request, accounts),
                  users=per_account, error=error, q=q, sort=sort if sort in _ACCOUNT_SORTS else "id",
                  sorts=list(_ACCOUNT_SORTS))


_ACCOUNT_SORTS = {"id": lambda a: a.id, "name": lambda a: (a.name.casefold(), a.id),
                  "balance": lambda a: (-a.balance_micros, a.id), "spent": lambda a: (-a.spent_micros, a.id)}


@page("operator")
async def accounts_create(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    form = await forms.read_form(request)
    try:
        name = forms.text(form, "name", max_chars=100)
        if not name:
            raise InvalidRequest("Give the account a name", param="name")
        initial = forms.opt_usd(form, "balance_usd")
    except InvalidRequest as exc:
        return await _accounts_page(request, c, viewer, error=exc.message, status=400)
    try:          # audited there, once, as this console user (it was also recorded as "cli")
        acc = await c.accounts.create_account(name, actor=viewer.actor)
    except Conflict as exc:           # another account has the name
        return await _accounts_page(request, c, viewer, error=exc.message, status=exc.status)
    if initial:
        await _adjust(c, viewer, acc.id, initial, "initial balance")
    return see_other(f"{OP}/accounts/{acc.id}", f"Account {clip(name)} created.", viewer)


async def _adjust(c: Console, viewer: Viewer, account_id: int, amount_micros: int, note: str) -> None:
    """A top-up (amount > 0) or debit (< 0): one ledger row naming the console user, one audit entry."""
    kind = "credit" if amount_micros > 0 else "debit"
    try:
        await c.store.adjust_balance(account_id, amount_micros, kind=kind, note=note, actor=viewer.actor)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="amount_usd") from None
    await c.store.record_audit(viewer.actor, f"account.{kind}", f"account:{account_id}",
                               json.dumps({"amount_micros": amount_micros, "note": note}))


@page("operator")
async def account_get(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    return await _account_page(request, c, viewer, path_int(request, "account_id"))


async def _account_page(request, c: Console, viewer: Viewer, account_id: int, *, error: str = "",
                        status: int = 200, new_user=None, new_password: str = ""):
    acc = await c.accounts.account(account_id)
    users, more_users = top_rows(await c.store.list_console_users(account_id))
    keys = await c.store.recent_keys(account_id, PER_PAGE)                         # the newest 50
    more_keys = await c.store.count_keys(account_id) - len(keys) if len(keys) == PER_PAGE else 0
    # the ledger and the audit entries 50 a page, newest first, each with its own Older link
    ledger = await keyset(request, "ledger_before", anchor="ledger",
                          fetch=lambda n, before: c.store.ledger(account_id, n, before_id=before))
    audit = await keyset(request, "audit_before", anchor="audit", fetch=lambda n, before: c.store.list_audit(
        n, target=f"account:{account_id}", before_id=before))
    return render(request, "op_account.html", status=status, viewer=viewer, account=acc,
                  users=users, more_users=more_users, keys=keys, more_keys=more_keys,
                  ledger=ledger, error=error, new_user=new_user,
                  new_password=new_password, roles=ROLES, audit=audit)


@page("operator")
async def account_balance(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    account_id = path_int(request, "account_id")
    await c.accounts.account(account_id)
    form = await forms.read_form(request)
    try:
        amount = forms.usd_amount(form, "amount_usd")
        note = forms.text(form, "note", max_chars=200)
        direction = forms.text(form, "direction")
        if direction not in ("credit", "debit"):
            raise InvalidRequest("Choose top up or debit", param="direction")
        await _adjust(c, viewer, account_id, amount if direction == "credit" else -amount, note)
    except InvalidRequest as exc:
        return await _account_page(request, c, viewer, account_id, error=exc.message, status=400)
    what = "Topped up" if direction == "credit" else "Debited"
    return see_other(f"{OP}/accounts/{account_id}", f"{what} {usd(amount)}.", viewer)


@page("operator")
async def account_user_create(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    account_id = path_int(request, "account_id")
    form = await forms.read_form(request)
    password = security.generate_password()
    try:
        role = forms.text(form, "role") or "user"
        user = await c.users.create(forms.text(form, "email", max_chars=254), password,
                                    account_id=account_id, role=role)
    except InvalidRequest as exc:
        return await _account_page(request, c, viewer, account_id, error=exc.message, status=400)
    await c.store.record_audit(viewer.actor, "console_user.create", f"account:{account_id}",
                               json.dumps({"user_id": user.id, "email": user.email, "role": user.role}))
    return await _account_page(request, c, viewer, account_id, new_user=user, new_password=password)


@page("operator")
async def account_suspend(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    """Suspend: every key of the account revoked and every console user of it disabled (signed out).
    Re-enabling users is one click (Users page); revoked keys stay revoked (new keys are made)."""
    account_id = path_int(request, "account_id")
    await c.accounts.account(account_id)
    if account_id == viewer.account_id:
        raise InvalidRequest("You cannot suspend your own account")
    keys = [k for k in await c.store.list_keys(account_id) if not k.revoked]
    for k in keys:
        await c.accounts.revoke_key(k.id)
    users = await c.store.list_console_users(account_id)
    for u in users:
        await c.users.set_disabled(u.id, True)
    await c.store.record_audit(viewer.actor, "account.suspend", f"account:{account_id}",
                               json.dumps({"revoked_keys": [k.id for k in keys], "disabled_users": [u.id for u in users]}))
    return see_other(f"{OP}/accounts/{account_id}", f"Suspended: {len(keys)} keys revoked, {len(users)} users disabled.",
                     viewer)


@page("operator")
async def users_get(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    names = {a.id: a.name for a in await c.store.list_accounts()}
    users = paginate(request, await c.store.list_console_users())
    return render(request, "op_users.html", viewer=viewer, users=users, names=names)


@page("operator")
async def user_toggle(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    user_id = path_int(request, "user_id")
    if user_id == viewer.user_id:
        raise InvalidRequest("You cannot disable yourself")
    disable = request.match_info["action"] == "disable"
    user = await c.users.set_disabled(user_id, disable)
    await c.store.record_audit(viewer.actor, f"console_user.{'disable' if disable else 'enable'}",
                               f"account:{user.account_id}", json.dumps({"user_id": user_id}))
    return see_other(f"{OP}/users", f"{clip(user.email, 254)} {'disabled' if disable else 'enabled'}.", viewer)


@page("operator")
async def providers(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    vendors = sorted(c.catalog.vendors.values(), key=lambda v: (not v.configured, v.name))
    q = search_text(request)
    needle = q.casefold()
    pairs = [(m, d) for m in sorted(c.catalog.models.values(), key=lambda m: (m.provider, m.id))
             for d in m.deployments if d.vendor.configured
             and (needle in m.id.casefold() or needle in d.vendor.name.casefold())]
    paged = paginate(request, pairs)                   # health only for the rows shown
    report = c.health.report()
    rows = [{"model": m, "deployment": d, "health": report.get(d.id)} for m, d in paged.rows]
    return render(request, "op_providers.html", viewer=viewer, vendors=vendors, rows=rows, paged=paged, q=q,
                  vendor_status={v.name: _vendor_status(v, c.catalog.providers.get(v.name)) for v in vendors})


def _vendor_status(v: Vendor, entry: ProviderEntry | None) -> str:
    """A keyless template (vllm, ollama) is off until named, not missing a key ("no credentials" said so);
    one turned off with `enabled = false` is disabled, whether or not it has a key; the demo takes no
    key either: it is off (a provider is configured, or demo = "off")."""
    if v.configured:
        return "configured"
    if entry is not None and not entry.enabled:
        return "disabled (enabled = false)"
    if v.name in keyless_templates():
        return f"keyless, off (add [providers.{v.name}])"
    if v.name == "demo":          # needs no key: off because a provider is configured, or demo = "off"
        return 'off (demo = "on" turns it on)'
    return "no credentials"


@page("operator")
async def routing_get(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    return _routing_page(request, c, viewer)


def _routing_page(request, c: Console, viewer: Viewer, *, error: str = "", status: int = 200):
    return render(request, "op_routing.html", status=status, viewer=viewer, strategy=c.planner.default_strategy,
                  strategies=sorted(c.planner.strategies), wtp=c.planner.willingness_to_pay, error=error,
                  workers=c.settings.workers)


@page("operator")
async def routing_post(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    """Takes effect at once for this process's next request; not persisted (the settings file is
    what a restart uses) and, with --workers N, only in the worker that served this page."""
    form = await forms.read_form(request)
    strategy = forms.text(form, "strategy")
    try:
        if strategy not in c.planner.strategies:
            raise InvalidRequest(f"Unknown strategy {strategy!r}", param="strategy")
        raw = forms.text(form, "willingness_to_pay")
        # ASCII only: float() also reads "٠.٥" (0.5), "0_1" (0.1), "1e-1" and " nan"
        if not _FRACTION.fullmatch(raw) or not 0.0 <= float(raw) <= 1.0:
            raise InvalidRequest("Willingness to pay must be a number from 0 to 1", param="willingness_to_pay")
        wtp = float(raw)
    except InvalidRequest as exc:
        return _routing_page(request, c, viewer, error=exc.message, status=400)
    before = {"strategy": c.planner.default_strategy, "willingness_to_pay": c.planner.willingness_to_pay}
    c.planner.default_strategy = strategy
    c.planner.willingness_to_pay = wtp
    await c.store.record_audit(viewer.actor, "routing.update", "gateway", json.dumps(
        {"before": before, "after": {"strategy": strategy, "willingness_to_pay": wtp}}))
    also = f" (1 of {c.settings.workers} worker processes: see the note)" if c.settings.workers > 1 else ""
    return see_other(f"{OP}/routing", f"Routing updated for this process{also}.", viewer)


@page("operator")
async def gateway_activity(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    ctx = await activity_context(request, c, None)
    return render(request, "activity.html", viewer=viewer, scope="gateway", **ctx)


def add_operator_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{OP}/accounts", accounts_get)
    r.add_post(f"{OP}/accounts", accounts_create)
    r.add_get(OP + "/accounts/{account_id}", account_get)
    r.add_post(OP + "/accounts/{account_id}/balance", account_balance)
    r.add_post(OP + "/accounts/{account_id}/users", account_user_create)
    r.add_post(OP + "/accounts/{account_id}/suspend", account_suspend)
    r.add_get(f"{OP}/users", users_get)
    r.add_post(OP + "/users/{user_id}/{action:disable|enable}", user_toggle)
    r.add_get(f"{OP}/providers", providers)
    r.add_get(f"{OP}/routing", routing_get)
    r.add_post(f"{OP}/routing", routing_post)
    r.add_get(f"{OP}/activity", gateway_activity)

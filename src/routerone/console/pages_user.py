"""An account user's pages: overview, keys, credits, logs (and CSV), activity, models. Every query
is scoped to the viewer's own account on the server."""
from __future__ import annotations

import csv
import io
import json
import re
from urllib.parse import urlencode

from aiohttp import web

from ..catalog import AUTO_MODEL
from ..errors import InvalidRequest, NotFound
from ..store.base import Limits, UsageLogQuery
from ..wire.csv_cells import safe_row
from . import forms
from .activity import RANGES, build_activity, pick_range
from .paging import PER_PAGE, keyset, paginate, search_text, top_rows
from .users import Viewer
from .web import BASE, Console, clip, now, page, path_int, render, see_other, usd_decimal, when

__all__ = ["add_user_routes", "LOW_BALANCE_MICROS", "activity_context"]

LOW_BALANCE_MICROS = 1_000_000        # warn below $1 available
LOG_PAGE = 50
KEY_CHOICES = 50              # keys offered in the Logs page's key filter
CSV_MAX_ROWS = 10_000
PLAYGROUND_KEY_NAME = "Console playground"
OVERVIEW_COUNT_MAX = 10_000  # the Overview counts active keys up to this ("10,000+")
_HTTP_STATUS = re.compile(r"[1-5][0-9][0-9]")


async def _key_names(c: Console, account_id: int | None) -> dict[int, str]:
    return {k.id: (k.name or k.prefix) for k in await c.store.list_keys(account_id)}


@page()
async def overview(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    acc = await c.accounts.account(viewer.account_id)
    active = await c.store.count_keys(viewer.account_id, active_only=True, at_most=OVERVIEW_COUNT_MAX + 1)
    if active <= OVERVIEW_COUNT_MAX and await c.store.key_named(viewer.account_id, PLAYGROUND_KEY_NAME):
        active -= 1                                   # the playground's own key is not one of "your keys"
    base_url = f"{request.scheme}://{request.host}/v1"
    return render(request, "overview.html", viewer=viewer, account=acc, active_keys=active,
                  active_keys_max=OVERVIEW_COUNT_MAX, base_url=base_url,
                  low=acc.available_micros < LOW_BALANCE_MICROS)


@page()
async def keys_get(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    return await _keys_page(request, c, viewer)


async def _keys_page(request: web.Request, c: Console, viewer: Viewer, *, issued=None, error: str = "",
                     status: int = 200, form=None) -> web.Response:
    keys = await keyset(request, "before", lambda n, before: c.store.recent_keys(viewer.account_id, n, before_id=before))
    last_used = await c.store.key_last_used(viewer.account_id)
    models = [AUTO_MODEL] + [m.id for m in c.catalog.available()]
    return render(request, "keys.html", status=status, viewer=viewer, keys=keys, last_used=last_used,
                  issued=issued, error=error, form=form or {}, models=models, now=now())


@page()
async def keys_create(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    form = await forms.read_form(request)
    known = {AUTO_MODEL, *(m.id for m in c.catalog.available())}
    try:
        name = forms.text(form, "name", max_chars=100)
        if not name:
            raise InvalidRequest("Give the key a name", param="name")
        if name == PLAYGROUND_KEY_NAME:     # the playground would pick it up: a playground key with a known secret
            raise InvalidRequest(f"The name {PLAYGROUND_KEY_NAME!r} is the playground's; choose another", param="name")
        expires_at = forms.opt_date(form, "expires")
        if expires_at is not None and expires_at <= now():
            raise InvalidRequest("The expiry date must be in the future", param="expires")
        issued = await c.accounts.create_key(
            viewer.account_id, name=name, expires_at=expires_at,
            spend_cap_micros=forms.opt_usd(form, "spend_cap_usd"),
            allowed_models=forms.model_list(form, "models", known),
            limits=Limits(forms.opt_int(form, "rpm"), forms.opt_int(form, "tpm")))
    except InvalidRequest as exc:
        return await _keys_page(request, c, viewer, error=exc.message, status=400, form=form)
    await c.store.record_audit(viewer.actor, "key.create", f"key:{issued.record.id}", json.dumps(
        {"account_id": viewer.account_id, "name": issued.record.name, "prefix": issued.record.prefix,
         "spend_cap_micros": issued.record.spend_cap_micros, "expires_at": issued.record.expires_at,
         "allowed_models": list(issued.record.allowed_models), "rpm": issued.record.limits.rpm,
         "tpm": issued.record.limits.tpm}))
    return await _keys_page(request, c, viewer, issued=issued)


@page()
async def keys_revoke(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    key_id = path_int(request, "key_id")
    key = await c.store.get_key(key_id)
    if key is None or key.account_id != viewer.account_id:       # another account's key: as if absent
        raise NotFound(f"No key {key_id} in your account")
    if not key.revoked:
        await c.accounts.revoke_key(key_id)
        await c.store.record_audit(viewer.actor, "key.revoke", f"key:{key_id}",
                                   json.dumps({"account_id": key.account_id, "prefix": key.prefix}))
    return see_other(f"{BASE}/keys", f"Key {clip(key.name or key.prefix, 200)} revoked.", viewer)


@page()
async def credits(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    """The ledger 50 entries a page, newest first; `?before=ID` pages back (by entry id, so new
    charges arriving meanwhile do not shift the page)."""
    acc = await c.accounts.account(viewer.account_id)
    before = forms.opt_int(dict(request.query), "before", maximum=2**63 - 1)
    ledger = await c.store.ledger(viewer.account_id, PER_PAGE + 1, before_id=before)
    older = ledger[PER_PAGE - 1].id if len(ledger) > PER_PAGE else None
    return render(request, "credits.html", viewer=viewer, account=acc, ledger=ledger[:PER_PAGE], older=older,
                  paged=before is not None, low=acc.available_micros < LOW_BALANCE_MICROS,
                  low_micros=LOW_BALANCE_MICROS)


def _log_query(request: web.Request, account_id: int | None, key_ids: set[int] | None) -> tuple[UsageLogQuery, dict]:
    q = request.query
    f = {k: forms.text({k: q.get(k, "")[:100]}, k, max_chars=100) for k in ("key", "model", "status", "from", "to")}
    key_id = forms.opt_int(f, "key")
    if key_id is not None and key_ids is not None and key_id not in key_ids:
        raise NotFound(f"No key {key_id} in your account")
    status = f["status"] or None
    # ASCII digits only: str.isdigit() is also true of "²" and "٤٠٤", and int("²") raised (a 500)
    if status not in (None, "ok", "error") and not _HTTP_STATUS.fullmatch(status):
        raise InvalidRequest("status must be ok, error or an HTTP status code", param="status")
    since, until = forms.opt_date(f, "from"), forms.opt_date(f, "to")
    page_no = forms.opt_int(dict(q), "page", maximum=100_000) or 1
    return UsageLogQuery(account_id=account_id, key_id=key_id, model=f["model"] or None, status=status,
                         since=since, until=until + 86_400 if until is not None else None,
                         limit=LOG_PAGE + 1, offset=(page_no - 1) * LOG_PAGE), {**f, "page": page_no}


@page()
async def logs(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    names = await _key_names(c, viewer.account_id)
    query, filters = _log_query(request, viewer.account_id, set(names))
    records = await c.store.usage_log(query)
    more, records = len(records) > LOG_PAGE, records[:LOG_PAGE]
    models = sorted({AUTO_MODEL, *(m.id for m in c.catalog.available())})
    # the filter offers the newest KEY_CHOICES keys (and the chosen one); any key's own logs are a
    # link from the Keys page, so 1,000 keys are not 1,000 options on every Logs page
    choices = dict(sorted(names.items(), reverse=True)[:KEY_CHOICES])
    if filters["key"] and int(filters["key"]) in names:
        choices[int(filters["key"])] = names[int(filters["key"])]
    return render(request, "logs.html", viewer=viewer, records=records, names=names, filters=filters,
                  more=more, models=models, query_string=_without_page(request), key_choices=choices,
                  more_keys=len(names) - len(choices))


def _without_page(request: web.Request) -> str:
    return urlencode([(k, v) for k, v in request.query.items() if k != "page" and v])


@page()
async def logs_csv(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    names = await _key_names(c, viewer.account_id)
    query, _ = _log_query(request, viewer.account_id, set(names))
    records = await c.store.usage_log(UsageLogQuery(**{**_asdict(query), "limit": CSV_MAX_ROWS, "offset": 0}))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["time_utc", "request_id", "key", "requested_model", "routed_model", "provider", "protocol",
                "status", "error_type", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd",
                "latency_ms", "ttft_ms", "stream", "route_reason", "fallbacks"])
    for r in records:
        w.writerow(safe_row([when(r.created_at), r.request_id, names.get(r.key_id, r.key_id), r.requested_model,
                    r.routed_model, r.provider, r.protocol, r.status, r.error_type or "", r.prompt_tokens,
                    r.completion_tokens, r.cached_tokens, usd_decimal(r.cost_micros), round(r.latency_ms, 1),
                    "" if r.ttft_ms is None else round(r.ttft_ms, 1), int(r.stream), r.route_reason or "",
                    r.fallbacks or ""]))
    return web.Response(text=buf.getvalue(), content_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="routerone-logs.csv"', "Cache-Control": "no-store"})


def _asdict(q: UsageLogQuery) -> dict:
    return {f: getattr(q, f) for f in UsageLogQuery.__dataclass_fields__}


async def activity_context(request: web.Request, c: Console, account_id: int | None) -> dict:
    t = now()
    range_name, since, until, bucket_s = pick_range(request.query.get("range"), request.query.get("by"), t)
    assert c.activity_cache is not None
    summary = await c.activity_cache.rollup(account_id, since, until, bucket_s, t)
    act = build_activity(summary.by_time_model, since=since, until=until, bucket_s=bucket_s,
                         key_names=await _key_names(c, account_id), key_buckets=summary.by_key)
    act.by_model, more_models = top_rows(act.by_model)       # the biggest 50 (totals count them all)
    act.by_key, more_keys = top_rows(act.by_key)
    return {"act": act, "chart": act.chart_data(), "range": range_name,
            "ranges": list(RANGES), "by": "hour" if bucket_s == 3_600 else "day",
            "hidden": {"By model": more_models, "By key": more_keys}}


@page()
async def activity(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    ctx = await activity_context(request, c, viewer.account_id)
    return render(request, "activity.html", viewer=viewer, scope="account", **ctx)


@page()
async def models(request: web.Request, c: Console, viewer: Viewer) -> web.StreamResponse:
    keys = [k for k in await c.store.list_keys(viewer.account_id) if not k.revoked and k.allowed_models]
    restricted, more_restricted = top_rows(keys[::-1], 20)
    q = search_text(request)
    available = [m for m in c.catalog.available() if q.casefold() in m.id.casefold()]
    return render(request, "models.html", viewer=viewer, models=paginate(request, available), q=q,
                  restricted=restricted, more_restricted=more_restricted)


def add_user_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{BASE}/", overview)
    r.add_get(f"{BASE}/keys", keys_get)
    r.add_post(f"{BASE}/keys", keys_create)
    r.add_post(BASE + "/keys/{key_id}/revoke", keys_revoke)
    r.add_get(f"{BASE}/credits", credits)
    r.add_get(f"{BASE}/logs", logs)
    r.add_get(f"{BASE}/logs.csv", logs_csv)
    r.add_get(f"{BASE}/activity", activity)
    r.add_get(f"{BASE}/models", models)

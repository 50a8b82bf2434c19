"""create_app(settings): wire the store, limiter, providers, routing and services into an aiohttp app."""
from __future__ import annotations

import gc
import logging

from aiohttp import web

from .catalog import Catalog, load_catalog
from .console import Console, ConsoleUsers, add_console, make_templates
from .errors import MethodNotAllowed, NotFound, PayloadTooLarge, echo
from .http.admin import add_admin_routes
from .http.models import add_model_routes
from .http.protocols import add_protocol_routes
from .http.readiness import Readiness, add_readiness_routes
from .http.apidoc import add_apidoc_routes
from .http.forwarded import TrustedProxies
from .http.guard import BODY_BUDGET, guard_middleware, handler_args as guard_handler_args, quiet_aiohttp
from .http.render import error_response
from .http.routes import REQUEST_IDS, add_routes, client_request_id, new_request_id
from .http.runtime import RUNTIME, Runtime
from .http.transport_security import add_transport_security
from .limits.auth_failures import AuthFailureLimiter
from .limits.base import Limiter
from .observability.logs import RequestLog
from .observability.metrics import Metrics
from .limits.factory import make_limiter
from .routing.sticky_factory import make_sticky_store
from .providers.discovery import Discovery
from .providers.transport import Timeouts, Transport
from .routing.health import Health
from .routing.planner import Planner
from .routing.strategies import make_strategies
from .services.accounts import AccountsService
from .services.auth import Authenticator
from .services.billing import Billing
from .services.call import ChatDeps
from .services.chat import ChatService
from .services.retention import ResponsePurge
from .services.usage import UsageWriter
from .settings import Settings
from .store.base import Store
from .store.factory import open_store

__all__ = ["create_app"]
log = logging.getLogger("routerone")


@web.middleware
async def json_errors(request: web.Request, handler):
    """Every failure becomes a documented error body, never a traceback; every response carries
    x-request-id (the caller's own when it sent a usable one, else Router One's unique id, which
    is also what billing keys on: see routes.REQUEST_IDS)."""
    internal_id = new_request_id()
    rid = client_request_id(request) or internal_id
    request[REQUEST_IDS] = (internal_id, rid)
    try:
        resp = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        resp = error_response(PayloadTooLarge(
            f"The request body is larger than the limit of {request.client_max_size} bytes", param=None), rid)
    except web.HTTPNotFound:
        return error_response(NotFound(f"No route for {request.method} {echo(request.path)}"), rid)
    except web.HTTPMethodNotAllowed:
        return error_response(MethodNotAllowed(f"Method {request.method} is not allowed on {echo(request.path)}"), rid)
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - never a traceback to the client (a RouterOneError: its own body)
        resp = error_response(exc, rid)
    if not resp.prepared:
        if "x-request-id" not in resp.headers:
            resp.headers["x-request-id"] = rid
        if request.content.exception() is not None:
            # the body could not be read (a Content-Encoding that does not match it, a timeout): what
            # is left of it cannot be told from a next request, so this connection carries no other
            resp.force_close()
    return resp


# The cyclic GC's thresholds while serving. Python's default (700, 10, 10) runs a young-generation
# pass every 700 net container allocations: with 1,000 open streams that is hundreds of passes a
# second, each walking the objects of every request in flight, and a full pass every ~70,000
# (tens of ms with the loop stopped). Nearly all of a request's objects are freed by reference
# counting when it ends; the GC is only for cycles, which are rare here, so passes can be rarer.
GC_THRESHOLDS = (50_000, 20, 100)


def create_app(settings: Settings, *, store: Store | None = None, limiter: Limiter | None = None,
               catalog: Catalog | None = None, shared_sticky=None, shared_cooldowns=None) -> web.Application:
    """`shared_sticky`, `shared_cooldowns`: the `SharedStickyState.handle` and `SharedCooldownState.handle`
    of `serve --workers N` without Redis."""
    store = store or open_store(settings.database_url)
    limiter = limiter or make_limiter(settings)
    catalog = catalog or load_catalog(settings)
    for warning in catalog.warnings:
        log.warning(warning)
    discovery = Discovery(catalog)
    board = None
    if settings.redis_url:     # cooldowns shared by every worker and instance on this Redis
        from .routing.cooldown_redis import RedisCooldownBoard
        board = RedisCooldownBoard(settings.redis_url, lambda: catalog.vendors)
    elif shared_cooldowns is not None:   # the workers of `serve --workers N` without Redis
        from .routing.cooldown_shared import SharedCooldownBoard
        board = SharedCooldownBoard(shared_cooldowns)
    health = Health(cooldown_failures=settings.cooldown_failures, cooldown_s=settings.cooldown_s,
                    retry_budget_tokens=settings.retry_budget_tokens,
                    retry_budget_token_ratio=settings.retry_budget_token_ratio, board=board)
    auth = Authenticator(store, cache_ttl_s=settings.auth_cache_ttl_s, max_entries=settings.auth_cache_max_entries,
                         failures=AuthFailureLimiter(settings.auth_failures_per_ip_per_minute, window_s=60.0))
    defaults = Timeouts(settings.connect_timeout_s, settings.first_byte_timeout_s, settings.idle_timeout_s,
                        settings.stream_timeout_s)
    transport = Transport(defaults, per_provider=catalog.timeouts(defaults), http1=settings.upstream_http1)
    usage = UsageWriter(store, flush_interval_s=settings.usage_flush_interval_s, batch_size=settings.usage_batch_size)
    billing = Billing(store, reservation_ttl_s=settings.reservation_ttl_s,
                      sweep_interval_s=settings.reservation_sweep_interval_s, usage=usage)
    sticky = make_sticky_store(settings, shared_sticky)
    purge = ResponsePurge(store, settings.responses_retention_days, settings.responses_purge_interval_s)
    planner = Planner(catalog, health, make_strategies(), default_strategy=settings.routing_strategy,
                      willingness_to_pay=settings.willingness_to_pay, fallbacks=catalog.fallbacks, sticky=sticky)
    metrics = Metrics()
    request_log = RequestLog(every_request=settings.log_requests, content=settings.log_content)
    chat = ChatService(ChatDeps(settings, auth, planner, transport, billing, limiter, usage, health, metrics,
                                request_log))
    accounts = AccountsService(store, auth, strategies=tuple(planner.strategies), catalog=catalog)
    rt = Runtime(settings, catalog, auth, chat, accounts, metrics)
    metrics.gauge("routerone_usage_queue_depth", "Usage records waiting to be written", lambda: usage.depth,
                  live=True)
    metrics.gauge("routerone_billing_rejections", "Requests refused for insufficient balance",
                  lambda: billing.rejections)
    metrics.gauge("routerone_billing_uncharged_micros", "Usage cost beyond the reservation, not charged "
                  "(an upstream reported more usage than the worst case)", lambda: billing.uncharged_micros)
    metrics.gauge("routerone_billing_usage_flagged", "Settlements whose upstream token counts were implausible "
                  "(negative or above 1e9) and were corrected", lambda: billing.usage_flagged)
    metrics.gauge("routerone_billing_pending_settles", "Settles waiting for the database (their holds are kept)",
                  lambda: billing.pending_settles)
    metrics.gauge("routerone_billing_live_holds", "Holds of calls running in this process (the sweep extends "
                  "their expiry past reservation_ttl_s)", lambda: billing.live_holds, live=True)
    metrics.gauge("routerone_billing_holds_extended", "Expiry extensions of live holds written by the sweep",
                  lambda: billing.holds_extended)
    metrics.gauge("routerone_responses_purged", "Expired stored responses deleted by the background purge "
                  "(responses_retention_days)", lambda: purge.purged)
    metrics.gauge("routerone_usage_rejects", "Usage rows the database refused (kept in usage_rejects)",
                  lambda: usage.rejected)
    if hasattr(store, "round_trips"):      # PostgresStore: how well reserve/settle batch under load
        for op in ("reserve", "settle", "flush"):
            metrics.gauge(f"routerone_store_{op}_round_trips", f"Database round trips made for {op} batches",
                          lambda op=op: store.round_trips()[op])
            metrics.gauge(f"routerone_store_{op}_calls", f"{op} calls carried by those round trips",
                          lambda op=op: store.batched_calls()[op])
    metrics.gauge("routerone_auth_cache_entries", "Keys held in the authentication caches (bounded)",
                  lambda: auth.cached_entries)
    metrics.gauge("routerone_limiter_fallback_events",
                  "Times the limiter fell back or failed closed (Redis down, shared memory full)",
                  lambda: getattr(limiter, "fallback_events", 0))
    metrics.gauge("routerone_sticky_fallback_events",
                  "Sticky-conversation lookups or pins not answered (Redis down, shared table busy): "
                  "routed afresh", lambda: getattr(sticky, "fallback_events", 0))
    metrics.gauge("routerone_cooldown_board_fallback_events",
                  "Cooldowns not shared (Redis round trips failed; the workers' shared table "
                  "busy or full): those were per process", lambda: getattr(board, "fallback_events", 0))

    quiet_aiohttp()
    guard = guard_middleware(settings)
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[json_errors, guard],
                          handler_args=guard_handler_args(settings))
    metrics.gauge("routerone_in_flight_requests", "Requests being served now (capped by max_in_flight_requests)",
                  guard.in_flight)
    app[BODY_BUDGET] = guard.body_budget
    metrics.gauge("routerone_body_bytes_in_flight", "Bytes of request bodies held now (capped by "
                  "max_body_bytes_in_flight)", lambda: guard.body_budget.held_bytes)
    app[RUNTIME] = rt
    add_transport_security(app, TrustedProxies(settings.trusted_proxies))
    add_routes(app)
    add_model_routes(app)
    add_admin_routes(app)
    add_readiness_routes(app, Readiness(store, limiter, limiter_required=(
        getattr(limiter, "failure_policy", None) == "closed")))
    add_protocol_routes(app)       # /v1/messages, /v1/responses, /v1/embeddings
    add_apidoc_routes(app)
    if settings.console:
        add_console(app, Console(settings, store, accounts, catalog, health, planner, chat, ConsoleUsers(store),
                                 make_templates()))
    demo_why = catalog.demo_why

    async def startup(app: web.Application) -> None:
        log.info(demo_why)    # says at start whether the offline demo provider serves requests
        await store.migrate()
        if settings.admin_key:
            await accounts.bootstrap_admin(settings.admin_key)
        await auth.start()
        await billing.start()
        await usage.start()
        await purge.start()
        await discovery.start()   # waits a few seconds at most; slow providers join later
        if board is not None:
            await board.start()
        metrics.start()
        gc.freeze()   # start-up objects (catalog, router model, modules) leave the GC's working set
        gc.set_threshold(*GC_THRESHOLDS)

    async def cleanup(app: web.Application) -> None:
        await discovery.stop()
        await chat.drain()
        await billing.stop()       # its last pending settles may hand records to the usage writer
        await usage.stop()
        await purge.stop()
        await metrics.stop()
        await auth.stop()
        await transport.close()
        await limiter.close()
        await sticky.close()
        if board is not None:
            await board.close()
        await store.close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app

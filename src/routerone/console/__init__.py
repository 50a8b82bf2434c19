"""The Router One web console at /console: server-rendered pages (Jinja2) with a little JavaScript,
served by the gateway itself; `console = false` turns it off.

    add_console(app, Console(...))   # create_app does this
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from .activity import RollupCache
from .pages_auth import add_auth_routes, not_found
from .pages_operator import add_operator_routes
from .pages_user import add_user_routes
from .playground import add_playground_routes
from .users import ConsoleUsers
from .web import BASE, CONSOLE, Console, add_security_headers, make_templates, see_other

__all__ = ["add_console", "Console", "ConsoleUsers", "make_templates"]

STATIC = Path(__file__).parent / "static"


async def _to_console(request: web.Request) -> web.StreamResponse:
    return see_other(BASE + "/")


def add_console(app: web.Application, console: Console) -> None:
    console.activity_cache = console.activity_cache or RollupCache(console.store)
    app[CONSOLE] = console
    app.on_response_prepare.append(add_security_headers)
    add_auth_routes(app)
    add_user_routes(app)
    add_operator_routes(app)
    add_playground_routes(app)
    app.router.add_get(BASE, _to_console)
    app.router.add_get("/", _to_console)        # the gateway's home page is the console
    app.router.add_static(f"{BASE}/static", STATIC, append_version=False)
    app.router.add_get(BASE + "/{tail:.*}", not_found)

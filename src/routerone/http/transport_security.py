"""HSTS. Router One speaks plain http; TLS ends at a front proxy, which says so with
`X-Forwarded-Proto: https` (the same rule decides the console cookies' Secure flag). A response
to such a request, or to one over TLS to Router One itself, carries
`Strict-Transport-Security: max-age=31536000`; over plain http, none does (browsers ignore the
header there anyway, RFC 6797 section 8.1).

    add_transport_security(app)   # create_app does this: every response, console and API
"""
from __future__ import annotations

from aiohttp import web

__all__ = ["HSTS", "secure_request", "add_transport_security"]

HSTS = "max-age=31536000"       # one year; no includeSubDomains: other hosts are not Router One's to decide


def secure_request(request: web.Request) -> bool:
    """The client reached us over https: TLS here, or a front proxy's X-Forwarded-Proto."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


async def _add_hsts(request: web.Request, response: web.StreamResponse) -> None:
    if secure_request(request):
        response.headers["Strict-Transport-Security"] = HSTS


def add_transport_security(app: web.Application) -> None:
    app.on_response_prepare.append(_add_hsts)

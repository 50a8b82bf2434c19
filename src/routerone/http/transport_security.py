"""HSTS. Router One speaks plain http; TLS ends at a front proxy, which says so with
`X-Forwarded-Proto: https` (the same rule decides the console cookies' Secure flag), believed only
from a peer in `trusted_proxies` (forwarded.py; any other peer could claim https), and only its last
entry, the one that proxy appended (a client behind it could send a first one). A response
to such a request, or to one over TLS to Router One itself, carries
`Strict-Transport-Security: max-age=31536000`; over plain http, none does (browsers ignore the
header there anyway, RFC 6797 section 8.1).

    add_transport_security(app, TrustedProxies(settings.trusted_proxies))   # create_app: every response
"""
from __future__ import annotations

from aiohttp import web

from .forwarded import LOOPBACK, TrustedProxies, forwarded_proto

__all__ = ["HSTS", "TRUSTED_PROXIES", "secure_request", "add_transport_security"]

HSTS = "max-age=31536000"       # one year; no includeSubDomains: other hosts are not Router One's to decide


TRUSTED_PROXIES: web.AppKey[TrustedProxies] = web.AppKey("routerone_trusted_proxies", TrustedProxies)
_LOOPBACK_ONLY = TrustedProxies(LOOPBACK)     # an app that add_transport_security did not set up


def secure_request(request: web.Request) -> bool:
    """The client reached us over https: TLS here, or a trusted front proxy's X-Forwarded-Proto."""
    if request.secure:
        return True
    if forwarded_proto(request.headers.getall("X-Forwarded-Proto", ())) != "https":
        return False
    return request.config_dict.get(TRUSTED_PROXIES, _LOOPBACK_ONLY).trusts(request.remote)


async def _add_hsts(request: web.Request, response: web.StreamResponse) -> None:
    if secure_request(request):
        response.headers["Strict-Transport-Security"] = HSTS


def add_transport_security(app: web.Application, proxies: TrustedProxies) -> None:
    app[TRUSTED_PROXIES] = proxies
    app.on_response_prepare.append(_add_hsts)

"""Rendering helpers: JSON responses and error bodies in the seed's shape."""
from __future__ import annotations

import logging

import orjson
from aiohttp import web

from ..errors import DatabaseUnavailable, RouterOneError
from ..store.errors import is_unavailable

__all__ = ["json_response", "error_response"]
log = logging.getLogger("routerone.http")


def json_response(obj, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, headers=headers,
                        content_type="application/json")


def error_response(exc: BaseException, request_id: str | None = None) -> web.Response:
    if not isinstance(exc, RouterOneError):
        if is_unavailable(exc):     # our database is down or unreachable: a 503 the client may retry
            log.warning("database unavailable: %s: %s", type(exc).__name__, exc, extra={"request_id": request_id})
            exc = DatabaseUnavailable()
        else:
            log.exception("unhandled error", extra={"request_id": request_id}, exc_info=exc)
            exc = RouterOneError()
    headers = dict(exc.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return web.Response(body=exc.body(), status=exc.status, headers=headers, content_type="application/json")

"""Rendering helpers: JSON responses and error bodies in the seed's shape."""
from __future__ import annotations

import logging
import re

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ..errors import DatabaseUnavailable, InvalidRequest, RouterOneError
from ..store.errors import is_unavailable
from ..wire.messages import error_body as anthropic_error_body

__all__ = ["json_response", "error_response", "anthropic_error", "error_response_for", "as_router_error",
           "unreadable_body"]
log = logging.getLogger("routerone.http")


def json_response(obj, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, headers=headers,
                        content_type="application/json")


def as_router_error(exc: BaseException, request_id: str | None = None) -> RouterOneError:
    """Any failure as the error a client sees: Router One's own as is, the database down or
    unreachable as a 503 the client may retry, anything else logged with its traceback and a 500."""
    if isinstance(exc, RouterOneError):
        return exc
    if isinstance(exc, RequestPayloadError):
        return unreadable_body(exc)
    if is_unavailable(exc):
        log.warning("database unavailable: %s: %s", type(exc).__name__, exc, extra={"request_id": request_id})
        return DatabaseUnavailable()
    log.exception("unhandled error", extra={"request_id": request_id}, exc_info=exc)
    return RouterOneError()


def unreadable_body(exc: RequestPayloadError) -> InvalidRequest:
    """A body aiohttp could not read: a Content-Encoding it cannot decode (gzip that is not gzip),
    or a body cut short. The client's mistake, a 400, not a 500 (app.json_errors closes the connection
    after it)."""
    reason = re.sub(r"^\d{3}, message: ", "", " ".join(str(exc).split()))[:200]
    return InvalidRequest(f"The request body could not be read: {reason}", code="invalid_body")


def error_response(exc: BaseException, request_id: str | None = None) -> web.Response:
    exc = as_router_error(exc, request_id)
    headers = dict(exc.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return web.Response(body=exc.body(), status=exc.status, headers=headers, content_type="application/json")


OVERLOADED_STATUS = 529   # Anthropic's own status for overloaded_error (its SDK raises OverloadedError on it)


def anthropic_error(exc: BaseException, request_id: str) -> web.Response:
    """An error in Anthropic's shape. An upstream's 529 (`upstream_overloaded`, a 503 on the OpenAI
    surfaces, which know no 529) stays a 529 here, as Anthropic answers it."""
    exc = as_router_error(exc, request_id)      # the database down is a 503 here too, and a bug is logged
    headers = {**exc.headers, "x-request-id": request_id, "request-id": request_id}
    status = OVERLOADED_STATUS if exc.code == "upstream_overloaded" else exc.status
    return web.Response(body=anthropic_error_body(exc, request_id), status=status, headers=headers,
                        content_type="application/json")


def error_response_for(request: web.Request, exc: BaseException, request_id: str) -> web.Response:
    """For a route both protocols share (`/v1/models`): Anthropic's error shape (and `request-id`)
    to a client that sends `anthropic-version` (Anthropic's SDKs and Claude Code always do), else
    the seed's (OpenAI's)."""
    if "anthropic-version" in request.headers:
        return anthropic_error(exc, request_id)
    return error_response(exc, request_id)

"""Map an upstream HTTP status to Router One's error tree (shared by every adapter)."""
from __future__ import annotations

from typing import Mapping

from ..errors import (UpstreamAuthFailed, UpstreamBadRequest, UpstreamError, UpstreamRateLimited,
                      UpstreamTimeout, UpstreamUnavailable)

__all__ = ["error_for_status", "retry_after_s"]


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    for name in ("retry-after-ms", "Retry-After-Ms"):
        if name in headers:
            try:
                return float(headers[name]) / 1000.0
            except ValueError:
                pass
    for name in ("retry-after", "Retry-After"):
        if name in headers:
            try:
                return float(headers[name])
            except ValueError:
                return None
    return None


def error_for_status(status: int, message: str, *, provider: str, headers: Mapping[str, str],
                     upstream_code: str | None = None) -> UpstreamError:
    """The client-facing error for an upstream failure. The caller's key is never at fault for
    401/403 from upstream (those are Router One's credentials), so those become 502."""
    text = f"{provider}: {message}" if message else None
    kw = dict(provider=provider, upstream_status=status)
    if status == 429:
        return UpstreamRateLimited(text, retry_after_s=retry_after_s(headers), **kw)
    if status in (400, 404, 413, 422):
        err = UpstreamBadRequest(text, code=upstream_code or "upstream_invalid_request", **kw)
        if status == 413:
            err.code = "payload_too_large"
        return err
    if status in (401, 403):
        return UpstreamAuthFailed(None, **kw)
    if status in (408, 504):
        return UpstreamTimeout(text, **kw)
    if status == 529 or status == 503:
        err = UpstreamUnavailable(text, code="upstream_overloaded" if status == 529 else "upstream_unavailable",
                                  retry_after_s=retry_after_s(headers), **kw)
        err.status = 503
        return err
    return UpstreamUnavailable(text, **kw)

"""Map an upstream HTTP status to Router One's error tree (shared by every adapter)."""
from __future__ import annotations

import math
import re
import time
from email.utils import parsedate_to_datetime
from typing import Mapping

from ..errors import (UpstreamAuthFailed, UpstreamBadRequest, UpstreamError, UpstreamModelNotFound,
                      UpstreamQuotaExhausted, UpstreamRateLimited, UpstreamTimeout, UpstreamUnavailable)
from ..wire.decimal_text import ascii_decimal

__all__ = ["error_for_status", "retry_after_s", "MAX_RETRY_AFTER_S"]


_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")    # an upstream error code passed on: short, plain ASCII
MAX_RETRY_AFTER_S = 3600.0    # an upstream asking for longer is believed only this far
MAX_MESSAGE_CHARS = 2000      # of an upstream's error message, passed on to the client


def _seconds(value: str, scale: float) -> float | None:
    """A finite, non-negative number of seconds, capped at MAX_RETRY_AFTER_S; None when unusable
    ("nan", "inf", "-3", "soon", ...). Upstream headers are untrusted input."""
    number = ascii_decimal(value) if isinstance(value, str) else None     # not float(): it reads "٣٠", "3_0"
    if number is None:
        return None
    v = number * scale
    if not math.isfinite(v) or v < 0:
        return None
    return min(v, MAX_RETRY_AFTER_S)


def _http_date_s(value: str) -> float | None:
    """Retry-After as an HTTP-date (RFC 9110 10.2.3): seconds from now, or None."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - time.time()), MAX_RETRY_AFTER_S)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """How long the upstream asks us to wait: `retry-after-ms`, else `Retry-After` (seconds or an
    HTTP-date). Anything not finite, negative or unparseable is ignored (None), never an error."""
    for name in ("retry-after-ms", "Retry-After-Ms"):
        if name in headers:
            v = _seconds(headers[name], 0.001)
            if v is not None:
                return v
    for name in ("retry-after", "Retry-After"):
        if name in headers:
            raw = headers[name]
            v = _seconds(raw, 1.0)
            return v if v is not None else _http_date_s(raw)
    return None


def error_for_status(status: int, message: str, *, provider: str, headers: Mapping[str, str],
                     upstream_code: str | None = None) -> UpstreamError:
    """The client-facing error for an upstream failure. The caller's key is never at fault for
    401/403 from upstream (those are Router One's credentials), so those become 502; nor for 402 or
    a 429 `insufficient_quota` (the provider account's credits), 502 likewise; nor for a 404 (the
    deployment's upstream model name or base_url), 502 `upstream_model_not_found`."""
    if len(message) > MAX_MESSAGE_CHARS:    # an upstream's message is passed on, within reason
        message = message[:MAX_MESSAGE_CHARS] + "\u2026"
    text = f"{provider}: {message}" if message else None
    upstream_code = upstream_code if upstream_code and _CODE.fullmatch(upstream_code) else None
    kw = dict(provider=provider, upstream_status=status)
    if status == 402 or (status == 429 and upstream_code == "insufficient_quota"):
        # the provider account's credits: not a rate limit (waiting does not help), the operator's to fix
        return UpstreamQuotaExhausted(f"The upstream provider '{provider}' refused: its account is out of credits "
                                      f"or quota ({message[:300]})" if provider else None, **kw)
    if status == 429:
        return UpstreamRateLimited(text, retry_after_s=retry_after_s(headers), **kw)
    if status == 404:
        # the catalog says this deployment serves the model: its upstream name or base_url is the operator's to fix
        return UpstreamModelNotFound(f"The upstream provider '{provider}' does not serve the model Router One "
                                     f"asked for (check providers.{provider}.base_url and the model's upstream "
                                     f"name): {message}" if provider else text, **kw)
    if status in (400, 413, 422):
        err = UpstreamBadRequest(text, code=upstream_code or "upstream_invalid_request",
                                  upstream_code=upstream_code, **kw)
        if status == 413:     # as Router One's own too-large body: 413 payload_too_large (Anthropic: request_too_large)
            err.status, err.code = 413, "payload_too_large"
        return err
    if status in (401, 403):
        # which provider's key to fix, and where it is set, is the operator's: said in the log
        # (GuardedAdapter.map_error), not to the client
        return UpstreamAuthFailed(**kw)
    if status in (408, 504):
        return UpstreamTimeout(text, **kw)
    if status == 529 or status == 503:
        err = UpstreamUnavailable(text, code="upstream_overloaded" if status == 529 else "upstream_unavailable",
                                  retry_after_s=retry_after_s(headers), **kw)
        err.status = 503
        return err
    return UpstreamUnavailable(text, **kw)

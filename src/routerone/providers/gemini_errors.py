"""Google error bodies -> Router One's error tree (via the shared `error_for_status`).

Body: `{"error": {"code": <http>, "message", "status": <google.rpc.Code name>, "details": [...]}}`
(the streaming endpoint without `alt=sse` wraps it in a JSON array). Decisions:
- 400 with `ErrorInfo.reason == "API_KEY_INVALID"` is Router One's credential, not the caller's request:
  treated as 401 (-> `UpstreamAuthFailed`, 502, another deployment may work).
- 400 `FAILED_PRECONDITION` (billing not enabled, region not served) is likewise the operator's
  configuration: treated as 403 (-> `UpstreamAuthFailed`).
- 429 `RESOURCE_EXHAUSTED`: `google.rpc.RetryInfo.retryDelay` ("43s") becomes `retry_after_s` when no
  `Retry-After` header says otherwise.
- 404 `NOT_FOUND` keeps the shared 404 rule: 502 `upstream_model_not_found` (the deployment's model name).
- `upstream_status` always records the status Google actually sent.
"""
from __future__ import annotations

from typing import Mapping

import orjson

from ..errors import UpstreamError
from .status import error_for_status, retry_after_s

__all__ = ["map_gemini_error", "error_from_event", "retry_delay_s", "RPC_STATUS_HTTP"]

RPC_STATUS_HTTP = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "UNKNOWN": 500, "INTERNAL": 500, "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def _envelope(body: bytes) -> dict | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, list) and doc:
        doc = doc[0]
    err = doc.get("error") if isinstance(doc, dict) else None
    return err if isinstance(err, dict) else None


def _duration_s(value: object) -> float | None:
    """A google.protobuf.Duration in JSON form ("43s", "0.250s") or as {seconds, nanos}."""
    try:
        if isinstance(value, str) and value.endswith("s"):
            return float(value[:-1])
        if isinstance(value, dict):
            return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
    except ValueError:
        return None
    return None


def retry_delay_s(details: object) -> float | None:
    for d in details if isinstance(details, list) else ():
        if isinstance(d, dict) and d.get("@type") == _RETRY_INFO:
            return _duration_s(d.get("retryDelay"))
    return None


def _reason(details: object) -> str | None:
    for d in details if isinstance(details, list) else ():
        if isinstance(d, dict) and d.get("@type") == _ERROR_INFO and isinstance(d.get("reason"), str):
            return d["reason"]
    return None


def _from_error(status: int, err: dict | None, fallback_text: str, headers: Mapping[str, str],
                provider: str) -> UpstreamError:
    err = err or {}
    rpc = err.get("status") if isinstance(err.get("status"), str) else ""
    message = str(err.get("message") or fallback_text)
    details = err.get("details")
    hdrs = dict(headers)
    delay = retry_delay_s(details)
    if delay is not None and retry_after_s(hdrs) is None:
        hdrs["retry-after"] = f"{delay:g}"
    effective = status
    if status == 400 and _reason(details) == "API_KEY_INVALID":
        effective = 401
    elif status == 400 and rpc == "FAILED_PRECONDITION":
        effective = 403
    text = f"{rpc}: {message}" if rpc and message else message
    error = error_for_status(effective, text, provider=provider, headers=hdrs)
    error.upstream_status = status
    return error


def map_gemini_error(status: int, headers: Mapping[str, str], body: bytes, *, provider: str) -> UpstreamError:
    """The error for a non-2xx HTTP answer from Gemini."""
    fallback = body[:200].decode("utf-8", "replace").strip()
    return _from_error(status, _envelope(body), fallback, headers, provider)


def error_from_event(err: object, *, provider: str) -> UpstreamError:
    """The error for an `{"error": {...}}` event inside a 200 stream."""
    err = err if isinstance(err, dict) else {"message": str(err)}
    code = err.get("code")
    status = code if isinstance(code, int) and code >= 400 else RPC_STATUS_HTTP.get(str(err.get("status")), 500)
    return _from_error(status, err, "Gemini stream error", {}, provider)

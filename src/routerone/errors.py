"""Router One's error tree. Every error a client can see is one of these leaves.

    RouterOneError                       (500 api_error / internal_error)
    ├── InvalidRequest                   400 invalid_request_error  (param names the field)
    │   ├── UnsupportedParameter         400 invalid_request_error / unsupported_parameter
    │   ├── CapabilityMismatch           400 invalid_request_error / model_capability_mismatch
    │   ├── ContextLengthExceeded        400 invalid_request_error / context_length_exceeded
    │   ├── PayloadTooLarge              413 invalid_request_error / payload_too_large
    │   ├── NotCancellable               400 invalid_request_error / null (cancel: no background responses)
    │   └── MethodNotAllowed             405 invalid_request_error / method_not_allowed
    ├── AuthenticationFailed             401 authentication_error / invalid_api_key
    ├── InsufficientBalance              402 billing_error / insufficient_balance
    ├── PermissionDenied                 403 permission_error / model_not_allowed | key_expired | spend_cap_reached
    ├── ModelNotFound                    404 invalid_request_error / model_not_found
    ├── NotFound                         404 invalid_request_error / not_found
    ├── Conflict                         409 invalid_request_error / account_name_taken
    ├── RateLimited                      429 rate_limit_error / rate_limit_exceeded | too_many_auth_failures (+ Retry-After)
    ├── ServiceUnavailable               503 api_error / server_busy | limiter_unavailable (+ Retry-After)
    └── UpstreamError                    a provider failed; carries `retryable` for the router
        ├── UpstreamRateLimited          429 rate_limit_error / upstream_rate_limited (+ Retry-After)
        ├── UpstreamBadRequest           400 invalid_request_error / upstream's code (never retried; 413 stays 413)
        ├── UpstreamAuthFailed           502 upstream_error / upstream_auth_failed (our config, not the caller's key; x-should-retry: false)
        │   └── UpstreamQuotaExhausted   502 upstream_error / upstream_quota_exhausted (the provider account's credits; x-should-retry: false)
        ├── UpstreamUnavailable          502/503 upstream_error / upstream_unavailable | overloaded
        └── UpstreamTimeout              504 timeout_error / upstream_timeout
            ├── UpstreamNoResponse       504 (no first byte in time: that deployment is not asked again)
            └── UpstreamOverran          504 (the reply not all in within stream_timeout_s: nor is it)
    ServiceUnavailable                   503 api_error / service_unavailable (+ Retry-After): our database

The body is the seed's shape `{"error": {"message", "type", "code"}}` plus `param` (null unless a
field is at fault), which also makes it OpenAI's `ErrorResponse`.
"""
from __future__ import annotations

import orjson

__all__ = [
    "RouterOneError", "InvalidRequest", "UnsupportedParameter", "CapabilityMismatch",
    "ContextLengthExceeded", "PayloadTooLarge", "NotCancellable", "MethodNotAllowed", "AuthenticationFailed",
    "InsufficientBalance", "PermissionDenied", "ModelNotFound", "NotFound", "Conflict", "RateLimited",
    "UpstreamError",
    "UpstreamRateLimited", "UpstreamBadRequest", "UpstreamAuthFailed", "UpstreamQuotaExhausted",
    "UpstreamUnavailable", "UpstreamTimeout", "UpstreamNoResponse", "UpstreamOverran",
    "ServiceUnavailable", "echo", "MAX_ECHO_CHARS",
]

MAX_ECHO_CHARS = 200     # of a model name, id or path a client sent, quoted back in an error message


def echo(text: str) -> str:
    """`text` the client sent, as an error message quotes it: at most MAX_ECHO_CHARS characters,
    then an ellipsis (a 100 KB model name was echoed whole in its 404)."""
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "\u2026"


def _utf8(text: str) -> str:
    r"""Text a client sent in a header is read with surrogateescape (b"\xff" -> "\udcff"); quoted in
    a message it made the error body unserialisable (orjson refuses lone surrogates): a 500."""
    if isinstance(text, str) and not text.isascii():
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class RouterOneError(Exception):
    status = 500
    type = "api_error"
    code: str | None = "internal_error"
    default_message = "Internal error"

    def __init__(self, message: str | None = None, *, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.message = _utf8(message or self.default_message)
        super().__init__(self.message)
        self.param = _utf8(param)
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def metric_code(self) -> str:
        """The error as a metric label value (routerone_requests{error_type}, ...upstream_errors{code},
        ...rejections{reason}): one of Router One's own codes, a bounded set."""
        return self.code or self.type

    def to_dict(self) -> dict:
        return {"error": {"message": self.message, "type": self.type,
                          "param": self.param, "code": self.code}}

    def body(self) -> bytes:
        return orjson.dumps(self.to_dict())


class InvalidRequest(RouterOneError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"
    default_message = "Invalid request"


class MethodNotAllowed(InvalidRequest):
    status = 405
    code = "method_not_allowed"


class UnsupportedParameter(InvalidRequest):
    code = "unsupported_parameter"


class CapabilityMismatch(InvalidRequest):
    code = "model_capability_mismatch"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "payload_too_large"


class NotCancellable(InvalidRequest):
    """OpenAI's answer to `POST /v1/responses/{id}/cancel` for a response that was not created with
    `background: true` (Router One creates none that are): its message, no param, no code."""
    code = None
    default_message = "Cannot cancel a synchronous response."


class AuthenticationFailed(RouterOneError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"
    default_message = "Invalid API key"


class InsufficientBalance(RouterOneError):
    status = 402
    type = "billing_error"
    code = "insufficient_balance"
    default_message = "Insufficient balance"


class PermissionDenied(RouterOneError):
    status = 403
    type = "permission_error"
    code = "permission_denied"
    default_message = "Permission denied"


class ModelNotFound(RouterOneError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"
    default_message = "Model not found"


class NotFound(RouterOneError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"
    default_message = "Not found"


class Conflict(RouterOneError):
    """The change would clash with what is stored (an account name another account has)."""
    status = 409
    type = "invalid_request_error"
    code = "conflict"
    default_message = "Conflict"


class RateLimited(RouterOneError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    default_message = "Rate limit exceeded"


class UpstreamError(RouterOneError):
    """A provider call failed. `retryable` tells the router whether another attempt may help."""
    status = 502
    type = "upstream_error"
    code = "upstream_error"
    default_message = "The upstream provider returned an error"
    retryable = True
    retry_same_deployment = True   # False: the router does not ask this deployment again in this request

    def __init__(self, message: str | None = None, *, provider: str = "", upstream_status: int = 0,
                 retry_after_s: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.provider = provider
        self.upstream_status = upstream_status
        self.retry_after_s = retry_after_s
        if retry_after_s is not None:
            self.headers.setdefault("Retry-After", str(max(1, int(retry_after_s + 0.999))))


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "upstream_rate_limited"
    default_message = "The upstream provider is rate limiting requests"


class UpstreamBadRequest(UpstreamError):
    status = 400
    type = "invalid_request_error"
    code = "upstream_invalid_request"
    default_message = "The upstream provider rejected the request"
    retryable = False

    def __init__(self, message: str | None = None, *, upstream_code: str | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.upstream_code = upstream_code     # the upstream's own code, passed on to the client as `code`

    @property
    def metric_code(self) -> str:
        """Never the upstream's code: any short word it likes, a label value (a series) per request."""
        if self.upstream_code is not None and self.code == self.upstream_code:
            return type(self).code or self.type
        return super().metric_code


class UpstreamAuthFailed(UpstreamError):
    """Router One's credentials were rejected: another deployment may have working ones (the router
    moves on, never back to this one: `retry_same_deployment`), but the client retrying would fail the
    same way until an operator fixes the key, so the SDKs are told not to (`x-should-retry: false`)."""
    status = 502
    code = "upstream_auth_failed"
    default_message = "The upstream provider rejected Router One's credentials for this request"
    retryable = True  # another deployment may have working credentials
    retry_same_deployment = False   # it answers the same until an operator acts

    def __init__(self, message: str | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("x-should-retry", "false")


class UpstreamQuotaExhausted(UpstreamAuthFailed):
    """The provider's account Router One uses is out of credits or quota (402, 429
    `insufficient_quota`, Anthropic's "credit balance is too low"): the operator's to fix, like a
    rejected key. Not a rate limit: no Retry-After, and no retry would help."""
    code = "upstream_quota_exhausted"
    default_message = "The upstream provider's account is out of credits or quota"


class UpstreamModelNotFound(UpstreamError):
    """The upstream does not know the model Router One asked for (404): the deployment's `upstream`
    name or the provider's base_url is wrong, which the catalog says is served, so it is neither the
    caller's request (not a 400) nor something a retry fixes. Another deployment may serve it (the
    router moves on, never back to this one); SDKs are told not to retry."""
    status = 502
    code = "upstream_model_not_found"
    default_message = "The upstream provider does not serve the model Router One asked for"
    retryable = True
    retry_same_deployment = False

    def __init__(self, message: str | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("x-should-retry", "false")


class UpstreamUnavailable(UpstreamError):
    status = 502
    code = "upstream_unavailable"
    default_message = "The upstream provider is unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"
    default_message = "The upstream provider timed out"


class UpstreamNoResponse(UpstreamTimeout):
    """No first byte within `first_byte_timeout_s` (120 s by default): asking the same deployment
    again would make the caller wait that long once more for each router retry (and again for each
    SDK retry): other deployments are tried, not this one."""
    retry_same_deployment = False


class UpstreamOverran(UpstreamTimeout):
    """The reply was not all in within `stream_timeout_s` (an hour by default), though it never
    stalled: asking the same deployment again could take as long; other deployments are tried."""
    retry_same_deployment = False


class ServiceUnavailable(RouterOneError):
    """Router One itself cannot take the request now (not the caller's limit, not an upstream):
    `server_busy` (the in-flight cap), `limiter_unavailable` (Redis down, failure_policy closed)."""
    status = 503
    type = "api_error"
    code = "service_unavailable"
    default_message = "Router One is temporarily unable to serve this request"

    def __init__(self, message: str | None = None, *, retry_after_s: int = 1, **kw) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", str(max(1, int(retry_after_s))))


class DatabaseUnavailable(ServiceUnavailable):
    """Router One's own database cannot be reached: nothing is wrong with the request, retry it."""
    default_message = "Router One cannot reach its database right now; retry shortly"

    def __init__(self, message: str | None = None, *, retry_after_s: int = 2, **kw) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **kw)

"""Structured JSON logs, one object per line, with the request id when there is one.
Prompt and completion text is never logged unless the operator sets `log_content`.

`RequestLog` writes one line per finished chat request on logger "routerone.request": always for a
failed request (status >= 400: what an operator goes looking for), for every request when
`log_requests` is on. That is off by default because the usage table already holds one row per
request (GET /admin/usage) and a log line costs about 15 us of the gateway's CPU, ~5% of a request.
"""
from __future__ import annotations

import logging
import sys
import time

import orjson

__all__ = ["configure_logging", "RequestLog", "REQUEST_LOGGER"]
REQUEST_LOGGER = "routerone.request"

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        out.update({k: v for k, v in vars(record).items() if k not in _STD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.Formatter.converter = time.gmtime


class RequestLog:
    def __init__(self, *, every_request: bool = False, content: bool = False) -> None:
        self.every_request = every_request
        self.content = content
        self._log = logging.getLogger(REQUEST_LOGGER)

    def wants(self, status: int) -> bool:
        return (self.every_request or status >= 400) and self._log.isEnabledFor(logging.INFO)

    def emit(self, usage, *, echo_id: str, prompt: str | None = None, completion: str | None = None) -> None:
        """`usage` is the request's UsageRecord; text is added only when `content` is on."""
        fields = {"request_id": echo_id, "routerone_request_id": usage.request_id, "key_id": usage.key_id,
                  "account_id": usage.account_id, "requested_model": usage.requested_model,
                  "model": usage.routed_model, "provider": usage.provider, "status": usage.status,
                  "error_type": usage.error_type, "stream": usage.stream, "latency_ms": round(usage.latency_ms, 3),
                  "ttft_ms": None if usage.ttft_ms is None else round(usage.ttft_ms, 3),
                  "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                  "cost_micros": usage.cost_micros}
        if self.content:
            fields["prompt"] = prompt
            fields["completion"] = completion
        self._log.info("chat.completions %s", usage.status, extra=fields)

    def refused(self, *, request_id: str, echo_id: str, status: int, error_type: str,
                key_id: int | None = None, account_id: int | None = None) -> None:
        """A request refused before any upstream call (no usage, no text)."""
        self._log.info("chat.completions %s", status, extra={
            "request_id": echo_id, "routerone_request_id": request_id, "key_id": key_id,
            "account_id": account_id, "status": status, "error_type": error_type})

"""Upstream bytes are untrusted input: a reply, stream event or error body that an adapter cannot
read is an upstream failure (502 `upstream_unavailable`, retryable, so the router may fail over),
never a 500 and never a traceback to the client.

`guarded(adapter)` wraps an adapter's response side (parse_response, stream translators, map_error);
the translators themselves stay simple. What was malformed is logged (type of fault, provider), not
the body.
"""
from __future__ import annotations

import logging
from typing import Mapping

from ..errors import RouterOneError, UpstreamError, UpstreamUnavailable
from ..wire.chat import ChatRequest
from .base import Deployment, ProviderAdapter, ProviderResult, SSEEvent, UpstreamRequest
from .status import error_for_status

__all__ = ["guarded", "GuardedAdapter"]
log = logging.getLogger("routerone.providers")

MALFORMED = (TypeError, AttributeError, KeyError, ValueError, IndexError, OverflowError)


def _unreadable(provider: str, what: str, exc: BaseException) -> UpstreamUnavailable:
    log.warning("%s: upstream sent a %s Router One cannot read (%s)", provider, what, type(exc).__name__)
    return UpstreamUnavailable(f"{provider}: upstream sent a {what} Router One cannot read", provider=provider)


class _GuardedTranslator:
    __slots__ = ("_inner", "_provider")

    def __init__(self, inner, provider: str) -> None:
        self._inner = inner
        self._provider = provider

    @property
    def usage(self):
        return self._inner.usage

    @property
    def done(self) -> bool:
        return self._inner.done

    def feed(self, event: SSEEvent) -> list[dict]:
        try:
            return self._inner.feed(event)
        except RouterOneError:
            raise
        except MALFORMED as exc:
            raise _unreadable(self._provider, "stream event", exc) from None


class _GuardedDataTranslator(_GuardedTranslator):
    """For translators with the `feed_data(bytes)` fast path (OpenAI protocol)."""
    __slots__ = ()

    def feed_data(self, data: bytes) -> list[dict]:
        try:
            return self._inner.feed_data(data)
        except RouterOneError:
            raise
        except MALFORMED as exc:
            raise _unreadable(self._provider, "stream event", exc) from None


class GuardedAdapter:
    def __init__(self, inner: ProviderAdapter) -> None:
        self.inner = inner
        self.protocol = inner.protocol

    def build_request(self, req: ChatRequest, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        return self.inner.build_request(req, dep, stream=stream)

    def parse_response(self, body: bytes, dep: Deployment) -> ProviderResult:
        try:
            return self.inner.parse_response(body, dep)
        except RouterOneError:
            raise
        except MALFORMED as exc:
            raise _unreadable(dep.vendor.name, "reply", exc) from None

    def stream_translator(self, req: ChatRequest, dep: Deployment):
        inner = self.inner.stream_translator(req, dep)
        cls = _GuardedDataTranslator if hasattr(inner, "feed_data") else _GuardedTranslator
        return cls(inner, dep.vendor.name)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment) -> UpstreamError:
        try:
            return self.inner.map_error(status, headers, body, dep)
        except MALFORMED as exc:
            log.warning("%s: upstream error body Router One cannot read (%s)", dep.vendor.name, type(exc).__name__)
            return error_for_status(status, "", provider=dep.vendor.name, headers=headers)


def guarded(adapter: ProviderAdapter) -> GuardedAdapter:
    return GuardedAdapter(adapter)

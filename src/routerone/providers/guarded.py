"""Upstream bytes are untrusted input: a reply, stream event or error body that an adapter cannot
read is an upstream failure (502 `upstream_unavailable`, retryable, so the router may fail over),
never a 500 and never a traceback to the client.

`guarded(adapter)` wraps an adapter's response side (parse_response, stream translators, map_error);
the translators themselves stay simple. A reply that reads but has the wrong shape where Router One
and its clients look (`well_formed_choices`: content that is not text, tool_calls that are not a
list of objects, ...) is the same 502, whichever protocol the upstream spoke, and so is one nested
too deep to be written back (orjson reads 1024 levels, writes 255). What was malformed is logged (type of fault, provider), not
the body.
"""
from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from typing import Mapping

import orjson

from ..errors import RouterOneError, UpstreamError, UpstreamUnavailable
from ..wire.chat import ChatRequest, could_be_too_deep
from .base import Deployment, ProviderAdapter, ProviderResult, SSEEvent, UpstreamRequest, Vendor
from .status import error_for_status

__all__ = ["guarded", "GuardedAdapter", "well_formed_choices", "parts_text", "secrets_of", "spec_finish_reason",
           "spec_envelope", "FINISH_REASONS"]
log = logging.getLogger("routerone.providers")

# RecursionError: str() of a value nested ~1000 deep (orjson reads 1024 levels), an error message say
MALFORMED = (TypeError, AttributeError, KeyError, ValueError, IndexError, OverflowError, RecursionError)


def secrets_of(vendor: Vendor) -> tuple[str, ...]:
    """What Router One sends a provider that must never come back to a client: its key, and the
    values of the provider's own `headers` (a token for a proxy in front of a box, an Authorization
    set by hand), each also without a leading scheme ("Bearer ..."); longest first."""
    out: set[str] = set()
    for value in (vendor.api_key, *vendor.headers.values()):
        if value:
            out.add(value)
            out.add(value.partition(" ")[2].strip())
    return tuple(sorted((v for v in out if len(v) >= 8), key=len, reverse=True))


def _redacted(exc: RouterOneError, secrets: tuple[str, ...]) -> RouterOneError:
    """An upstream's error message with Router One's own credentials for it taken out: an upstream
    (or a proxy in front of it) that echoes the request's credentials must not hand them to a client."""
    message = exc.message
    for secret in secrets:
        if secret in message:
            message = message.replace(secret, "[redacted]")
    if message is not exc.message:
        exc.message = message
        exc.args = (message,)
    return exc


def _unreadable(provider: str, what: str, exc: BaseException) -> UpstreamUnavailable:
    log.warning("%s: upstream sent a %s Router One cannot read (%s)", provider, what, type(exc).__name__)
    return UpstreamUnavailable(f"{provider}: upstream sent a {what} Router One cannot read", provider=provider)


def parts_text(content) -> str:
    """The text of a content given as a list of parts (some OpenAI-compatible servers, Mistral's
    reasoning models say, send that; other parts are left out); anything else is not content
    (TypeError)."""
    if content.__class__ is not list:
        raise TypeError("content")
    return "".join(p["text"] for p in content if p.__class__ is dict and p.get("text").__class__ is str)


# OpenAI's finish_reason values; what other servers say instead (TGI's "eos_token", an Anthropic-style
# "max_tokens"...) is mapped to its meaning, anything else to "stop" (as /v1/messages maps it to end_turn)
FINISH_REASONS = frozenset(("stop", "length", "tool_calls", "content_filter", "function_call"))
_OTHER_FINISH_REASONS = {"eos_token": "stop", "eos": "stop", "stop_sequence": "stop", "end_turn": "stop",
                         "max_tokens": "length", "model_length": "length", "tool_use": "tool_calls"}


def spec_finish_reason(finish: str) -> str:
    """An upstream's finish_reason (text) as one of OpenAI's values."""
    if finish in FINISH_REASONS:
        return finish
    return _OTHER_FINISH_REASONS.get(finish, "stop")


_SERVICE_TIERS = frozenset(("auto", "default", "flex", "scale", "priority"))


def spec_envelope(resp: dict) -> None:
    """A completion's (or chunk's) optional `system_fingerprint` (text; left out otherwise) and
    `service_tier` (one of OpenAI's; null otherwise) as OpenAI has them: an upstream's `true` or `5`
    reached the client."""
    if "system_fingerprint" in resp and resp["system_fingerprint"].__class__ is not str:
        del resp["system_fingerprint"]
    tier = resp.get("service_tier")
    if tier is not None and (tier.__class__ is not str or tier not in _SERVICE_TIERS):   # [] or {}: unhashable
        resp["service_tier"] = None


def _spec_choices(choices: list) -> None:
    """Well-formed choices (`well_formed_choices`) with the fields OpenAI's ChatCompletion requires
    and their values: an OpenAI-compatible server may leave out `refusal`, `logprobs` or the
    message's `role`, or send its own finish_reason (or an index or logprobs of the wrong type);
    before, they reached the client as sent, a reply a typed client could not read."""
    for position, ch in enumerate(choices):
        if ch.get("index").__class__ is not int:
            ch["index"] = position
        if ch.get("logprobs").__class__ is not dict:
            ch["logprobs"] = None
        m = ch.get("message")
        if m is None:
            m = ch["message"] = {"content": None}
        finish = ch.get("finish_reason")
        if finish is None:                         # a reply is finished: null or none said why
            ch["finish_reason"] = "tool_calls" if m.get("tool_calls") else "stop"
        elif finish not in FINISH_REASONS:
            ch["finish_reason"] = spec_finish_reason(finish)
        m["role"] = "assistant"
        m.setdefault("refusal", None)
        if m.get("content").__class__ is list:    # parts: their text, as clients expect
            m["content"] = parts_text(m["content"]) or None
        elif "content" not in m:
            m["content"] = None
        if "tool_calls" in m and m["tool_calls"] is None:
            del m["tool_calls"]                    # null: none (OpenAI's message has a list or no key)
        for tc in m.get("tool_calls") or ():
            if tc.get("type", "function") != "function":
                tc["type"] = "function"            # the only type of a chat tool call
            if not tc.get("id"):                   # none, null or "": the client's tool message must name one
                tc["id"] = f"call_{secrets.token_hex(12)}"
            fn = tc.get("function")
            if fn is None:
                fn = tc["function"] = {"name": ""}
            if fn.get("arguments") is None:        # none said: a call without arguments
                fn["arguments"] = "{}"


def well_formed_choices(choices) -> bool:
    """The parts of a reply that Router One and its clients read have the protocol's types: a non-empty list of
    choice objects (finish_reason text or null), each message an object (or null) whose content is text, a list of parts or null,
    whose refusal is text or null (/v1/messages and /v1/responses show it as the answer's text),
    whose tool_calls are a list of objects (id text or null) with a function object whose name is text
    and whose arguments are text (or null). Other fields pass through as the upstream sent them."""
    if choices.__class__ is not list or not choices:     # none: an empty 200, as a stream with none is a 502
        return False
    for ch in choices:
        if ch.__class__ is not dict or ch.get("finish_reason").__class__ not in (str, type(None)):
            return False
        m = ch.get("message")
        if m is None:
            continue
        if m.__class__ is not dict:
            return False
        content = m.get("content")
        if content is not None and content.__class__ is not str and content.__class__ is not list:
            return False
        if m.get("refusal").__class__ not in (str, type(None)):
            return False
        calls = m.get("tool_calls")
        if calls is None:
            continue
        if calls.__class__ is not list:
            return False
        for tc in calls:
            if tc.__class__ is not dict or tc.get("id", "").__class__ not in (str, type(None)):
                return False
            fn = tc.get("function")
            if fn is None:
                continue
            if fn.__class__ is not dict or fn.get("name").__class__ is not str:
                return False
            args = fn.get("arguments")
            if args is not None and args.__class__ is not str:
                return False
    return True


class _GuardedTranslator:
    __slots__ = ("_inner", "_provider", "_secrets")

    def __init__(self, inner, provider: str, secrets: tuple[str, ...] = ()) -> None:
        self._inner = inner
        self._provider = provider
        self._secrets = secrets

    @property
    def usage(self):
        return self._inner.usage

    @property
    def done(self) -> bool:
        return self._inner.done

    @property
    def quiet(self) -> bool:
        return self._inner.quiet

    def feed(self, event: SSEEvent) -> list[dict]:
        try:
            return self._inner.feed(event)
        except RouterOneError as exc:
            raise _redacted(exc, self._secrets)
        except MALFORMED as exc:
            raise _unreadable(self._provider, "stream event", exc) from None


class _GuardedDataTranslator(_GuardedTranslator):
    """For translators with the `feed_data(bytes)` fast path (OpenAI protocol)."""
    __slots__ = ()

    def feed_data(self, data: bytes) -> list[dict]:
        try:
            return self._inner.feed_data(data)
        except RouterOneError as exc:
            raise _redacted(exc, self._secrets)
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
            result = self.inner.parse_response(body, dep)
        except RouterOneError:
            raise
        except MALFORMED as exc:
            raise _unreadable(dep.vendor.name, "reply", exc) from None
        if could_be_too_deep(body):     # JSON orjson reads (1024 levels) but cannot write back (255): a 500 after the charge
            try:
                orjson.dumps([result.response, result.native])
            except TypeError as exc:
                raise _unreadable(dep.vendor.name, "reply", exc) from None
        choices = result.response.get("choices")
        if not well_formed_choices(choices):
            log.warning("%s: upstream sent a reply of the wrong shape", dep.vendor.name)
            raise UpstreamUnavailable("upstream returned an unexpected response", provider=dep.vendor.name)
        _spec_choices(choices)
        spec_envelope(result.response)
        return result

    def stream_translator(self, req: ChatRequest, dep: Deployment):
        inner = self.inner.stream_translator(req, dep)
        cls = _GuardedDataTranslator if hasattr(inner, "feed_data") else _GuardedTranslator
        return cls(inner, dep.vendor.name, secrets_of(dep.vendor))

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment) -> UpstreamError:
        try:
            err = _redacted(self.inner.map_error(status, headers, body, dep), secrets_of(dep.vendor))
        except MALFORMED as exc:
            log.warning("%s: upstream error body Router One cannot read (%s)", dep.vendor.name, type(exc).__name__)
            err = error_for_status(status, "", provider=dep.vendor.name, headers=headers)
        if err.code == "upstream_auth_failed":     # the client is told no more than that (status.py)
            log.warning("%s: upstream answered HTTP %d: it rejected Router One's credentials (check "
                        "providers.%s.api_key)", dep.vendor.name, status, dep.vendor.name)
        return err


def guarded(adapter: ProviderAdapter) -> GuardedAdapter:
    return GuardedAdapter(adapter)


MAX_CHOICES_REMEMBERED = 128      # OpenAI's own cap on `n`
MAX_CALLS_REMEMBERED = 256        # tool calls, all choices together: far more than a model runs at once
_ID_KEPT_CHARS = 128              # a longer call id is remembered by its hash (ids may be 16 MiB)


class StreamNumbering:
    """A chat stream's choice and tool call indices as OpenAI numbers them: a stream's choices 0,
    1, ... and each choice's calls 0, 1, ..., in the order they first come. The openai SDK's stream
    helper files a delta at `choices[index]` and `tool_calls[index]`: an upstream's 10**9, -1, a
    gap, a call without an index, or two calls both numbered 0 (told apart by their ids, as
    /v1/messages and /v1/responses tell them: a delta bringing an id and a name other than its
    call's starts a new call) raised IndexError or TypeError there, or merged the calls.

    Memory is bounded whatever the stream's length: the last MAX_CHOICES_REMEMBERED choices and
    MAX_CALLS_REMEMBERED tool calls seen (least recently seen forgotten first), each call id by at
    most _ID_KEPT_CHARS characters or its hash. A delta for a forgotten one is numbered as a new
    one (the next number: the SDK's helper opens a new choice or call there); before, every index
    and id (whole) was kept for the stream's life, so a hostile upstream could grow it at will."""
    __slots__ = ("_choices", "_calls", "_next_choice", "_next_call")

    def __init__(self) -> None:
        self._choices: OrderedDict[int, int] = OrderedDict()      # upstream's choice index -> the client's
        self._calls: OrderedDict[tuple[int, int], list] = OrderedDict()   # (client's choice, upstream call index) -> [client's, id]
        self._next_choice = 0
        self._next_call: dict[int, int] = {}          # client's choice index -> its next call number

    def choice(self, index: int) -> int:
        got = self._choices.get(index)
        if got is None:
            got = self._choices[index] = self._next_choice
            self._next_choice += 1
            if len(self._choices) > MAX_CHOICES_REMEMBERED:
                self._next_call.pop(self._choices.popitem(last=False)[1], None)
        else:
            self._choices.move_to_end(index)
        return got

    def call(self, choice: int, tc: dict) -> int:
        key, call_id = (choice, tc.get("index", 0)), tc.get("id")
        if call_id:
            call_id = call_id if len(call_id) <= _ID_KEPT_CHARS else hash(call_id)
        got = self._calls.get(key)
        if got is not None and call_id and (tc.get("function") or {}).get("name") and got[1] not in (None, call_id):
            got = None                                 # a new call at that index
        if got is None:
            n = self._next_call.get(choice, 0)
            self._next_call[choice] = n + 1
            got = [n, call_id or None]
            self._calls.pop(key, None)
            self._calls[key] = got
            if len(self._calls) > MAX_CALLS_REMEMBERED:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(key)
            if got[1] is None and call_id:
                got[1] = call_id                       # a bare first delta, its id in the next
        return got[0]

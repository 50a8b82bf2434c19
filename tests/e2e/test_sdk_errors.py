"""Every failure as each official SDK sees it: one table of rows, each a real Router One over real
sockets, the `openai` or `anthropic` SDK as the client with `max_retries=2` (its default), and fake
upstreams (paced, so a stream fails after content went out). Each row asserts the exception class,
the status, the error fields, the headers (request id, Retry-After, x-should-retry), how many
requests the SDK sent (its retries) and how many reached the upstream. Every error body is checked
against the vendor's spec at teardown (protocol_helpers.wire: OpenAI's `ErrorResponse`, Anthropic's
`ErrorResponse`).

Rows whose SDK would honour a long Retry-After (a key's rpm/tpm: up to 60 s) run with retries off and
check the header instead."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import anthropic
import openai
import pytest

from protocol_helpers import wire  # noqa: F401 (fixture)
from routerone.testing import fake_openai
from routerone.testing.fake_anthropic import serve_fake_anthropic
from routerone.testing.threaded import ThreadedServer
from routerone.tokens import load_tokenizer

OAI_KEY, ANT_KEY = "sk-oai-errs-0123456789", "sk-ant-errs-0123456789"
GPT, CLAUDE = "gpt-4o", "claude-sonnet-4-20250514"
PRESENT = object()     # a header that must be there, whatever its value


@pytest.fixture(scope="module")
def fakes():
    load_tokenizer()     # the fakes count tokens on their event loop: a first load there (~1 s) delays requests
    with ThreadedServer(lambda: fake_openai.make_app(api_key=OAI_KEY, chunk_interval_ms=15)) as oai, \
            serve_fake_anthropic(api_key=ANT_KEY, chunk_interval_ms=15) as ant:
        yield {"openai": oai, "anthropic": ant}


def upstream_requests(fakes) -> int:
    return len(fakes["openai"].app["fake"].requests) + len(fakes["anthropic"].requests)


@dataclass
class Row:
    id: str
    sdk: str                                    # "openai" | "anthropic"
    call: Callable[[Any, str], Any]             # (client, text) -> the SDK call (streams are iterated)
    exc: type                                   # the exception the SDK raises
    status: int | None                          # None: raised mid-stream, after a 200
    error: dict                                 # fields of the error object that must match
    sdk_attempts: int = 1                       # HTTP requests the SDK sent (1 + its retries)
    upstream: int = 0                           # requests that reached the upstream
    headers: dict = field(default_factory=dict)  # name -> value | PRESENT | None (absent)
    key: str = "funded"                         # see make_key
    text: str = "hi"
    gateway: dict = field(default_factory=dict)
    sdk_retries: int = 2
    check: Callable[[Any], None] | None = None  # with exc=None: what the call returned
    faults: tuple = ()                          # queued on the fake Anthropic upstream first


# -- the calls ----------------------------------------------------------------------------------

def chat(model=GPT, **kw):
    return lambda c, text: c.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kw)


def chat_stream(c, text):
    for _ in c.chat.completions.create(model=GPT, messages=[{"role": "user", "content": text}], stream=True):
        pass


def ant_stream(model=CLAUDE):
    def call(c, text):
        with c.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": text}]) as s:
            for _ in s:
                pass
    return call


def responses(model=GPT, **kw):
    return lambda c, text: c.responses.create(model=model, input=text, **kw)


def responses_stream(c, text):
    return [e.type for e in c.responses.create(model=GPT, input=text, stream=True)]


def response_failed(types: list[str]) -> None:
    """The Responses stream ends with `response.failed` (the SDK yields it, as it yields OpenAI's own)."""
    assert types[0] == "response.created" and "response.output_text.delta" in types
    assert types[-1] == "response.failed" and "response.completed" not in types


def embed(model="text-embedding-3-small", **kw):
    return lambda c, text: c.embeddings.create(model=model, input=kw.pop("input", text), **kw)


def messages(model=CLAUDE, **kw):
    kw.setdefault("max_tokens", 64)
    return lambda c, text: c.messages.create(model=model, messages=[{"role": "user", "content": text}], **kw)


def messages_stream(c, text):
    with c.messages.stream(model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": text}]) as s:
        for _ in s:
            pass


def count_tokens(model=CLAUDE):
    return lambda c, text: c.messages.count_tokens(model=model, messages=[{"role": "user", "content": text}])


BIG = "x" * 8192
CREDIT_TOO_LOW = ("Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to "
                  "upgrade or purchase credits.")
O, A = "openai", "anthropic"
OE, AE = openai, anthropic
AUTH = {"type": "authentication_error", "code": "invalid_api_key"}
NO_RETRY = {"x-should-retry": "false"}

ROWS = [
    # -- the caller's key ------------------------------------------------------------------------
    Row("oai-chat-missing-key", O, chat(), OE.AuthenticationError, 401, AUTH, key="missing"),
    Row("oai-chat-bad-key", O, chat(), OE.AuthenticationError, 401, AUTH, key="bad"),
    Row("oai-chat-revoked-key", O, chat(), OE.AuthenticationError, 401, AUTH, key="revoked"),
    Row("oai-chat-expired-key", O, chat(), OE.AuthenticationError, 401, {"type": "authentication_error"}, key="expired"),
    Row("oai-responses-bad-key", O, responses(), OE.AuthenticationError, 401, AUTH, key="bad"),
    Row("oai-embeddings-bad-key", O, embed(), OE.AuthenticationError, 401, AUTH, key="bad"),
    Row("oai-models-list-bad-key", O, lambda c, t: c.models.list(), OE.AuthenticationError, 401, AUTH, key="bad"),
    Row("oai-models-get-bad-key", O, lambda c, t: c.models.retrieve(GPT), OE.AuthenticationError, 401, AUTH, key="bad"),
    Row("ant-messages-bad-key", A, messages(), AE.AuthenticationError, 401, {"type": "authentication_error"}, key="bad"),
    Row("ant-messages-revoked-key", A, messages(), AE.AuthenticationError, 401, {"type": "authentication_error"},
        key="revoked"),
    Row("ant-count-tokens-bad-key", A, count_tokens(), AE.AuthenticationError, 401, {"type": "authentication_error"},
        key="bad"),
    Row("ant-models-list", A, lambda c, t: c.models.list(), None, 200, {}),
    Row("ant-count-tokens-unknown-model", A, count_tokens("no-such-model"), AE.NotFoundError, 404,
        {"type": "not_found_error"}),
    Row("ant-models-get-unknown", A, lambda c, t: c.models.retrieve("no-such-model"), AE.NotFoundError, 404,
        {"type": "not_found_error"}),
    Row("ant-models-list-bad-key", A, lambda c, t: c.models.list(), AE.AuthenticationError, 401,
        {"type": "authentication_error"}, key="bad"),
    Row("ant-models-get-bad-key", A, lambda c, t: c.models.retrieve(CLAUDE), AE.AuthenticationError, 401,
        {"type": "authentication_error"}, key="bad"),
    Row("ant-models-list-x-api-key", A, lambda c, t: c.models.list(), None, 200, {}, key="x-api-key"),
    Row("ant-messages-x-api-key", A, messages(), None, 200, {}, key="x-api-key", upstream=1),
    # -- models ----------------------------------------------------------------------------------
    Row("oai-chat-model-not-allowed", O, chat(), OE.PermissionDeniedError, 403,
        {"type": "permission_error", "code": "model_not_allowed", "param": "model"}, key="mini-only"),
    Row("oai-chat-unknown-model", O, chat("no-such-model"), OE.NotFoundError, 404,
        {"type": "invalid_request_error", "code": "model_not_found", "param": "model"}),
    Row("oai-responses-unknown-model", O, responses("no-such-model"), OE.NotFoundError, 404,
        {"code": "model_not_found", "param": "model"}),
    Row("oai-embeddings-unknown-model", O, embed("no-such-model"), OE.NotFoundError, 404,
        {"code": "model_not_found", "param": "model"}),
    Row("oai-models-get-unknown", O, lambda c, t: c.models.retrieve("no-such-model"), OE.NotFoundError, 404,
        {"code": "model_not_found"}),
    Row("ant-messages-model-not-allowed", A, messages(), AE.PermissionDeniedError, 403,
        {"type": "permission_error"}, key="mini-only"),
    Row("ant-messages-unknown-model", A, messages("no-such-model"), AE.NotFoundError, 404, {"type": "not_found_error"}),
    # -- invalid bodies --------------------------------------------------------------------------
    Row("oai-chat-temperature", O, chat(temperature=5), OE.BadRequestError, 400,
        {"type": "invalid_request_error", "param": "temperature"}),
    Row("oai-chat-max-tokens-0", O, chat(max_tokens=0), OE.BadRequestError, 400, {"param": "max_tokens"}),
    Row("oai-chat-no-messages", O, lambda c, t: c.chat.completions.create(model=GPT, messages=[]),
        OE.BadRequestError, 400, {"param": "messages"}),
    Row("oai-responses-temperature", O, responses(temperature=5), OE.BadRequestError, 400, {"param": "temperature"}),
    Row("oai-embeddings-empty-input", O, embed(input=[]), OE.BadRequestError, 400, {"param": "input"}),
    Row("ant-messages-temperature", A, messages(extra_body={"temperature": 5}), AE.BadRequestError, 400,
        {"type": "invalid_request_error"}),
    Row("ant-messages-no-messages", A, lambda c, t: c.messages.create(model=CLAUDE, max_tokens=8, messages=[]),
        AE.BadRequestError, 400, {"type": "invalid_request_error"}),
    Row("ant-count-tokens-no-messages", A, lambda c, t: c.messages.count_tokens(model=CLAUDE, messages=[]),
        AE.BadRequestError, 400, {"type": "invalid_request_error"}),
    Row("oai-chat-stream-options-without-stream", O, chat(stream_options={"include_usage": True}),
        OE.BadRequestError, 400, {"type": "invalid_request_error", "param": "stream_options"}),
    Row("oai-chat-bad-response-format", O, chat(response_format={"type": "yaml"}), OE.BadRequestError, 400,
        {"type": "invalid_request_error", "param": "response_format.type"}),
    Row("oai-chat-bad-role", O, lambda c, t: c.chat.completions.create(model=GPT, messages=[{"role": "wizard",
        "content": t}]), OE.BadRequestError, 400, {"type": "invalid_request_error"}),
    Row("oai-chat-n-0", O, chat(n=0), OE.BadRequestError, 400, {"param": "n"}),
    Row("oai-responses-unknown-previous", O, responses(previous_response_id="resp_nope"), OE.NotFoundError, 404,
        {"type": "invalid_request_error", "param": "previous_response_id"}),
    Row("oai-responses-get-unknown", O, lambda c, t: c.responses.retrieve("resp_nope"), OE.NotFoundError, 404,
        {"type": "invalid_request_error"}),
    Row("oai-responses-delete-unknown", O, lambda c, t: c.responses.delete("resp_nope"), OE.NotFoundError, 404,
        {"type": "invalid_request_error"}),
    Row("oai-embeddings-bad-format", O, embed(encoding_format="hex"), OE.BadRequestError, 400,
        {"param": "encoding_format"}),
    Row("ant-messages-bad-role", A, lambda c, t: c.messages.create(model=CLAUDE, max_tokens=8,
        messages=[{"role": "wizard", "content": t}]), AE.BadRequestError, 400, {"type": "invalid_request_error"}),
    Row("ant-messages-max-tokens-0", A, messages(max_tokens=0), AE.BadRequestError, 400,
        {"type": "invalid_request_error"}),
    # -- body too large --------------------------------------------------------------------------
    Row("oai-chat-too-large", O, chat(), OE.APIStatusError, 413,
        {"type": "invalid_request_error", "code": "payload_too_large"}, text=BIG, gateway={"max_body_bytes": 4096}),
    Row("oai-responses-too-large", O, responses(), OE.APIStatusError, 413, {"code": "payload_too_large"},
        text=BIG, gateway={"max_body_bytes": 4096}),
    Row("oai-embeddings-too-large", O, embed(), OE.APIStatusError, 413, {"code": "payload_too_large"},
        text=BIG, gateway={"max_body_bytes": 4096}),
    Row("ant-messages-too-large", A, messages(), AE.ContentTooLargeError, 413, {"type": "request_too_large"},
        text=BIG, gateway={"max_body_bytes": 4096}),
    # -- the caller's limits and money -----------------------------------------------------------
    Row("oai-chat-rpm", O, chat(), OE.RateLimitError, 429, {"type": "rate_limit_error", "code": "rate_limit_exceeded"},
        key="rpm-spent", headers={"retry-after": PRESENT, "x-ratelimit-limit-requests": "1"}, sdk_retries=0),
    Row("oai-chat-tpm", O, chat(max_tokens=30), OE.RateLimitError, 429,
        {"type": "rate_limit_error", "code": "rate_limit_exceeded"}, key="tpm-spent",
        headers={"retry-after": PRESENT, "x-ratelimit-limit-tokens": "100"}, sdk_retries=0),
    Row("oai-chat-over-whole-tpm", O, chat(), OE.RateLimitError, 429,
        {"type": "rate_limit_error", "code": "rate_limit_exceeded"}, key="tpm-small",
        headers={"retry-after": None, "x-should-retry": "false", "x-ratelimit-limit-tokens": "100"}),
    Row("ant-messages-over-whole-tpm", A, messages(max_tokens=500), AE.RateLimitError, 429,
        {"type": "rate_limit_error"}, key="tpm-small", headers={"retry-after": None, "x-should-retry": "false"}),
    Row("ant-messages-rpm", A, messages(), AE.RateLimitError, 429, {"type": "rate_limit_error"},
        key="rpm-spent", headers={"retry-after": PRESENT}, sdk_retries=0),
    Row("oai-chat-no-balance", O, chat(), OE.APIStatusError, 402,
        {"type": "billing_error", "code": "insufficient_balance"}, key="broke"),
    Row("oai-responses-no-balance", O, responses(), OE.APIStatusError, 402, {"code": "insufficient_balance"},
        key="broke"),
    Row("ant-messages-no-balance", A, messages(), AE.PaymentRequiredError, 402, {"type": "billing_error"}, key="broke"),
    Row("oai-chat-spend-cap", O, chat(), OE.PermissionDeniedError, 403,
        {"type": "permission_error", "code": "spend_cap_reached"}, key="capped"),
    Row("ant-messages-spend-cap", A, messages(), AE.PermissionDeniedError, 403, {"type": "permission_error"},
        key="capped"),
    # -- upstream failures, OpenAI-compatible upstream ---------------------------------------------
    Row("oai-up-400", O, chat(), OE.BadRequestError, 400, {"type": "invalid_request_error"}, upstream=1,
        text="[[error:400]]"),
    Row("oai-up-401", O, chat(), OE.InternalServerError, 502, {"code": "upstream_auth_failed"}, upstream=1,
        text="[[error:401]]", headers=NO_RETRY),
    Row("oai-up-403", O, chat(), OE.InternalServerError, 502, {"code": "upstream_auth_failed"}, upstream=1,
        text="[[error:403]]", headers=NO_RETRY),
    Row("oai-up-402", O, chat(), OE.InternalServerError, 502, {"code": "upstream_quota_exhausted"}, upstream=1,
        text="[[error:402]]", headers=NO_RETRY),
    Row("oai-up-429-insufficient-quota", O, chat(), OE.InternalServerError, 502, {"code": "upstream_quota_exhausted"},
        upstream=1, text="[[error:429]] [[quota:1]]", headers={**NO_RETRY, "retry-after": None}),
    Row("oai-up-404", O, chat(), OE.InternalServerError, 502, {"type": "upstream_error", "code": "upstream_model_not_found"},
        upstream=1, text="[[error:404]]", headers=NO_RETRY),
    Row("oai-up-408", O, chat(), OE.InternalServerError, 504, {"type": "timeout_error", "code": "upstream_timeout"},
        sdk_attempts=3, upstream=6, text="[[error:408]]"),    # 3 + 2 + 1: the retry budget (test_retry_budget)
    Row("oai-up-413", O, chat(), OE.APIStatusError, 413, {"type": "invalid_request_error", "code": "payload_too_large"},
        upstream=1, text="[[error:413]]"),
    Row("oai-up-422", O, chat(), OE.BadRequestError, 400, {"type": "invalid_request_error"}, upstream=1,
        text="[[error:422]]"),
    Row("oai-up-429-retry-after", O, chat(), OE.RateLimitError, 429,
        {"type": "rate_limit_error", "code": "upstream_rate_limited"}, sdk_attempts=3, upstream=3,
        text="[[error:429]] [[retry_after:1]]", headers={"retry-after": "1"}, gateway={"max_retries": 0}),
    Row("oai-up-429-retry-after-long", O, chat(), OE.RateLimitError, 429, {"code": "upstream_rate_limited"},
        upstream=1, text="[[error:429]] [[retry_after:300]]", headers={"retry-after": "300"}),
    Row("oai-up-429", O, chat(), OE.RateLimitError, 429, {"code": "upstream_rate_limited"}, sdk_attempts=3,
        upstream=3, text="[[error:429]]", headers={"retry-after": None}, gateway={"max_retries": 0}),
    Row("oai-up-500", O, chat(), OE.InternalServerError, 502, {"type": "upstream_error", "code": "upstream_unavailable"},
        sdk_attempts=3, upstream=3, text="[[error:500]]", gateway={"max_retries": 0}),
    Row("oai-up-502", O, chat(), OE.InternalServerError, 502, {"code": "upstream_unavailable"},
        sdk_attempts=3, upstream=3, text="[[error:502]]", gateway={"max_retries": 0}),
    Row("oai-up-503", O, chat(), OE.InternalServerError, 503, {"code": "upstream_unavailable"},
        sdk_attempts=3, upstream=3, text="[[error:503]]", gateway={"max_retries": 0}),
    Row("oai-up-529", O, chat(), OE.InternalServerError, 503, {"code": "upstream_overloaded"},
        sdk_attempts=3, upstream=3, text="[[error:529]]", gateway={"max_retries": 0}),
    Row("oai-up-500-router-retries", O, chat(), OE.InternalServerError, 502, {"code": "upstream_unavailable"},
        sdk_attempts=3, upstream=6, text="[[error:500]]"),    # 3 + 2 + 1: the retry budget (test_retry_budget)
    Row("oai-up-timeout", O, chat(), OE.InternalServerError, 504, {"type": "timeout_error", "code": "upstream_timeout"},
        sdk_attempts=3, upstream=3, text="[[sleep:1500]]", gateway={"max_retries": 0, "first_byte_timeout_s": 0.3}),
    Row("oai-up-timeout-router-retries", O, chat(), OE.InternalServerError, 504, {"code": "upstream_timeout"},
        sdk_attempts=3, upstream=3, text="[[sleep:1500]]", gateway={"first_byte_timeout_s": 0.3}),
    Row("oai-up-refused", O, chat(), OE.InternalServerError, 502, {"code": "upstream_unavailable"},
        sdk_attempts=3, gateway={"max_retries": 0, "providers": "refused"}),
    Row("oai-auto-all-down", O, chat("auto"), OE.InternalServerError, 502, {"code": "upstream_unavailable"},
        sdk_attempts=3, gateway={"providers": "refused"}),
    Row("oai-responses-up-429", O, responses(), OE.RateLimitError, 429, {"code": "upstream_rate_limited"},
        sdk_attempts=3, upstream=3, text="[[error:429]] [[retry_after:1]]", headers={"retry-after": "1"},
        gateway={"max_retries": 0}),
    Row("oai-responses-up-500", O, responses(), OE.InternalServerError, 502, {"code": "upstream_unavailable"},
        sdk_attempts=3, upstream=3, text="[[error:500]]", gateway={"max_retries": 0}),
    Row("oai-responses-up-400", O, responses(), OE.BadRequestError, 400, {"type": "invalid_request_error"},
        upstream=1, text="[[error:400]]"),
    Row("oai-up-503-retry-after", O, chat(), OE.InternalServerError, 503, {"code": "upstream_unavailable"},
        sdk_attempts=3, upstream=3, text="[[error:503]] [[retry_after:1]]", headers={"retry-after": "1"},
        gateway={"max_retries": 0}),
    Row("oai-chat-stream-up-429", O, chat_stream, OE.RateLimitError, 429, {"code": "upstream_rate_limited"},
        sdk_attempts=3, upstream=3, text="[[error:429]] [[retry_after:1]]", headers={"retry-after": "1"},
        gateway={"max_retries": 0}),
    Row("oai-chat-stream-up-timeout", O, chat_stream, OE.InternalServerError, 504, {"code": "upstream_timeout"},
        sdk_attempts=3, upstream=3, text="[[sleep:1500]]", gateway={"max_retries": 0, "first_byte_timeout_s": 0.3}),
    Row("oai-responses-stream-up-500", O, responses_stream, OE.InternalServerError, 502,
        {"code": "upstream_unavailable"}, sdk_attempts=3, upstream=3, text="[[error:500]]",
        gateway={"max_retries": 0}),
    Row("oai-embeddings-up-429", O, embed(), OE.RateLimitError, 429, {"code": "upstream_rate_limited"},
        sdk_attempts=3, upstream=3, text="[[error:429]]", gateway={"max_retries": 0}),
    Row("oai-embeddings-up-400", O, embed(), OE.BadRequestError, 400, {"type": "invalid_request_error"},
        upstream=1, text="[[error:400]]"),
    Row("oai-embeddings-up-500", O, embed(), OE.InternalServerError, 502, {"code": "upstream_unavailable"},
        sdk_attempts=3, upstream=3, text="[[error:500]]", gateway={"max_retries": 0}),
    # -- upstream failures, Anthropic upstream on /v1/messages ---------------------------------------
    Row("ant-up-400", A, messages(), AE.BadRequestError, 400, {"type": "invalid_request_error"}, upstream=1,
        text="[[error:400]]"),
    Row("ant-up-401", A, messages(), AE.InternalServerError, 502, {"type": "api_error"}, upstream=1,
        text="[[error:401]]", headers=NO_RETRY),
    Row("ant-up-402", A, messages(), AE.InternalServerError, 502, {"type": "api_error"}, upstream=1,
        text="[[error:402]]", headers=NO_RETRY),
    Row("ant-up-credit-balance-too-low", A, messages(), AE.InternalServerError, 502, {"type": "api_error"},
        upstream=1, headers=NO_RETRY, faults=({"status": 400, "message": CREDIT_TOO_LOW},)),
    Row("ant-up-413", A, messages(), AE.ContentTooLargeError, 413, {"type": "request_too_large"}, upstream=1,
        text="[[error:413]]"),
    Row("ant-up-429", A, messages(), AE.RateLimitError, 429, {"type": "rate_limit_error"}, sdk_attempts=3, upstream=3,
        text="[[error:429]] [[retry_after:1]]", headers={"retry-after": "1"}, gateway={"max_retries": 0}),
    Row("ant-up-500", A, messages(), AE.InternalServerError, 502, {"type": "api_error"}, sdk_attempts=3, upstream=3,
        text="[[error:500]]", gateway={"max_retries": 0}),
    Row("ant-up-529", A, messages(), AE.OverloadedError, 529, {"type": "overloaded_error"}, sdk_attempts=3,
        upstream=3, text="[[error:529]]", gateway={"max_retries": 0}),
    Row("ant-stream-up-529", A, ant_stream(), AE.OverloadedError, 529, {"type": "overloaded_error"},
        sdk_attempts=3, upstream=3, text="[[error:529]]", gateway={"max_retries": 0}),
    Row("ant-over-oai-up-429", A, messages(GPT), AE.RateLimitError, 429, {"type": "rate_limit_error"},
        sdk_attempts=3, upstream=3, text="[[error:429]] [[retry_after:1]]", headers={"retry-after": "1"},
        gateway={"max_retries": 0}),
    Row("ant-over-oai-up-400", A, messages(GPT), AE.BadRequestError, 400, {"type": "invalid_request_error"},
        upstream=1, text="[[error:400]]"),
    Row("ant-up-timeout", A, messages(), AE.GatewayTimeoutError, 504, {"type": "timeout_error"}, sdk_attempts=3,
        upstream=3, text="[[sleep:1500]]", gateway={"max_retries": 0, "first_byte_timeout_s": 0.3}),
    Row("ant-all-down", A, messages(), AE.InternalServerError, 502, {"type": "api_error"}, sdk_attempts=3,
        gateway={"max_retries": 0, "providers": "refused"}),
    # -- a stream that fails after content went out (a 200 was sent: no status, no retry) -----------
    Row("oai-chat-stream-error", O, chat_stream, OE.APIError, None, {"type": "upstream_error"}, upstream=1,
        text="Tell me a story [[stream_error:2]]"),
    Row("ant-over-oai-stream-error", A, ant_stream(GPT), AE.APIStatusError, None, {"type": "api_error"},
        upstream=1, text="Tell me a story [[stream_error:2]]"),
    Row("oai-chat-stream-cut", O, chat_stream, OE.APIError, None, {"type": "upstream_error"}, upstream=1,
        text="Tell me a story [[cut:3]]"),
    Row("oai-responses-stream-error", O, responses_stream, None, 200, {}, upstream=1,
        text="Tell me a story [[stream_error:2]]", check=response_failed),
    Row("ant-messages-stream-error", A, messages_stream, AE.APIStatusError, None, {"type": "overloaded_error"},
        upstream=1, text="Tell me a story [[stream_error:2]]"),
]


# -- the harness --------------------------------------------------------------------------------

def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"       # account names are unique


def make_key(gw, kind: str) -> str:
    """The caller's key (make_client sends a "x-api-key" one in that header, as Claude Code may)."""
    if kind == "missing":
        return ""
    if kind == "bad":
        return "sk-ro-this-key-does-not-exist-0000000000"
    if kind == "broke":
        return gw.new_key(balance_micros=0)[0]
    if kind == "mini-only":
        return gw.new_key(allowed_models=["gpt-4o-mini"])[0]
    if kind == "expired":
        acc = gw.admin("POST", "/admin/accounts", {"name": _unique("t"), "balance_micros": 10_000_000})["data"]
        return gw.admin("POST", "/admin/keys", {"account_id": acc["id"], "expires_at": time.time() - 1})["data"]["key"]
    if kind == "revoked":
        acc = gw.admin("POST", "/admin/accounts", {"name": _unique("t"), "balance_micros": 10_000_000})["data"]
        rec = gw.admin("POST", "/admin/keys", {"account_id": acc["id"]})["data"]
        gw.admin("POST", f"/admin/keys/{rec['id']}/revoke", {})
        return rec["key"]
    if kind == "capped":        # a cap below any request's worst case
        return gw.new_key(spend_cap_micros=1)[0]
    if kind == "tpm-small":      # less than any request without a small max_tokens may use
        return gw.new_key(tpm=100)[0]
    if kind in ("rpm-spent", "tpm-spent"):
        secret = gw.new_key(**({"rpm": 1} if kind == "rpm-spent" else {"tpm": 100}))[0]
        c = openai.OpenAI(base_url=gw.base_url, api_key=secret, max_retries=0)
        c.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "hi"}], max_tokens=80)
        c.close()
        return secret
    return gw.new_key()[0]


def make_gateway(gateway, fakes, opts: dict):
    opts = dict(opts)
    providers = {"openai": (fakes["openai"].url + "/v1", OAI_KEY), "anthropic": (fakes["anthropic"].url, ANT_KEY)}
    if opts.pop("providers", None) == "refused":
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        providers = {"openai": (dead + "/v1", OAI_KEY), "anthropic": (dead, ANT_KEY)}
    return gateway(providers=providers, **opts)


def make_client(row: Row, gw, secret: str, wire):
    if row.sdk == "openai":
        return openai.OpenAI(base_url=gw.base_url, api_key=secret or "unused", max_retries=row.sdk_retries,
                             http_client=wire.client(),
                             default_headers={"Authorization": ""} if not secret else None)
    if row.key == "x-api-key":
        return anthropic.Anthropic(base_url=gw.url, api_key=None, max_retries=row.sdk_retries,
                                   http_client=wire.client(), default_headers={"x-api-key": secret})
    return anthropic.Anthropic(base_url=gw.url, api_key=secret, max_retries=row.sdk_retries,
                               http_client=wire.client())


def error_fields(row: Row, exc) -> dict:
    body = exc.body
    if row.sdk == "anthropic":       # the SDK keeps the whole body: {"type": "error", "error": {...}}
        assert isinstance(body, dict) and body.get("type") == "error", body
        return body["error"]
    return body                       # openai: the SDK keeps body["error"]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_failure_as_the_sdk_sees_it(row: Row, gateway, fakes, wire):
    gw = make_gateway(gateway, fakes, row.gateway)
    secret = make_key(gw, row.key)
    client = make_client(row, gw, secret, wire)
    fakes["openai"].app["fake"].requests.clear()
    fakes["anthropic"].requests.clear()
    fakes["anthropic"].fake.faults[:] = list(row.faults)
    sent_before = len(wire.responses)
    try:
        if row.exc is None:
            out = row.call(client, row.text)
            assert wire.responses[-1].status == row.status
            assert upstream_requests(fakes) == row.upstream
            if row.check is not None:
                row.check(out)
            return
        with pytest.raises(row.exc) as info:
            row.call(client, row.text)
    finally:
        client.close()
    exc = info.value
    time.sleep(0.05)      # a request the gateway abandoned may still be on its way to the upstream
    assert (len(wire.responses) - sent_before, upstream_requests(fakes)) == (row.sdk_attempts, row.upstream)
    # a streaming call's failed attempts that the SDK retried were closed unread: nothing to check in them
    mine = wire.responses[sent_before:]
    wire.responses[sent_before:] = [r for r in mine[:-1] if r.body or r.status < 400] + mine[-1:]
    if row.status is None:    # raised mid-stream: the 200 stands
        assert not isinstance(exc, (openai.APIStatusError,)) or row.sdk == "anthropic"
        assert wire.responses[-1].status == 200
    else:
        assert isinstance(exc, (openai.APIStatusError, anthropic.APIStatusError))
        assert exc.status_code == row.status
        headers = exc.response.headers
        assert headers.get("x-request-id")
        if row.sdk == "anthropic":
            assert headers.get("request-id") and exc.request_id == headers["request-id"]
            assert exc.body["request_id"] == headers["request-id"]
        for name, want in {**({"x-should-retry": None} if row.sdk_attempts > 1 else {}), **row.headers}.items():
            if want is PRESENT:
                assert headers.get(name), f"{name} missing"
            else:
                assert headers.get(name) == want, f"{name}: {headers.get(name)!r} != {want!r}"
    fields = error_fields(row, exc)
    assert isinstance(fields, dict), fields
    assert {k: fields.get(k) for k in row.error} == row.error
    assert fields.get("message")

"""Every validation rule of the seed (and the type checks around it), as the OpenAI SDK sees them:
a 400 `BadRequestError` whose `param` names the field, in an OpenAI `ErrorResponse`, before anything
reaches the upstream. Plus malformed JSON, wrong content type, oversized bodies (413) and unknown
models (404), the first ones over raw HTTP."""
from __future__ import annotations

import gzip
import json

import httpx2
import openai
import pytest
from openai import OpenAI

from openai_schema import validate_error
from routerone.testing.harness import Gateway

HI = [{"role": "user", "content": "hi"}]
OMIT = object()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, fake_upstream):
    """One gateway for the module (rejected requests change nothing); each test still gets its own
    funded key and account from `funded_key`."""
    db = tmp_path_factory.mktemp("validation") / "gateway.sqlite"
    with Gateway.for_upstreams(str(db), {"openai": (fake_upstream.base_url, fake_upstream.api_key)}) as gateway:
        yield gateway


def bad_request(client: OpenAI, body: dict) -> openai.BadRequestError:
    """POST the body as given (the SDK's typed `create` would refuse some of these shapes)."""
    with pytest.raises(openai.BadRequestError) as exc:
        client.post("/chat/completions", body=body, cast_to=object)
    return exc.value


def assert_invalid(exc: openai.APIStatusError, param: str | None, code: str = "invalid_value") -> None:
    body = exc.response.json()
    validate_error(body)
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == param
    assert body["error"]["code"] == code
    assert exc.body == body["error"]
    assert body["error"]["message"]


# (field overrides on a valid body, expected param); OMIT deletes the field
SEED_RULES = {
    # model required
    "model missing": ({"model": OMIT}, "model"),
    "model empty": ({"model": ""}, "model"),
    "model null": ({"model": None}, "model"),
    "model not a string": ({"model": 123}, "model"),
    # messages >= 1 and each valid
    "messages missing": ({"messages": OMIT}, "messages"),
    "messages null": ({"messages": None}, "messages"),
    "messages empty": ({"messages": []}, "messages"),
    "messages not an array": ({"messages": "hi"}, "messages"),
    "message not an object": ({"messages": ["hi"]}, "messages[0]"),
    "message without role": ({"messages": [{"content": "hi"}]}, "messages[0].role"),
    "message with unknown role": ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    "user message without content": ({"messages": [{"role": "user"}]}, "messages[0].content"),
    "content of wrong type": ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
    "content empty array": ({"messages": [{"role": "user", "content": []}]}, "messages[0].content"),
    "content part of unknown type": ({"messages": [{"role": "user", "content": [{"type": "video"}]}]},
                                     "messages[0].content[0].type"),
    "text part without text": ({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
                               "messages[0].content[0].text"),
    "image part without url": ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
                               "messages[0].content[0].image_url.url"),
    "system message with an image": ({"messages": [{"role": "system", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}, *HI]}, "messages[0].content[0]"),
    "second message invalid": ({"messages": [*HI, {"role": "assistant"}]}, "messages[1].content"),
    "tool message without tool_call_id": ({"messages": [*HI, {"role": "tool", "content": "42"}]},
                                          "messages[1].tool_call_id"),
    "assistant tool call without id": ({"messages": [*HI, {"role": "assistant", "content": None,
                                                           "tool_calls": [{"type": "function"}]}]},
                                       "messages[1].tool_calls[0]"),
    "assistant tool call without arguments": ({"messages": [*HI, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f"}}]}]}, "messages[1].tool_calls[0].function"),
    "message name not a string": ({"messages": [{"role": "user", "content": "hi", "name": 5}]}, "messages[0].name"),
    # temperature 0..2
    "temperature below 0": ({"temperature": -0.1}, "temperature"),
    "temperature above 2": ({"temperature": 2.01}, "temperature"),
    "temperature a string": ({"temperature": "0.5"}, "temperature"),
    "temperature a boolean": ({"temperature": True}, "temperature"),
    # top_p 0..1
    "top_p below 0": ({"top_p": -0.01}, "top_p"),
    "top_p above 1": ({"top_p": 1.0001}, "top_p"),
    "top_p a string": ({"top_p": "1"}, "top_p"),
    # max_tokens >= 1
    "max_tokens 0": ({"max_tokens": 0}, "max_tokens"),
    "max_tokens negative": ({"max_tokens": -5}, "max_tokens"),
    "max_tokens fractional": ({"max_tokens": 2.5}, "max_tokens"),
    "max_tokens a string": ({"max_tokens": "100"}, "max_tokens"),
    # stream_options only with stream: true
    "stream_options without stream": ({"stream_options": {"include_usage": True}}, "stream_options"),
    "stream_options with stream false": ({"stream": False, "stream_options": {"include_usage": True}}, "stream_options"),
    "stream_options not an object": ({"stream": True, "stream_options": "yes"}, "stream_options"),
    "include_usage not a boolean": ({"stream": True, "stream_options": {"include_usage": "yes"}},
                                    "stream_options.include_usage"),
}

WRONG_TYPES = {
    "stream a string": ({"stream": "true"}, "stream"),
    "n zero": ({"n": 0}, "n"),
    "n a string": ({"n": "2"}, "n"),
    "stop a number": ({"stop": 7}, "stop"),
    "stop with numbers": ({"stop": [1, 2]}, "stop"),
    "stop with five strings": ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    "tools an object": ({"tools": {}}, "tools"),
    "tool without a name": ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
    "tool of unknown type": ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
    "tool_choice a number": ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": 5},
                             "tool_choice"),
    "logprobs a string": ({"logprobs": "yes"}, "logprobs"),
    "top_logprobs 21": ({"top_logprobs": 21}, "top_logprobs"),
    "metadata an array": ({"metadata": []}, "metadata"),
    "logit_bias an array": ({"logit_bias": []}, "logit_bias"),
    "response_format of unknown type": ({"response_format": {"type": "xml"}}, "response_format.type"),
    "frequency_penalty above 2": ({"frequency_penalty": 3}, "frequency_penalty"),
    "presence_penalty below -2": ({"presence_penalty": -2.5}, "presence_penalty"),
    "max_completion_tokens 0": ({"max_completion_tokens": 0}, "max_completion_tokens"),
    "seed a string": ({"seed": "x"}, "seed"),
    "user a number": ({"user": 5}, "user"),
    "parallel_tool_calls a string": ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
    "reasoning_effort a number": ({"reasoning_effort": 1}, "reasoning_effort"),
}


def body_with(overrides: dict) -> dict:
    body = {"model": "gpt-4o", "messages": HI}
    for k, v in overrides.items():
        if v is OMIT:
            body.pop(k)
        else:
            body[k] = v
    return body


@pytest.mark.parametrize("overrides, param", list(SEED_RULES.values()), ids=list(SEED_RULES))
def test_seed_rule_rejected_with_param(openai_client: OpenAI, fake_requests, overrides, param):
    assert_invalid(bad_request(openai_client, body_with(overrides)), param)
    assert fake_requests == []


@pytest.mark.parametrize("overrides, param", list(WRONG_TYPES.values()), ids=list(WRONG_TYPES))
def test_wrong_type_rejected_with_param(openai_client: OpenAI, fake_requests, overrides, param):
    assert_invalid(bad_request(openai_client, body_with(overrides)), param)
    assert fake_requests == []


def test_typed_create_raises_bad_request_with_param(openai_client: OpenAI):
    """The same through the SDK's ordinary `create` call."""
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.chat.completions.create(model="gpt-4o", messages=HI, temperature=2.5)
    assert exc.value.status_code == 400
    assert exc.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.chat.completions.create(model="gpt-4o", messages=HI, stream_options={"include_usage": True})
    assert exc.value.body["param"] == "stream_options"


async def test_async_create_raises_bad_request_with_param(async_openai_client):
    with pytest.raises(openai.BadRequestError) as exc:
        await async_openai_client.chat.completions.create(model="gpt-4o", messages=[], max_tokens=5)
    assert exc.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as exc:
        await async_openai_client.chat.completions.create(model="gpt-4o", messages=HI, top_p=1.5, stream=True)
    assert exc.value.body["param"] == "top_p"


BOUNDARIES = {
    "temperature 0": {"temperature": 0}, "temperature 2": {"temperature": 2},
    "top_p 0": {"top_p": 0}, "top_p 1": {"top_p": 1}, "max_tokens 1": {"max_tokens": 1},
    "stream_options with stream": {"stream": True, "stream_options": {"include_usage": True}},
    "nulls are absent": {"temperature": None, "top_p": None, "max_tokens": None, "stream_options": None},
}


@pytest.mark.parametrize("fields", list(BOUNDARIES.values()), ids=list(BOUNDARIES))
def test_boundary_values_are_accepted(openai_client: OpenAI, fields):
    result = openai_client.chat.completions.create(model="gpt-4o", messages=HI, **fields)
    if fields.get("stream"):
        assert list(result)[-1].usage is not None
    else:
        assert result.choices[0].message.content


# -- raw HTTP: bodies the SDK would never send ---------------------------------------------------

@pytest.fixture
def http(openai_wire):
    with httpx2.Client(transport=openai_wire.transport(), timeout=30) as client:
        yield client


def post_raw(http, gw, key: str, content: bytes, content_type: str | None = "application/json", **headers):
    h = {"Authorization": f"Bearer {key}", **headers}
    if content_type is not None:
        h["Content-Type"] = content_type
    return http.post(gw.base_url + "/chat/completions", content=content, headers=h)


@pytest.mark.parametrize("content", [b'{"model": "gpt-4o", "messages": [', b"not json at all", b"",
                                     b'{"model": "gpt-4o",}'], ids=["truncated", "text", "empty", "trailing-comma"])
def test_malformed_json_is_a_400(http, gw, funded_key, fake_requests, content):
    resp = post_raw(http, gw, funded_key[0], content, **{"x-request-id": "bad-json-1"})
    assert resp.status_code == 400
    body = resp.json()
    validate_error(body)
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "invalid_json"
    assert body["error"]["param"] is None
    assert resp.headers["x-request-id"] == "bad-json-1"
    assert fake_requests == []


_DEEP = b"[" * 300 + b"]" * 300       # orjson reads 1024 levels but writes only 255: Router One could not send it on
_DEEP_SCHEMA = b'{"type": "object", "properties": {"a": ' * 150 + b"{}" + b"}}" * 150


@pytest.mark.parametrize("path, content", [
    ("/chat/completions", b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "metadata": {"a": %s}}' % _DEEP),
    ("/chat/completions", b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": '
                          b'"function", "function": {"name": "f", "parameters": %s}}]}' % _DEEP_SCHEMA),
    ("/responses", b'{"model": "gpt-4o", "input": "hi", "metadata": {"a": %s}}' % _DEEP),
    ("/messages/count_tokens", b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": '
                               b'"f", "input_schema": %s}]}' % _DEEP_SCHEMA),
], ids=["chat-metadata", "chat-tool-schema", "responses", "count-tokens"])
def test_json_nested_too_deep_to_send_on_is_a_400(http, gw, funded_key, fake_requests, path, content):
    """Nested 300 levels deep, a body parsed (orjson reads 1024 levels) but could not be written
    again for the upstream (255): a 500 with a traceback (its hold released). Now a 400 before any hold."""
    with httpx2.Client(timeout=30) as plain:       # /messages errors are Anthropic's shape, not OpenAI's
        client = http if not path.startswith("/messages") else plain
        resp = client.post(gw.base_url + path, content=content,
                           headers={"Authorization": f"Bearer {funded_key[0]}", "Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text[:300]
    assert "json_too_deep" in resp.text
    assert fake_requests == []


@pytest.mark.parametrize("content", [b"[1, 2]", b'"hello"', b"null", b"42"])
def test_json_that_is_not_an_object_is_a_400(http, gw, funded_key, content):
    resp = post_raw(http, gw, funded_key[0], content)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] is None
    assert resp.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None], ids=["text", "form", "multipart", "none"])
def test_wrong_content_type_is_a_400(http, gw, funded_key, fake_requests, content_type):
    resp = post_raw(http, gw, funded_key[0], json.dumps({"model": "gpt-4o", "messages": HI}).encode(), content_type)
    assert resp.status_code == 400
    body = resp.json()
    validate_error(body)
    assert body["error"]["code"] == "invalid_content_type"
    assert body["error"]["type"] == "invalid_request_error"
    assert fake_requests == []


@pytest.mark.parametrize("path", ["/chat/completions", "/embeddings", "/responses", "/messages"])
def test_a_body_that_does_not_match_its_content_encoding_is_a_400(gw, funded_key, fake_requests, path):
    """`Content-Encoding: gzip` on a body that is not gzip was a 500 (aiohttp's RequestPayloadError)."""
    http = httpx2.Client(timeout=30)     # not the OpenAI wire recorder: /messages answers in Anthropic's shape
    body = json.dumps({"model": "gpt-4o", "messages": HI, "input": "hi", "max_tokens": 5}).encode()
    resp = http.post(gw.base_url + path, content=body,
                     headers={"Authorization": f"Bearer {funded_key[0]}", "Content-Type": "application/json",
                              "Content-Encoding": "gzip"})
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error" and "could not be read" in err["message"]
    if path != "/messages":                  # Anthropic's error shape has no code
        validate_error(resp.json())
        assert err["code"] == "invalid_body"
    admin = http.post(gw.url + "/admin/accounts", content=b'{"name": "x"}',
                      headers={"Authorization": f"Bearer {gw.settings.admin_key}", "Content-Type": "application/json",
                               "Content-Encoding": "gzip"})
    assert admin.status_code == 400 and admin.json()["error"]["code"] == "invalid_body"
    assert fake_requests == []
    # a body that is gzip is read as such
    ok = http.post(gw.base_url + "/chat/completions", content=gzip.compress(body),
                   headers={"Authorization": f"Bearer {funded_key[0]}", "Content-Type": "application/json",
                            "Content-Encoding": "gzip"})
    assert ok.status_code == 200
    http.close()


def test_json_content_type_with_charset_is_accepted(http, gw, funded_key):
    resp = post_raw(http, gw, funded_key[0], json.dumps({"model": "gpt-4o", "messages": HI}).encode(),
                    "application/json; charset=utf-8")
    assert resp.status_code == 200


# -- size limit ------------------------------------------------------------------------------------

LIMIT = 4096


@pytest.fixture
def small_gw(gateway):
    return gateway(max_body_bytes=LIMIT)


TOO_LARGE_BUG = ("BUG: an over-limit body answers 500, not 413: routes.py read_json_body (and app.py json_errors) "
                 "format `exc.max_size`, which aiohttp's HTTPRequestEntityTooLarge does not have (AttributeError)")


def test_oversized_body_is_a_413(small_gw, make_openai_client, fake_requests):
    client = make_openai_client(small_gw)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x" * (3 * LIMIT)}])
    assert exc.value.status_code == 413
    body = exc.value.response.json()
    validate_error(body)
    assert body["error"]["code"] == "payload_too_large"
    assert body["error"]["type"] == "invalid_request_error"
    assert str(LIMIT) in body["error"]["message"]
    assert fake_requests == []


def test_oversized_raw_body_is_a_413(http, small_gw):
    key, _ = small_gw.new_key()
    resp = post_raw(http, small_gw, key, b'{"model": "gpt-4o", "messages": [], "pad": "' + b"y" * (2 * LIMIT) + b'"}')
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"


def test_a_body_just_under_the_limit_is_served(small_gw, make_openai_client):
    client = make_openai_client(small_gw)
    ok = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x" * (LIMIT - 200)}])
    assert ok.choices[0].message.content


# -- unknown models --------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["gpt-9-ultra", "nope/gpt-4o", "claude-sonnet-4-20250514"],
                         ids=["unknown", "unknown-provider-prefix", "provider-not-configured"])
def test_unknown_model_is_a_404(openai_client: OpenAI, fake_requests, model):
    with pytest.raises(openai.NotFoundError) as exc:
        openai_client.chat.completions.create(model=model, messages=HI)
    body = exc.value.response.json()
    validate_error(body)
    assert exc.value.status_code == 404
    assert body["error"] == {**body["error"], "type": "invalid_request_error", "code": "model_not_found", "param": "model"}
    assert model in body["error"]["message"]
    assert fake_requests == []


async def test_unknown_model_is_a_404_async(async_openai_client):
    with pytest.raises(openai.NotFoundError) as exc:
        await async_openai_client.chat.completions.create(model="gpt-9-ultra", messages=HI, stream=True)
    assert exc.value.body["code"] == "model_not_found"
    assert exc.value.body["param"] == "model"


def test_rejected_requests_cost_nothing(gw, funded_key, openai_client: OpenAI):
    bad_request(openai_client, body_with({"temperature": 9}))
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="gpt-9-ultra", messages=HI)
    acc = gw.account(funded_key[1])
    assert (acc["balance_micros"], acc["reserved_micros"]) == (10_000_000, 0)


def test_max_tokens_above_the_models_limit_names_max_tokens(openai_client: OpenAI, fake_requests):
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=1_000_000)
    assert fake_requests == []
    assert exc.value.body["param"] == "max_tokens"


@pytest.mark.parametrize("path, body", [
    ("/chat/completions", {"model": "auto", "messages": HI}),
    ("/responses", {"model": "auto", "input": "hi"}),
    ("/messages", {"model": "auto", "messages": HI, "max_tokens": 5}),
], ids=["chat", "responses", "messages"])
def test_a_strategy_header_that_is_not_utf8_is_a_400(gw, funded_key, fake_requests, path, body):
    """`x-routerone-strategy: \\xff` (aiohttp reads header bytes with surrogateescape) was a 500: the
    400 naming the unknown strategy could not be serialised (orjson refuses lone surrogates)."""
    with httpx2.Client(timeout=30) as http:
        resp = http.post(gw.base_url + path, content=json.dumps(body).encode(),
                         headers={"Authorization": f"Bearer {funded_key[0]}", "Content-Type": "application/json",
                                  "x-routerone-strategy": b"cost\xff"})
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error" and "Unknown routing strategy" in err["message"]
    assert "cost\\udcff" in err["message"]
    assert fake_requests == []

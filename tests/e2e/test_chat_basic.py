"""Plain (non-streamed) chat completions through the official OpenAI SDK, sync and async, over real
sockets: the body is OpenAI's, the model named is the one that answered, the request reaches the
upstream unchanged, and the money adds up (usage.cost == x-routerone-cost == the ledger charge)."""
from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest
from openai import OpenAI

from openai_schema import validate_completion, validate_openai

OPENAI_MODELS = {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"}
GPT_4O_MICROS_PER_MTOK = (2_500_000, 10_000_000)     # input, output (models.toml)
HELLO = [{"role": "user", "content": "Say hello"}]


def charges(gw, account_id: int) -> list[dict]:
    return [e for e in gw.admin("GET", f"/admin/accounts/{account_id}/ledger")["data"] if e["kind"] == "charge"]


def expected_micros(usage: dict, per_mtok: tuple[int, int] = GPT_4O_MICROS_PER_MTOK) -> int:
    total = usage["prompt_tokens"] * per_mtok[0] + usage["completion_tokens"] * per_mtok[1]
    return -(-total // 1_000_000)   # rounded up once to a whole micro-dollar


def test_plain_completion_sync(openai_client: OpenAI, fake_requests):
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    body = json.loads(raw.http_response.text)
    validate_completion(body)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello! This is a reply from the fake upstream. Ask"
    assert choice.finish_reason == "stop"
    assert completion.usage.completion_tokens == 12
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 12
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.headers["x-routerone-model"] == "gpt-4o"
    assert raw.headers["x-routerone-provider"] == "openai"
    assert len(fake_requests) == 1 and fake_requests[0]["messages"] == HELLO


async def test_plain_completion_async(async_openai_client, fake_requests):
    raw = await async_openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=7)
    validate_completion(json.loads(raw.http_response.text))
    completion = raw.parse()
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 7
    assert fake_requests[-1]["max_tokens"] == 7


def test_cost_header_usage_cost_and_ledger_agree(gw, funded_key, openai_client: OpenAI):
    secret, account_id = funded_key
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO, max_tokens=40)
    usage = json.loads(raw.http_response.text)["usage"]
    micros = expected_micros(usage)
    assert micros > 0
    assert usage["cost"] == micros / 1_000_000
    assert Decimal(raw.headers["x-routerone-cost"]) * 1_000_000 == micros
    [charge] = charges(gw, account_id)
    assert charge["amount_micros"] == -micros
    assert charge["request_id"] == raw.headers["x-routerone-request-id"] == raw.headers["x-request-id"]
    acc = gw.account(account_id)
    assert acc["balance_micros"] == 10_000_000 - micros
    assert acc["reserved_micros"] == 0


def test_x_request_id_is_echoed_and_names_the_charge(gw, funded_key, openai_client: OpenAI):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, extra_headers={"x-request-id": "trace-abc-123"})
    assert raw.headers["x-request-id"] == "trace-abc-123"
    # the ledger is keyed by Router One's own unique id (a client's id may repeat), sent alongside
    assert [c["request_id"] for c in charges(gw, funded_key[1])] == [raw.headers["x-routerone-request-id"]]


def test_a_request_id_is_minted_when_the_client_sends_none(openai_client: OpenAI):
    first = openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    second = openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    assert first.headers["x-request-id"].startswith("req_")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_an_unusable_x_request_id_is_replaced(openai_client: OpenAI):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, extra_headers={"x-request-id": "x" * 200})
    assert raw.headers["x-request-id"].startswith("req_")


def test_a_reused_x_request_id_is_still_served_and_charged(gw, funded_key, openai_client: OpenAI):
    for _ in range(2):
        raw = openai_client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=HELLO, extra_headers={"x-request-id": "client-retry-1"})
        assert raw.headers["x-request-id"] == "client-retry-1"
    assert len(charges(gw, funded_key[1])) == 2


def test_auto_names_the_model_that_answered(openai_client: OpenAI, fake_requests):
    raw = openai_client.chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    completion = raw.parse()
    assert completion.model in OPENAI_MODELS
    assert completion.model == raw.headers["x-routerone-model"] == fake_requests[-1]["model"]


def test_provider_prefixed_model_names_the_plain_model(openai_client: OpenAI, fake_requests):
    completion = openai_client.chat.completions.create(model="openai/gpt-4.1-mini", messages=HELLO)
    assert completion.model == "gpt-4.1-mini" == fake_requests[-1]["model"]


def test_unknown_extra_fields_are_passed_through(openai_client: OpenAI, fake_requests):
    extra = {"top_k": 40, "repetition_penalty": 1.1, "vendor_thing": {"nested": [1, "two", None]}}
    openai_client.chat.completions.create(model="gpt-4o", messages=HELLO, extra_body=extra)
    sent = fake_requests[-1]
    for k, v in extra.items():
        assert sent[k] == v


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}

ALL_OPENAI_FIELDS = dict(
    tools=[WEATHER_TOOL], tool_choice="auto", parallel_tool_calls=False,
    response_format={"type": "json_schema", "json_schema": {
        "name": "answer", "strict": True,
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
                   "additionalProperties": False}}},
    n=1, stop=["\n\n", "END"], seed=42, logprobs=True, top_logprobs=3, logit_bias={"50256": -100},
    frequency_penalty=0.5, presence_penalty=-0.25, max_completion_tokens=9, user="user-1234",
    metadata={"team": "search", "run": "7"}, reasoning_effort="low", temperature=0.3, top_p=0.9,
)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_all_openai_request_fields_arrive_upstream_unchanged(openai_client: OpenAI, fake_requests, stream):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}], "name": "ann"}]
    result = openai_client.chat.completions.create(model="gpt-4o", messages=messages, stream=stream,
                                                   **ALL_OPENAI_FIELDS)
    if stream:
        list(result)
    sent = fake_requests[-1]
    assert sent["messages"] == messages
    assert sent["model"] == "gpt-4o"
    for k, v in ALL_OPENAI_FIELDS.items():
        assert k in sent and sent[k] == v, k
    assert bool(sent.get("stream")) is stream


def test_fake_upstream_speaks_valid_openai(fake_upstream, make_openai_client):
    """The fake the suite trusts is itself checked: every body it sends validates (the recording
    client checks them at teardown), including its error bodies and model list."""
    client = make_openai_client(fake_upstream.base_url, fake_upstream.api_key)
    validate_completion(json.loads(client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO).http_response.text))
    client.chat.completions.create(model="gpt-4o", messages=HELLO, tools=[WEATHER_TOOL])
    list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "[[tools:2]]"}],
                                        tools=[WEATHER_TOOL], stream=True, stream_options={"include_usage": True}))
    list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True,
                                        stream_options={"include_usage": True}))
    client.models.list()
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "[[error:429]]"}])
    validate_openai(exc.value.response.json(), "ErrorResponse")
    with pytest.raises(openai.APIError):      # its mid-stream error event is an ErrorResponse too
        list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "[[stream_error:2]]"}],
                                            stream=True))


def test_usage_beyond_the_reservation_is_charged_up_to_the_hold_and_counted(gw, funded_key, openai_client: OpenAI):
    """An upstream that reports more usage than the worst case reserved: the charge stops at the
    hold (the balance is never taken past what was reserved), and the gap is logged and exported
    as routerone_billing_uncharged_micros, not lost silently."""
    import urllib.request
    secret, account_id = funded_key

    def uncharged_micros() -> float:
        req = urllib.request.Request(gw.url + "/metrics", headers={"Authorization": f"Bearer {gw.settings.admin_key}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        [line] = [ln for ln in text.splitlines() if ln.startswith("routerone_billing_uncharged_micros ")]
        return float(line.split()[1])

    before = uncharged_micros()
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Say hello [[overcount:1000]]"}], max_tokens=5)
    usage = json.loads(raw.http_response.text)["usage"]
    assert usage["completion_tokens"] == 1005
    reported_micros = expected_micros(usage)
    sent_micros = expected_micros({"prompt_tokens": usage["prompt_tokens"], "completion_tokens": 5})
    [charge] = charges(gw, account_id)      # the hold: prompt upper bound + max_tokens
    assert sent_micros <= -charge["amount_micros"] == round(usage["cost"] * 1_000_000) < reported_micros
    assert gw.account(account_id)["balance_micros"] == 10_000_000 + charge["amount_micros"]
    assert uncharged_micros() - before == reported_micros + charge["amount_micros"]

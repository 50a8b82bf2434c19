"""OpenAI request -> Anthropic Messages request, one fixture per behaviour (no server).

Each `fixtures/anthropic/<behaviour>.json` of kind `request` holds the OpenAI body a client sends and
the exact Messages body the adapter must build; kind `request_error` holds bodies that must be
refused with a 400 naming the field.
"""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from anthropic_schema import validate_anthropic
from openai_schema import chat_request_fields
from routerone.errors import InvalidRequest
from routerone.providers.adapters import adapter_for
from routerone.providers.anthropic import AnthropicAdapter
from routerone.providers.anthropic_request import (ANTHROPIC_PASSTHROUGH, DROPPED_PARAMS, MAPPED_PARAMS,
                                                   NEUTRAL_VALUES)
from routerone.providers.base import Deployment, Vendor
from routerone.wire.chat import parse_chat_request

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
VENDOR = Vendor(name="anthropic", protocol="anthropic", base_url="https://api.anthropic.com",
                auth="x-api-key", api_key="sk-ant-test")
DEP = Deployment(model="claude-sonnet-4", vendor=VENDOR, upstream_model="claude-sonnet-4-20250514")


def _fixtures(kind: str) -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.json") if json.loads(p.read_text()).get("kind") == kind)


def _load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _build(openai_body: dict, *, stream: bool = False, adapter: AnthropicAdapter | None = None):
    req = parse_chat_request(orjson.dumps(openai_body))
    return (adapter or AnthropicAdapter()).build_request(req, DEP, stream=stream)


@pytest.mark.parametrize("name", _fixtures("request"))
def test_request_fixture(name: str) -> None:
    fx = _load(name)
    built = _build(fx["openai"], stream=fx["stream"])
    body = orjson.loads(built.body)
    assert body == fx["anthropic"], fx["doc"]
    validate_anthropic(body, "CreateMessageParams")


_ERROR_CASES = [(name, c) for name in _fixtures("request_error") for c in _load(name)["cases"]]


@pytest.mark.parametrize("name,case", _ERROR_CASES, ids=[f"{n}:{c['name']}" for n, c in _ERROR_CASES])
def test_rejected_request_fixture(name: str, case: dict) -> None:
    with pytest.raises(InvalidRequest) as info:
        _build(case["openai"])
    err = info.value
    assert (err.status, err.param, err.code) == (400, case["param"], case["code"]), err.message
    assert err.to_dict()["error"]["type"] == "invalid_request_error"
    assert case["param"].split("[")[0].split(".")[0] in err.message


def test_url_and_headers() -> None:
    built = _build(_load("stop_string")["openai"])
    assert built.url == "https://api.anthropic.com/v1/messages"
    assert built.headers["x-api-key"] == "sk-ant-test"
    assert built.headers["anthropic-version"] == "2023-06-01"
    assert built.headers["Content-Type"] == "application/json"
    assert "Authorization" not in built.headers


def test_base_url_with_v1_suffix_is_not_doubled() -> None:
    vendor = Vendor(name="proxy", protocol="anthropic", base_url="http://127.0.0.1:9/v1/", auth="bearer", api_key="k")
    req = parse_chat_request(orjson.dumps(_load("stop_string")["openai"]))
    built = AnthropicAdapter().build_request(req, Deployment("m", vendor, "claude-x"), stream=False)
    assert built.url == "http://127.0.0.1:9/v1/messages"
    assert built.headers["Authorization"] == "Bearer k"


def test_default_max_tokens_is_configurable_and_service_can_preset_it() -> None:
    body = _load("max_tokens_default")["openai"]
    assert orjson.loads(_build(body, adapter=AnthropicAdapter(default_max_tokens=1024)).body)["max_tokens"] == 1024
    req = parse_chat_request(orjson.dumps(body))
    req.max_tokens = 8192    # what the chat service does with the catalog's default_max_tokens
    assert orjson.loads(AnthropicAdapter().build_request(req, DEP, stream=False).body)["max_tokens"] == 8192


def test_adapter_is_registered() -> None:
    assert isinstance(adapter_for("anthropic").inner, AnthropicAdapter)   # inside the guard (guarded.py)
    assert adapter_for("anthropic").protocol == "anthropic"


def test_every_openai_request_field_has_a_policy() -> None:
    """Walks OpenAI's CreateChatCompletionRequest so a new OpenAI field cannot slip through silently."""
    fields = chat_request_fields()
    decided = MAPPED_PARAMS | DROPPED_PARAMS | set(NEUTRAL_VALUES)
    assert fields - decided == set()
    assert not (decided & ANTHROPIC_PASSTHROUGH)

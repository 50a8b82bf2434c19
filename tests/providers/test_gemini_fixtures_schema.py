"""Every Gemini fixture is well-formed on both sides, and every fixture has its named test.

- Gemini side (requests we build, responses, stream events, errors) -> the discovery document's
  schemas via `gemini_schema` (unknown fields rejected; the fields we rely on required).
- OpenAI side: requests -> `CreateChatCompletionRequest`, responses -> `CreateChatCompletionResponse`,
  chunks -> `CreateChatCompletionStreamResponse`.
"""
from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import orjson
import pytest

from gemini_fixtures import FIXTURES, load, sse_events
from gemini_schema import spec_dir, validate_gemini
from openai_schema import validate_openai

JSON_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json"))
SSE_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.sse"))
TEST_SOURCES = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_gemini_*.py"))


def test_specs_are_found_beside_the_repository():
    assert (spec_dir() / "gemini-discovery-v1beta.json").is_file()
    assert (spec_dir() / "openai-openapi.yaml").is_file()


def test_there_are_fixtures_of_every_kind():
    kinds = {k for name in JSON_FIXTURES for k in load(name) if k in (
        "gemini_request", "gemini_response", "openai_chunks", "gemini_error", "cases")}
    assert kinds == {"gemini_request", "gemini_response", "openai_chunks", "gemini_error", "cases"}
    assert len(SSE_FIXTURES) >= 8


@pytest.mark.parametrize("name", JSON_FIXTURES + SSE_FIXTURES)
def test_every_fixture_has_a_test_named_after_it(name):
    stem = name.rsplit(".", 1)[0]
    assert re.search(rf"def test_{re.escape(stem)}\(", TEST_SOURCES), f"no test_{stem}() for {name}"
    assert load(f"{stem}.json").get("description"), f"{stem}.json needs a description"


@pytest.mark.parametrize("name", JSON_FIXTURES)
def test_json_fixture_sides_validate(name):
    fx = load(name)
    if "gemini_request" in fx:
        validate_gemini(fx["gemini_request"], "GenerateContentRequest")
        validate_openai(fx["openai_request"], "CreateChatCompletionRequest")
    if "gemini_response" in fx:
        validate_gemini(fx["gemini_response"], "GenerateContentResponse")
        validate_openai(fx["openai_response"], "CreateChatCompletionResponse")
    if "gemini_error" in fx:
        validate_gemini(fx["gemini_error"], "ErrorEnvelope")
    for item in fx.get("gemini_error_array", ()):
        validate_gemini(item, "ErrorEnvelope")
    for chunk in fx.get("openai_chunks", ()):
        validate_openai(chunk, "CreateChatCompletionStreamResponse")
    for case in fx.get("cases", ()):
        assert case["param"] and case["code"] in ("unsupported_parameter", "invalid_value")


@pytest.mark.parametrize("name", SSE_FIXTURES)
def test_sse_fixture_events_validate(name):
    events = sse_events(name)
    assert events
    for ev in events:
        payload = orjson.loads(ev.data)
        validate_gemini(payload, "ErrorEnvelope" if "error" in payload else "GenerateContentResponse")


def test_the_validator_rejects_unknown_fields_and_missing_relied_on_fields():
    with pytest.raises(jsonschema.ValidationError, match="maxTokens"):
        validate_gemini({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
                         "generationConfig": {"maxTokens": 5}}, "GenerateContentRequest")
    with pytest.raises(jsonschema.ValidationError, match="name"):
        validate_gemini({"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]},
                        "GenerateContentRequest")
    with pytest.raises(jsonschema.ValidationError, match="contents"):
        validate_gemini({"generationConfig": {}}, "GenerateContentRequest")
    with pytest.raises(jsonschema.ValidationError):
        validate_gemini({"candidates": [{"finishReason": "DONE"}]}, "GenerateContentResponse")


def test_the_validator_follows_proto_json_rules():
    schema = {"type": "OBJECT", "minItems": "1", "maxLength": 5, "properties": {"a": {"type": "STRING"}}}
    validate_gemini(schema, "Schema")
    with pytest.raises(jsonschema.ValidationError):
        validate_gemini({"type": "OBJECT", "minItems": "one"}, "Schema")
    validate_gemini({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}, "Part")
    with pytest.raises(jsonschema.ValidationError):
        validate_gemini({"inlineData": {"mimeType": "image/png", "data": "not base64!"}}, "Part")

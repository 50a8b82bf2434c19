"""OpenAI request -> Gemini request: one test per behaviour, each pinned by a fixture of the same name.

Every built body is also validated against the discovery document (`GenerateContentRequest`).
"""
from __future__ import annotations

import dataclasses

import orjson
import pytest

from gemini_fixtures import ADAPTER, DEP, chat_request, load
from gemini_schema import validate_gemini
from routerone.errors import InvalidRequest, UnsupportedParameter
from routerone.providers.adapters import adapter_for
from routerone.providers.gemini import GeminiAdapter
from routerone.providers.gemini_jsonschema import to_gemini_schema


def built(fixture: str, *, stream: bool = False) -> tuple[dict, dict]:
    fx = load(fixture)
    up = ADAPTER.build_request(chat_request(fx["openai_request"]), DEP, stream=stream)
    body = orjson.loads(up.body)
    validate_gemini(body, "GenerateContentRequest")
    validate_gemini(fx["gemini_request"], "GenerateContentRequest")
    return body, fx["gemini_request"]


def check(fixture: str) -> dict:
    body, expected = built(fixture)
    assert body == expected
    return body


def test_adapter_is_registered_for_the_gemini_protocol():
    assert isinstance(adapter_for("gemini").inner, GeminiAdapter)   # inside the guard (guarded.py)
    assert adapter_for("gemini").protocol == "gemini"


def test_url_and_headers_non_streaming():
    up = ADAPTER.build_request(chat_request(load("system_instruction_request.json")["openai_request"]), DEP, stream=False)
    assert up.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert up.headers["x-goog-api-key"] == "test-gemini-key"
    assert up.headers["Content-Type"] == "application/json"
    assert "Authorization" not in up.headers


def test_url_streaming_uses_alt_sse():
    up = ADAPTER.build_request(chat_request(load("system_instruction_request.json")["openai_request"]), DEP, stream=True)
    assert up.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert orjson.loads(up.body) == load("system_instruction_request.json")["gemini_request"]


def test_url_tolerates_models_prefix_and_trailing_slash():
    vendor = dataclasses.replace(DEP.vendor, base_url="http://127.0.0.1:9/v1beta/")
    dep = dataclasses.replace(DEP, vendor=vendor, upstream_model="models/gemini-2.5-pro")
    up = ADAPTER.build_request(chat_request({"model": "m", "messages": [{"role": "user", "content": "x"}]}), dep, stream=False)
    assert up.url == "http://127.0.0.1:9/v1beta/models/gemini-2.5-pro:generateContent"


def test_system_instruction_request():
    body = check("system_instruction_request.json")
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]


def test_generation_config_request():
    body = check("generation_config_request.json")
    assert body["generationConfig"]["maxOutputTokens"] == 256   # max_completion_tokens wins


def test_stop_sequences_request():
    check("stop_sequences_request.json")


def test_image_request():
    body = check("image_request.json")
    parts = body["contents"][0]["parts"]
    assert "inlineData" in parts[1] and "fileData" in parts[2]


def test_input_audio_request():
    check("input_audio_request.json")


def test_pdf_file_request():
    check("pdf_file_request.json")


def test_tools_request():
    body = check("tools_request.json")
    weather = body["tools"][0]["functionDeclarations"][0]["parameters"]
    assert "additionalProperties" not in orjson.dumps(weather).decode()
    assert "$schema" not in weather and "$defs" not in weather


def test_tool_choice_required_request():
    check("tool_choice_required_request.json")


def test_tool_choice_none_request():
    check("tool_choice_none_request.json")


def test_tool_choice_named_request():
    check("tool_choice_named_request.json")


def test_tool_choice_allowed_tools_request():
    check("tool_choice_allowed_tools_request.json")


def test_tool_result_request():
    body = check("tool_result_request.json")
    for part in body["contents"][2]["parts"][:3]:
        assert isinstance(part["functionResponse"]["response"], dict)


def test_thought_signature_request():
    check("thought_signature_request.json")


def test_legacy_functions_request():
    check("legacy_functions_request.json")


def test_json_object_request():
    check("json_object_request.json")


def test_json_schema_request():
    check("json_schema_request.json")


def test_logprobs_request():
    check("logprobs_request.json")


def test_reasoning_effort_request():
    check("reasoning_effort_request.json")


@pytest.mark.parametrize("case", load("rejected_params.json")["cases"], ids=lambda c: f"{c['param']}")
def test_rejected_params(case):
    req = chat_request(case["openai_request"])
    with pytest.raises(InvalidRequest) as info:
        ADAPTER.build_request(req, DEP, stream=False)
    err = info.value
    assert err.status == 400
    assert err.param == case["param"]
    assert err.code == case["code"]
    assert isinstance(err, UnsupportedParameter) == (case["code"] == "unsupported_parameter")
    assert case["param"].split("[")[0].split(".")[0] in err.message


@pytest.mark.parametrize("schema,expected", [
    ({"type": ["string", "integer"]}, {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}),
    ({"type": ["string", "integer", "null"]}, {"nullable": True, "anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}),
    ({"oneOf": [{"type": "string"}, {"type": "number"}]}, {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]}),
    ({"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "boolean"}}}]},
     {"type": "OBJECT", "properties": {"a": {"type": "STRING"}, "b": {"type": "BOOLEAN"}},
      "propertyOrdering": ["a", "b"], "required": ["a"]}),
    ({"type": "object", "definitions": {"id": {"type": "integer", "format": "int64"}},
      "properties": {"id": {"$ref": "#/definitions/id", "description": "row id"}}},
     {"type": "OBJECT", "properties": {"id": {"type": "INTEGER", "format": "int64", "description": "row id"}},
      "propertyOrdering": ["id"]}),
    ({"type": "string", "enum": ["a", None]}, {"type": "STRING", "nullable": True, "enum": ["a"]}),
    ({"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5, "default": 1.5},
     {"type": "NUMBER", "default": 1.5}),
])
def test_json_schema_conversion_edge_cases(schema, expected):
    converted = to_gemini_schema(schema, param="p")
    assert converted == expected
    validate_gemini(converted, "Schema")


def test_default_verbosity_is_accepted():
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "verbosity": "medium"}
    up = ADAPTER.build_request(chat_request(body), DEP, stream=False)
    assert orjson.loads(up.body) == {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}


def test_every_openai_request_field_and_sdk_argument_has_one_policy() -> None:
    """OpenAI's CreateChatCompletionRequest and the installed SDK's `chat.completions.create` keyword
    arguments: each is mapped, dropped (a hint) or rejected, so a new one cannot be lost silently."""
    import inspect

    from openai.resources.chat.completions import Completions
    from openai_schema import chat_request_fields
    from routerone.providers.gemini_request import DROPPED_PARAMS, MAPPED_PARAMS, REJECTED_PARAMS

    fields = chat_request_fields()
    fields |= set(inspect.signature(Completions.create).parameters) - {
        "self", "extra_headers", "extra_query", "extra_body", "timeout"}
    policies = [MAPPED_PARAMS, set(DROPPED_PARAMS), set(REJECTED_PARAMS)]
    assert fields - set().union(*policies) == set()
    assert all(not (a & b) for i, a in enumerate(policies) for b in policies[i + 1:])


def test_unknown_parameter_is_unsupported_naming_it() -> None:
    with pytest.raises(UnsupportedParameter) as ei:
        ADAPTER.build_request(chat_request({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}],
                                            "safety_settings": [{"category": "x"}]}), DEP, stream=False)
    assert ei.value.param == "safety_settings"

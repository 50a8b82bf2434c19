"""Validate Anthropic wire objects against Anthropic's OpenAPI spec (JSON Schema Draft 2020-12).

The spec is `../shared/specs/anthropic-openapi.yaml` relative to the repo root (CI puts `shared/`
beside the clone). `ping` and stream `error` events have no schema in the spec; they are checked
against the small local schemas below (the error event reuses the spec's error union).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["SPECS_DIR", "spec_file", "validate_anthropic", "validate_error_body", "validate_stream_event",
           "STREAM_EVENT_SCHEMAS", "ERROR_TYPES_MISSING_FROM_SPEC"]

REPO_ROOT = Path(__file__).resolve().parents[2]
SPECS_DIR = REPO_ROOT.parent / "shared" / "specs"
_URI = "urn:routerone:anthropic-openapi"
STREAM_EVENT_SCHEMAS = {
    "message_start": "MessageStartEvent", "content_block_start": "ContentBlockStartEvent",
    "content_block_delta": "ContentBlockDeltaEvent", "content_block_stop": "ContentBlockStopEvent",
    "message_delta": "MessageDeltaEvent", "message_stop": "MessageStopEvent",
}
# Documented by Anthropic (errors page: 413 from the edge, before the API) but absent from the spec's
# ErrorResponse union; such bodies are checked with the type swapped, so the rest of the shape still is.
ERROR_TYPES_MISSING_FROM_SPEC = {"request_too_large"}
_PING = {"type": "object", "required": ["type"], "additionalProperties": False,
         "properties": {"type": {"const": "ping"}}}


def spec_file(name: str) -> Path:
    path = SPECS_DIR / name
    if not path.is_file():
        pytest.fail(f"spec file missing: {path} (expected ../shared/specs beside the repo root)", pytrace=False)
    return path


@lru_cache(maxsize=1)
def _registry() -> tuple[dict, Registry]:
    spec = orjson.loads(spec_file("anthropic-openapi.yaml").read_bytes())   # JSON syntax, valid YAML
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    return spec, Registry().with_resource(_URI, resource)


@lru_cache(maxsize=None)
def _validator(schema_name: str) -> Draft202012Validator:
    spec, registry = _registry()
    if schema_name not in spec["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the Anthropic spec")
    return Draft202012Validator({"$ref": f"{_URI}#/components/schemas/{schema_name}"}, registry=registry)


@lru_cache(maxsize=1)
def _error_event_validator() -> Draft202012Validator:
    _, registry = _registry()
    schema = {"type": "object", "required": ["type", "error"],
              "properties": {"type": {"const": "error"},
                             "error": {"$ref": f"{_URI}#/components/schemas/ErrorResponse/properties/error"},
                             "request_id": {"type": ["string", "null"]}}}
    return Draft202012Validator(schema, registry=registry)


def _raise_first(validator: Draft202012Validator, instance: object, what: str) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: len(list(e.absolute_path)))
    if errors:
        best = errors[0]
        path = "/".join(str(p) for p in best.absolute_path)
        raise AssertionError(f"{what} does not match the Anthropic spec at '{path}': {best.message[:400]}")


def validate_anthropic(instance: object, schema_name: str) -> None:
    """Assert `instance` matches `#/components/schemas/<schema_name>`."""
    _raise_first(_validator(schema_name), instance, schema_name)


def validate_error_body(body: dict) -> None:
    """An `ErrorResponse` body, allowing the documented error types the spec lacks."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("type") in ERROR_TYPES_MISSING_FROM_SPEC:
        body = {**body, "error": {**error, "type": "invalid_request_error"}}
    validate_anthropic(body, "ErrorResponse")


def validate_stream_event(event_name: str | None, data: dict) -> None:
    """One SSE event: the `event:` name must equal `data.type`, and the data must match its schema."""
    assert event_name == data.get("type"), f"event name {event_name!r} != data type {data.get('type')!r}"
    if event_name == "ping":
        _raise_first(Draft202012Validator(_PING), data, "ping event")
    elif event_name == "error":
        _raise_first(_error_event_validator(), data, "error event")
    else:
        assert event_name in STREAM_EVENT_SCHEMAS, f"unknown stream event {event_name!r}"
        validate_anthropic(data, STREAM_EVENT_SCHEMAS[event_name])
        validate_anthropic(data, "MessageStreamEvent")

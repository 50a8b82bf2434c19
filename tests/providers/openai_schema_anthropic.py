"""Validate OpenAI objects against OpenAI's OpenAPI spec (JSON Schema Draft 2020-12).

The spec (`../shared/specs/openai-openapi.yaml` beside the repo root) still uses OpenAPI 3.0's
`nullable: true` in places; it is rewritten to JSON Schema (`type: [T, "null"]`) once at load.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["openai_spec", "validate_openai", "validate_completion", "validate_chunk"]

SPECS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
_URI = "urn:routerone:openai-openapi"


def _denullable(node: object) -> object:
    if isinstance(node, list):
        return [_denullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _denullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is not True:
        return out
    if "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = types + ["null"]
        if "enum" in out:
            out["enum"] = list(out["enum"]) + [None]
        return out
    return {"anyOf": [out, {"type": "null"}]}


@lru_cache(maxsize=1)
def openai_spec() -> dict:
    """The whole OpenAI spec, parsed once per test process and normalised."""
    path = SPECS_DIR / "openai-openapi.yaml"
    if not path.is_file():
        pytest.fail(f"spec file missing: {path} (expected ../shared/specs beside the repo root)", pytrace=False)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return _denullable(yaml.load(path.read_bytes(), Loader=loader))


@lru_cache(maxsize=1)
def _registry() -> tuple[dict, Registry]:
    spec = openai_spec()
    return spec, Registry().with_resource(_URI, Resource.from_contents(spec, default_specification=DRAFT202012))


@lru_cache(maxsize=None)
def _validator(schema_name: str) -> Draft202012Validator:
    spec, registry = _registry()
    if schema_name not in spec["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the OpenAI spec")
    return Draft202012Validator({"$ref": f"{_URI}#/components/schemas/{schema_name}"}, registry=registry)


def validate_openai(instance: object, schema_name: str) -> None:
    errors = sorted(_validator(schema_name).iter_errors(instance), key=lambda e: len(list(e.absolute_path)))
    if errors:
        path = "/".join(str(p) for p in errors[0].absolute_path)
        raise AssertionError(f"{schema_name} mismatch at '{path}': {errors[0].message[:400]}")


def validate_completion(obj: dict) -> None:
    validate_openai(obj, "CreateChatCompletionResponse")


def validate_chunk(obj: dict) -> None:
    validate_openai(obj, "CreateChatCompletionStreamResponse")

"""Validate Gemini JSON against the discovery document's schemas (converted to JSON Schema).

Discovery format -> JSON Schema (draft 2020-12):
- `schemas.X` -> `$defs.X`; `{"$ref": "X"}` -> `{"$ref": "#/$defs/X"}`; `type: "any"` -> `{}`;
- `format: int32` -> integer; `int64`/`uint64` on a string -> a decimal string or an integer (proto3 JSON
  accepts both); `byte` -> base64 text (standard or URL-safe); `float`/`double` -> number;
- `enum` kept; `items`, `additionalProperties` converted recursively;
- `strict=True` (the default) adds `additionalProperties: false` to objects with `properties`, which is
  what Google does with an unknown field name ("Invalid JSON payload received. Unknown name ...").
Every field in a discovery document is optional, so `REQUIRED_FIELDS` adds `required` lists for the
fields Router One relies on. The error envelope is not in the discovery document: `ERROR_SCHEMA` is
`google.rpc.Status` (`Status` in the document) plus the HTTP envelope's `status` code name.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

__all__ = ["spec_dir", "validate_gemini", "gemini_validator", "REQUIRED_FIELDS"]

REQUIRED_FIELDS: dict[str, list[str]] = {
    "GenerateContentRequest": ["contents"],
    "Content": ["parts"],
    "Blob": ["mimeType", "data"],
    "FileData": ["fileUri"],
    "FunctionCall": ["name"],
    "FunctionResponse": ["name", "response"],
    "FunctionDeclaration": ["name"],
    "FunctionCallingConfig": ["mode"],
    "UsageMetadata": ["promptTokenCount", "totalTokenCount"],
    "ModalityTokenCount": ["modality", "tokenCount"],
    "LogprobsResultCandidate": ["token", "logProbability"],
}
_RPC_CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
              "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
              "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"]
_BASE64 = r"^[A-Za-z0-9+/_-]*={0,2}$"


def spec_dir() -> Path:
    """`../shared/specs` beside the repository root (where CI puts it)."""
    root = Path(__file__).resolve().parents[2]
    path = root.parent / "shared" / "specs"
    if not (path / "gemini-discovery-v1beta.json").is_file():
        raise FileNotFoundError(f"the shared specs are missing: expected {path}/gemini-discovery-v1beta.json "
                                "(CI checks shared/ out beside the repository)")
    return path


def _convert(node: Any, name: str | None, strict: bool) -> Any:
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {"$ref": f"#/$defs/{node['$ref']}"}
    kind, fmt = node.get("type"), node.get("format")
    out: dict[str, Any]
    if kind == "any" or kind is None:
        out = {}
    elif kind == "string" and fmt in ("int64", "uint64"):
        out = {"anyOf": [{"type": "string", "pattern": r"^-?\d+$"}, {"type": "integer"}]}
    elif kind == "string" and fmt == "byte":
        out = {"type": "string", "pattern": _BASE64}
    else:
        out = {"type": kind}
    if "enum" in node:
        out["enum"] = list(node["enum"])
    if isinstance(node.get("items"), dict):
        out["items"] = _convert(node["items"], None, strict)
    if "properties" in node:
        out["properties"] = {k: _convert(v, None, strict) for k, v in node["properties"].items()}
        if strict:
            out["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(node["additionalProperties"], None, strict)
    if name in REQUIRED_FIELDS:
        out["required"] = REQUIRED_FIELDS[name]
    return out


@lru_cache(maxsize=2)
def _root(strict: bool) -> dict:
    doc = json.loads((spec_dir() / "gemini-discovery-v1beta.json").read_text())
    defs = {name: _convert(schema, name, strict) for name, schema in doc["schemas"].items()}
    status = dict(defs["Status"])
    status["properties"] = {**status["properties"], "status": {"type": "string", "enum": _RPC_CODES}}
    status["required"] = ["code", "message", "status"]
    defs["ErrorEnvelope"] = {"type": "object", "required": ["error"], "additionalProperties": False,
                             "properties": {"error": status}}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs}


@lru_cache(maxsize=64)
def gemini_validator(schema_name: str, strict: bool = True) -> jsonschema.Draft202012Validator:
    root = _root(strict)
    if schema_name not in root["$defs"]:
        raise KeyError(f"no schema {schema_name!r} in the discovery document")
    return jsonschema.Draft202012Validator({**root, "$ref": f"#/$defs/{schema_name}"})


def validate_gemini(instance: Any, schema_name: str, *, strict: bool = True) -> None:
    """Raise `jsonschema.ValidationError` (with the JSON path) if `instance` does not fit."""
    errors = sorted(gemini_validator(schema_name, strict).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "<root>"
        raise jsonschema.ValidationError(f"{schema_name} at {where}: {e.message}")

"""Validate JSON against OpenAI's own OpenAPI spec (JSON Schema Draft 2020-12).

    from openai_schema import validate_openai
    validate_openai(body, "CreateChatCompletionResponse")   # AssertionError naming the path on mismatch

The spec lives beside the repository, in `<repo root>/../shared/specs/openai-openapi.yaml` (CI puts
`shared/` next to the clone). A missing spec fails the test loudly; it never skips.

Parsing the 3 MB YAML takes about a second, so it happens once: the parsed (and normalised) spec is
kept in-process and pickled under `.pytest_cache/routerone/`, keyed by the file's SHA-256, so later
sessions load it in milliseconds. `#/components/schemas/...` references resolve through a
`referencing.Registry` holding the whole spec as one resource.

Normalisation: a few schemas still use OpenAPI 3.0's `nullable: true`, which JSON Schema ignores
(so `"logprobs": null` would be rejected); it is rewritten once to `type: [T, "null"]` (or
`anyOf: [..., {type: null}]` when there is no `type`).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["SPEC_PATH", "ERROR_FINISH_REASON", "spec", "schema_names", "validator", "validate_openai",
           "openai_errors", "validate_completion", "validate_chunk", "validate_error", "validate_models",
           "sse_payloads", "wire_problems"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEC_PATH = REPO_ROOT.parent / "shared" / "specs" / "openai-openapi.yaml"
CACHE_DIR = REPO_ROOT / ".pytest_cache" / "routerone"
_URI = "urn:routerone:openai-openapi"
_CACHE_FORMAT = 1   # bump when the normalisation changes
# Router One ends a failed stream with a chunk whose finish_reason is "error" (as OpenRouter does),
# a deliberate extension the spec's enum does not list: wire_problems skips that one chunk.
ERROR_FINISH_REASON = "error"


def _denullable(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 `nullable: true` into JSON Schema (recursively)."""
    if isinstance(node, list):
        return [_denullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _denullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is not True:
        return out
    if "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"] if "null" not in types else types
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [out, {"type": "null"}]}


def _read_cache(path: Path) -> dict | None:
    try:
        with path.open("rb") as f:
            return pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        return None


def _write_cache(path: Path, spec_obj: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(spec_obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)     # atomic: parallel sessions never read half a file
    except OSError:
        pass                      # a read-only checkout just parses every session


@lru_cache(maxsize=1)
def spec() -> dict:
    """The whole OpenAI spec, parsed and normalised (once per process, from the disk cache if fresh)."""
    if not SPEC_PATH.is_file():
        pytest.fail(f"OpenAI spec missing: {SPEC_PATH} (expected shared/specs/ beside the repository root)",
                    pytrace=False)
    raw = SPEC_PATH.read_bytes()
    cache = CACHE_DIR / f"openai-openapi-{hashlib.sha256(raw).hexdigest()[:16]}-v{_CACHE_FORMAT}.pickle"
    cached = _read_cache(cache)
    if isinstance(cached, dict) and "components" in cached:
        return cached
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    parsed = _denullable(yaml.load(raw, Loader=loader))
    _write_cache(cache, parsed)
    return parsed


@lru_cache(maxsize=1)
def _registry() -> Registry:
    return Registry().with_resource(_URI, Resource.from_contents(spec(), default_specification=DRAFT202012))


def schema_names() -> list[str]:
    return sorted(spec()["components"]["schemas"])


@lru_cache(maxsize=None)
def validator(schema_name: str) -> Draft202012Validator:
    """A Draft 2020-12 validator for `#/components/schemas/<schema_name>`."""
    if schema_name not in spec()["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the OpenAI spec")
    return Draft202012Validator({"$ref": f"{_URI}#/components/schemas/{schema_name}"}, registry=_registry())


def openai_errors(instance: object, schema_name: str) -> list[str]:
    """Every mismatch as 'path: message' (shallowest first); empty when the instance validates."""
    errors = sorted(validator(schema_name).iter_errors(instance),
                    key=lambda e: (len(e.absolute_path), str(list(e.absolute_path))))
    return [f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:300]}" for e in errors]


def validate_openai(instance: object, schema_name: str) -> None:
    """Assert that `instance` is a valid `schema_name` of the OpenAI spec."""
    errors = openai_errors(instance, schema_name)
    if errors:
        shown = "\n  ".join(errors[:5])
        raise AssertionError(f"not a valid OpenAI {schema_name}:\n  {shown}\ninstance: {str(instance)[:1500]}")


def validate_completion(obj: object) -> None:
    validate_openai(obj, "CreateChatCompletionResponse")


def validate_chunk(obj: object) -> None:
    validate_openai(obj, "CreateChatCompletionStreamResponse")


def validate_error(obj: object) -> None:
    validate_openai(obj, "ErrorResponse")


def validate_models(obj: object) -> None:
    validate_openai(obj, "ListModelsResponse")


# -- checking whole HTTP responses ----------------------------------------------------------------

def sse_payloads(body: bytes | str) -> list[str]:
    """The `data:` payloads of the complete SSE events in `body`, in order. Comments and other
    fields are ignored; an unterminated trailing event (a body read only in part) is left out."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    out: list[str] = []
    for event in text.replace("\r\n", "\n").split("\n\n")[:-1]:
        data = [line[5:].removeprefix(" ") for line in event.split("\n") if line.startswith("data:")]
        if data:
            out.append("\n".join(data))
    return out


def wire_problems(method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
    """What is wrong with one HTTP response of an OpenAI-compatible server, per OpenAI's spec:
    `POST .../chat/completions` -> CreateChatCompletionResponse, or (SSE) every chunk ->
    CreateChatCompletionStreamResponse except the error-finish chunk; `{"error": ...}` events and
    every >= 400 body -> ErrorResponse; `GET .../models` -> ListModelsResponse. Other paths'
    successful bodies are not checked."""
    where = f"{method} {path} -> {status}"

    def check(obj: object, schema: str, at: str = where) -> list[str]:
        return [f"{at}: {schema} {e}" for e in openai_errors(obj, schema)]

    is_chat = method == "POST" and path.endswith("/chat/completions")
    is_models = method == "GET" and path.endswith("/models")
    if not (is_chat or is_models or status >= 400):
        return []
    if status < 400 and content_type.startswith("text/event-stream"):
        problems: list[str] = []
        for i, payload in enumerate(sse_payloads(body)):
            if payload == "[DONE]":
                continue
            try:
                obj = json.loads(payload)
            except ValueError:
                problems.append(f"{where}: SSE event {i} is not JSON: {payload[:200]!r}")
                continue
            if isinstance(obj, dict) and "error" in obj:
                problems += check(obj, "ErrorResponse", f"{where} event {i}")
            elif isinstance(obj, dict) and any(isinstance(c, dict) and c.get("finish_reason") == ERROR_FINISH_REASON
                                               for c in obj.get("choices") or ()):
                continue
            else:
                problems += check(obj, "CreateChatCompletionStreamResponse", f"{where} event {i}")
        return problems
    try:
        obj = json.loads(body)
    except ValueError:
        return [f"{where}: body is not JSON: {body[:200]!r}"]
    if status >= 400:
        return check(obj, "ErrorResponse")
    return check(obj, "CreateChatCompletionResponse" if is_chat else "ListModelsResponse")


def chat_request_fields() -> set[str]:
    """Every property of OpenAI's CreateChatCompletionRequest (through $ref and allOf): what a
    provider translation must decide about, one way or another."""
    schemas = spec()["components"]["schemas"]
    fields: set[str] = set()

    def collect(schema: dict) -> None:
        if "$ref" in schema:
            collect(schemas[schema["$ref"].rsplit("/", 1)[1]])
        for part in schema.get("allOf", ()):
            collect(part)
        fields.update(schema.get("properties", {}))

    collect(schemas["CreateChatCompletionRequest"])
    return fields

"""JSON Schema (as OpenAI callers write it) -> Gemini `Schema` (the OpenAPI 3.0 subset in the
discovery document), used for function `parameters` and `generationConfig.responseSchema`.

Why convert instead of sending `parametersJsonSchema`/`responseJsonSchema`: the typed `Schema` is
accepted by every Gemini model generation, and the discovery document lists the JSON-Schema field
for responses under the confusing pair `_responseJsonSchema`/`responseJsonSchema`.

Rules (each one lossless unless noted):
- `$ref` into `$defs`/`definitions` is inlined; a recursive `$ref` is rejected (400).
- `type: [T, "null"]`, `anyOf/oneOf` with a `{"type": "null"}` branch -> `nullable: true`.
- several types -> `anyOf` of one schema per type; `oneOf` -> `anyOf`; a one-branch `allOf` is merged.
- `const` (string) -> one-value `enum`. Non-string enums are not expressible (Gemini enums are
  strings): the values move into `description` (lossy, noted to the model in words).
- `examples[0]` -> `example`; `minLength`-style int64 bounds are sent as decimal strings (proto JSON).
- objects get `propertyOrdering` = the caller's property order (Gemini otherwise sorts keys).
- dropped (no Gemini equivalent): `$schema`, `$id`, `$comment`, `additionalProperties`,
  `patternProperties`, `unevaluatedProperties`, `exclusiveMinimum/Maximum`, `multipleOf`,
  `uniqueItems`, `prefixItems`, `contains`, `not`, `if/then/else`, `readOnly`, `writeOnly`, `deprecated`.
"""
from __future__ import annotations

from typing import Any

from ..errors import UnsupportedParameter

__all__ = ["to_gemini_schema"]

_TYPES = {"string": "STRING", "number": "NUMBER", "integer": "INTEGER", "boolean": "BOOLEAN",
          "array": "ARRAY", "object": "OBJECT", "null": "NULL"}
_COPIED = ("description", "title", "format", "pattern", "default", "example", "minimum", "maximum")
_INT64_BOUNDS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")


def to_gemini_schema(schema: Any, *, param: str) -> dict:
    """Convert `schema`; `param` names the OpenAI field for error messages (e.g. `tools[0]...`)."""
    if not isinstance(schema, dict):
        raise UnsupportedParameter(f"'{param}' must be a JSON Schema object", param=param)
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _Converter(defs, param).convert(schema, ())


class _Converter:
    def __init__(self, defs: dict, param: str) -> None:
        self.defs = defs
        self.param = param

    def fail(self, why: str) -> UnsupportedParameter:
        return UnsupportedParameter(f"'{self.param}' cannot be expressed for Gemini: {why}", param=self.param)

    def convert(self, node: Any, refs: tuple[str, ...]) -> dict:
        if node is True or node == {}:
            return {}
        if not isinstance(node, dict):
            raise self.fail(f"expected a schema object, got {node!r}")
        if "$ref" in node:
            return self._ref(node, refs)
        out: dict = {}
        node = self._merge_all_of(node, refs)
        branches = node.get("anyOf") or node.get("oneOf")
        if branches:
            self._any_of(branches, refs, out)
        self._type(node, out)
        for key in _COPIED:
            if key in node and key not in out:
                out[key] = node[key]
        if "example" not in out and isinstance(node.get("examples"), list) and node["examples"]:
            out["example"] = node["examples"][0]
        for key in _INT64_BOUNDS:
            if isinstance(node.get(key), int):
                out[key] = str(node[key])
        self._enum(node, out)
        if isinstance(node.get("properties"), dict):
            props = {k: self.convert(v, refs) for k, v in node["properties"].items()}
            out["properties"] = props
            out["propertyOrdering"] = list(props)
            req = [r for r in node.get("required") or () if r in props]
            if req:
                out["required"] = req
        if isinstance(node.get("items"), dict):
            out["items"] = self.convert(node["items"], refs)
        return out

    def _ref(self, node: dict, refs: tuple[str, ...]) -> dict:
        ref = node["$ref"]
        name = ref.rsplit("/", 1)[-1]
        if not (ref.startswith("#/$defs/") or ref.startswith("#/definitions/")) or name not in self.defs:
            raise self.fail(f"unresolvable $ref {ref!r}")
        if ref in refs:
            raise self.fail(f"recursive $ref {ref!r} is not supported")
        target = {**self.defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return self.convert(target, refs + (ref,))

    def _merge_all_of(self, node: dict, refs: tuple[str, ...]) -> dict:
        parts = node.get("allOf")
        if not parts:
            return node
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for part in parts:
            part = self.defs.get(part["$ref"].rsplit("/", 1)[-1], {}) if "$ref" in part else part
            for k, v in part.items():
                if k == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **v}
                elif k == "required":
                    merged["required"] = [*merged.get("required", []), *v]
                else:
                    merged.setdefault(k, v)
        return merged

    def _any_of(self, branches: list, refs: tuple[str, ...], out: dict) -> None:
        real = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        if len(real) < len(branches):
            out["nullable"] = True
        converted = [self.convert(b, refs) for b in real]
        if len(converted) == 1:
            out.update(converted[0])
        elif converted:
            out["anyOf"] = converted

    def _type(self, node: dict, out: dict) -> None:
        t = node.get("type")
        if t is None:
            if "const" in node and isinstance(node["const"], str):
                out["type"] = "STRING"
            return
        types = t if isinstance(t, list) else [t]
        if any(x not in _TYPES for x in types):
            raise self.fail(f"unknown type {t!r}")
        real = [x for x in types if x != "null"]
        if len(real) < len(types):
            out["nullable"] = True
        if len(real) == 1:
            out["type"] = _TYPES[real[0]]
        elif len(real) > 1:
            out["anyOf"] = [{"type": _TYPES[x]} for x in real]
        else:
            out["type"] = "NULL"

    def _enum(self, node: dict, out: dict) -> None:
        values = node.get("enum")
        if values is None and "const" in node:
            values = [node["const"]]
        if not isinstance(values, list) or not values:
            return
        if None in values:
            out["nullable"] = True
            values = [v for v in values if v is not None]
        if all(isinstance(v, str) for v in values):
            out["enum"] = list(values)
            return
        allowed = ", ".join(str(v) for v in values)
        out["description"] = (out.get("description", "") + f" Allowed values: {allowed}.").strip()

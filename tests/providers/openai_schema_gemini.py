"""OpenAI-spec validation for the Gemini tests.

Uses the shared `tests/openai_schema.py` when it is importable; otherwise (the shared helper not in
this checkout) a minimal equivalent: load `openai-openapi.yaml` beside the repository, rewrite
OpenAPI-3.0 `nullable: true` as "this, or null" (plain JSON Schema ignores it, so `finish_reason: null`
would fail), and validate against `#/components/schemas/<name>`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["validate_openai"]

try:
    from openai_schema import validate_openai   # the shared helper (tests/openai_schema.py)
except ImportError:
    import jsonschema
    import yaml

    from gemini_schema import spec_dir

    def _denull(node: Any) -> Any:
        if isinstance(node, list):
            return [_denull(x) for x in node]
        if not isinstance(node, dict):
            return node
        out = {k: _denull(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable") is not True:
            return out
        if isinstance(out.get("type"), str) and "$ref" not in out and "allOf" not in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
            return out
        return {"anyOf": [out, {"type": "null"}]}

    @lru_cache(maxsize=1)
    def _components() -> dict:
        path = spec_dir() / "openai-openapi.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"the shared OpenAI spec is missing: {path}")
        with path.open() as f:
            doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return {"components": {"schemas": _denull(doc["components"]["schemas"])}}

    @lru_cache(maxsize=8)
    def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator({**_components(), "$ref": f"#/components/schemas/{schema_name}"})

    def validate_openai(instance: object, schema_name: str) -> None:   # type: ignore[no-redef]
        errors = sorted(_validator(schema_name).iter_errors(instance), key=lambda e: list(e.path))
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "<root>"
            raise AssertionError(f"{schema_name} at {where}: {errors[0].message}")

"""Building blocks for the area modules of the OpenAPI document: the error shape, JSON bodies,
operations. An area module is plain data made with these helpers (see __init__ for the contract)."""
from __future__ import annotations

from typing import Any

__all__ = ["ERROR_SCHEMA", "ERROR_DESCRIPTIONS", "ref", "json_content", "operation", "query_parameters",
           "path_parameter", "nullable"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error"],
    "description": "Every error, whatever the endpoint: the seed's shape plus `param` (OpenAI's ErrorResponse).",
    "properties": {"error": {
        "type": "object", "required": ["message", "type", "param", "code"],
        "properties": {
            "message": {"type": "string", "description": "what went wrong, for a human"},
            "type": {"type": "string", "description": "invalid_request_error, authentication_error, "
                     "billing_error, permission_error, rate_limit_error, upstream_error, timeout_error, api_error"},
            "param": {"type": ["string", "null"], "description": "the field at fault, when one is"},
            "code": {"type": ["string", "null"], "description": "a stable machine-readable code"},
        }}},
}

ERROR_DESCRIPTIONS = {
    400: "Invalid request: `param` names the field (unknown fields, wrong types and out-of-range values)",
    401: "Missing, unknown, revoked or expired API key (`invalid_api_key`)",
    402: "Insufficient balance (`insufficient_balance`)",
    403: "The key may not do this (`permission_denied`, `model_not_allowed`, `spend_cap_reached`)",
    404: "Not found (`not_found`, `model_not_found`)",
    405: "Method not allowed on this path (`method_not_allowed`)",
    409: "Clashes with what is stored (`account_name_taken`: another account has this name)",
    413: "The request body is larger than `max_body_bytes` (`payload_too_large`)",
    429: "Rate limited (`rate_limit_exceeded`, `upstream_rate_limited`), with Retry-After",
    502: "An upstream provider failed (`upstream_error`, `upstream_unavailable`; `upstream_auth_failed`, "
         "`upstream_quota_exhausted` (Router One's provider account) and `upstream_model_not_found` (a "
         "deployment's upstream model name) come with `x-should-retry: false`)",
    503: "A dependency is unavailable (database, upstream overloaded), with Retry-After when known",
    504: "An upstream provider timed out (`upstream_timeout`)",
}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def path_parameter(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def query_parameters(model) -> list[dict]:
    """Query parameters from a pydantic model of wire.admin (a null branch is dropped: a query
    string has no null)."""
    props = model.model_json_schema()["properties"]
    out = []
    for name, schema in props.items():
        schema = dict(schema)
        if "anyOf" in schema:
            branches = [s for s in schema.pop("anyOf") if s.get("type") != "null"]
            schema.update(branches[0] if len(branches) == 1 else {"anyOf": branches})
        schema.pop("title", None)
        description = schema.pop("description", "")
        schema.pop("default", None)
        out.append({"name": name, "in": "query", "required": False, "schema": schema, "description": description})
    return out


def operation(summary: str, tag: str, *, ok: dict | None, auth: str | None = "user", description: str = "",
              parameters: list[dict] | None = None, body: dict | None = None, body_required: bool = True,
              errors: tuple[int, ...] = (400, 401), ok_description: str = "OK",
              ok_content: dict | None = None, operation_id: str | None = None,
              error_schema: dict | None = None) -> dict:
    """One operation. `ok` is the JSON schema of the 200 body (or give `ok_content` for another
    media type); `auth` is "user" (any key), "admin" (an admin key) or None (public);
    `error_schema` replaces the seed's Error for a protocol with its own error shape."""
    op: dict[str, Any] = {"summary": summary, "tags": [tag]}
    if operation_id:
        op["operationId"] = operation_id
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": json_content(body)}
    responses: dict[str, Any] = {"200": {"description": ok_description,
                                         "content": ok_content if ok_content is not None else json_content(ok or {})}}
    codes = set(errors) | ({401} if auth else set()) | ({403} if auth == "admin" else set())
    for code in sorted(codes):
        responses[str(code)] = {"description": ERROR_DESCRIPTIONS[code],
                                "content": json_content(error_schema or ref("Error"))}
    op["responses"] = responses
    op["security"] = [{"bearer": []}] if auth else []
    if auth == "admin":
        op["x-routerone-auth"] = "admin"
    return op

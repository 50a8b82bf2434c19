"""The admin API (an admin key): accounts and money, keys, usage, audit, deployment health.

Request bodies and query strings are the JSON Schemas of wire.admin's models, the ones the
handlers validate with, so this reference cannot drift from what the API accepts.
"""
from __future__ import annotations

from pydantic.json_schema import models_json_schema

from ...services.accounts import AUDIT_SCAN_MAX
from ...store.bounds import MAX_AMOUNT_MICROS, MAX_BALANCE_MICROS
from ...wire.admin import (BODY_MODELS, MAX_ID, AccountCreate, AccountUpdate, AuditQueryParams, BalanceChange,
                           KeyCreate, KeysQuery, KeyUpdate, ListQuery, UsageQueryParams)
from .common import nullable, operation, path_parameter, query_parameters, ref

TAG = "Admin API"
TAGS = [{"name": TAG, "description": (
    "Needs an admin key. Bodies are strict: unknown fields, wrong JSON types (a boolean is not an "
    "integer, \"5\" is not a number, 1.5 is not an integer) and out-of-range values are a 400 whose `param` names the field. "
    f"Money is integer micro-dollars (`*_micros`) or US dollars (`*_usd`: a decimal string such as "
    f"\"12.50\" or a number, exact to the micro-dollar; finer amounts are refused, never rounded). One "
    f"credit or debit moves at most ${MAX_AMOUNT_MICROS // 10**6:,} and a balance never exceeds "
    f"${MAX_BALANCE_MICROS // 10**6:,}. Every change is recorded in the audit log (GET /admin/audit) "
    "with the admin key that made it.")}]

_INT = {"type": "integer"}
_INT_OR_NULL = {"type": ["integer", "null"]}
_LIMITS = {"type": "object", "properties": {"rpm": _INT_OR_NULL, "tpm": _INT_OR_NULL, "concurrency": _INT_OR_NULL}}


def _data(schema: dict) -> dict:
    return {"type": "object", "required": ["data"], "properties": {"data": schema}}


def _list(name: str) -> dict:
    return _data({"type": "array", "items": ref(name)})


_, _defs = models_json_schema([(m, "validation") for m in BODY_MODELS], ref_template="#/components/schemas/{model}")
SCHEMAS = {**_defs["$defs"],
           "AdminAccount": {"type": "object", "required": ["id", "name", "balance_micros", "available_micros"],
                            "properties": {
                                "id": _INT, "name": {"type": "string"}, "balance_micros": _INT,
                                "reserved_micros": _INT, "available_micros": _INT, "spent_micros": _INT,
                                "markup_bps": _INT, "limits": _LIMITS, "created_at": {"type": "number"}}},
           "AdminKey": {"type": "object", "required": ["id", "account_id", "prefix", "role", "revoked"],
                        "properties": {
                            "id": _INT, "account_id": _INT, "prefix": {"type": "string",
                                                                       "description": "for display; not the key"},
                            "name": {"type": "string"}, "role": {"enum": ["user", "admin"]},
                            "revoked": {"type": "boolean"}, "expires_at": {"type": ["number", "null"]},
                            "spend_cap_micros": _INT_OR_NULL, "spent_micros": _INT, "reserved_micros": _INT,
                            "allowed_models": {"type": "array", "items": {"type": "string"}},
                            "limits": _LIMITS, "strategy": {"type": ["string", "null"]},
                            "willingness_to_pay": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                            "created_at": {"type": "number"}}},
           "IssuedKey": {"allOf": [ref("AdminKey"), {
               "type": "object", "required": ["key"],
               "properties": {"key": {"type": "string", "description": "the secret: shown once, stored hashed"}}}]},
           "LedgerEntry": {"type": "object", "required": ["id", "account_id", "amount_micros", "kind"], "properties": {
               "id": _INT, "account_id": _INT, "amount_micros": {**_INT, "description": "+ credit, - debit or charge"},
               "kind": {"enum": ["credit", "debit", "charge"]}, "note": {"type": "string"},
               "request_id": {"type": ["string", "null"]}, "created_at": {"type": "number"},
               "actor": {"type": "string", "description": "who made a credit or debit ('' for charges)"}}},
           "UsageRecord": {"type": "object", "required": ["request_id", "key_id", "account_id", "cost_micros"],
                           "description": "one request: models, provider, tokens, cost, latency, status"},
           "AuditEntry": {"type": "object", "required": ["id", "created_at", "actor", "action", "target", "detail"],
                          "properties": {
                              "id": _INT, "created_at": {"type": "number"},
                              "actor": {"type": "string", "description": '"admin-key:<id>", "cli", "console:<email>", "system"'},
                              "action": {"type": "string", "description": "account.create|update|credit|debit, "
                                                                          "key.create|update|revoke"},
                              "target": {"type": "string", "description": '"account:<id>" or "key:<id>"'},
                              "detail": {"type": "string", "description": "JSON text of what changed (never a secret)"}}},
           }

_ID = [path_parameter("id", {"type": "integer", "minimum": 1, "maximum": MAX_ID})]
_ACCOUNT, _KEY = _data(ref("AdminAccount")), _data(ref("AdminKey"))


def _op(summary: str, *, ok: dict, errors: tuple[int, ...] = (400,), **kw) -> dict:
    return operation(summary, TAG, ok=ok, auth="admin", errors=errors, **kw)


PATHS = {
    "/admin/accounts": {
        "get": _op("List accounts", ok=_list("AdminAccount"), operation_id="listAccounts"),
        "post": _op("Create an account", ok=_ACCOUNT, body=ref(AccountCreate.__name__), operation_id="createAccount",
                    errors=(400, 409),
                    description="An opening balance (`balance_micros` or `balance_usd`) is credited with the "
                                "note 'initial balance'. A name another account has (ignoring case and "
                                "surrounding spaces) is a 409 `account_name_taken`.")},
    "/admin/accounts/{id}": {
        "get": _op("Get an account", ok=_ACCOUNT, parameters=_ID, errors=(400, 404), operation_id="getAccount"),
        "patch": _op("Change an account's markup or limits", ok=_ACCOUNT, parameters=_ID, errors=(400, 404),
                     body=ref(AccountUpdate.__name__), operation_id="updateAccount",
                     description="Only the fields given change; `null` removes a limit.")},
    "/admin/accounts/{id}/credit": {"post": _op(
        "Credit an account", ok=_ACCOUNT, parameters=_ID, errors=(400, 404), body=ref(BalanceChange.__name__),
        operation_id="creditAccount")},
    "/admin/accounts/{id}/debit": {"post": _op(
        "Debit an account", ok=_ACCOUNT, parameters=_ID, errors=(400, 404), body=ref(BalanceChange.__name__),
        operation_id="debitAccount", description="Refused (400) beyond the available balance (balance - holds).")},
    "/admin/accounts/{id}/ledger": {"get": _op(
        "An account's ledger, newest first", ok=_list("LedgerEntry"), errors=(400, 404), operation_id="getLedger",
        parameters=_ID + query_parameters(ListQuery))},
    "/admin/keys": {
        "get": _op("List keys, oldest first", parameters=query_parameters(KeysQuery), operation_id="listKeys",
                   description="A page of `limit` keys (100 by default). Page with `after_id` = the previous page's "
                               "`next_after_id`, to the newest key (`next_after_id` null).",
                   ok={"type": "object", "required": ["data", "next_after_id"], "properties": {
                       "data": {"type": "array", "items": ref("AdminKey")}, "next_after_id": nullable(_INT)}}),
        "post": _op("Create a key", ok=_data(ref("IssuedKey")), errors=(400, 404), body=ref(KeyCreate.__name__),
                    operation_id="createKey", description="The reply's `key` is the secret, shown this once.")},
    "/admin/keys/{id}": {
        "get": _op("Get a key", ok=_KEY, parameters=_ID, errors=(400, 404), operation_id="getKey"),
        "patch": _op("Change a key's name, limits, spend cap, allowlist, expiry, strategy or willingness to pay",
                     ok=_KEY, parameters=_ID, errors=(400, 404), body=ref(KeyUpdate.__name__), operation_id="updateKey",
                     description="Only the fields given change; `null` removes a limit, the spend cap or the expiry and puts `strategy` or "
                                 "`willingness_to_pay` back to the gateway's default; `allowed_models: []` "
                                 "lifts the restriction. The secret stays the same; requests see the change "
                                 "as they see a revocation.")},
    "/admin/keys/{id}/revoke": {"post": _op(
        "Revoke a key", ok=_data({"type": "object", "required": ["revoked"], "properties": {
            "revoked": {"type": "boolean", "description": "false when it already was"}}}),
        parameters=_ID, errors=(400, 404), body=ref("Empty"), body_required=False, operation_id="revokeKey",
        description="Takes effect at once in this process, within a second in every other.")},
    "/admin/usage": {"get": _op(
        "Usage records and totals", operation_id="getUsage", parameters=query_parameters(UsageQueryParams),
        ok={"type": "object", "required": ["data", "totals"], "properties": {
            "data": {"type": "array", "items": ref("UsageRecord")},
            "totals": {"type": "object", "properties": {"requests": _INT, "prompt_tokens": _INT,
                                                        "completion_tokens": _INT, "cost_micros": _INT}}}})},
    "/admin/audit": {"get": _op(
        "The audit log, newest first", operation_id="getAudit", parameters=query_parameters(AuditQueryParams),
        description="Who changed what and when. Page with `before_id` = the previous page's `next_before_id`, "
                    "back to the first entry (`next_before_id` null). Filtered by `actor`, `action` or `since`, "
                    f"a page reads at most {AUDIT_SCAN_MAX:,} entries and may hold fewer than `limit` (or none): go on "
                    "while `next_before_id` is not null.",
        ok={"type": "object", "required": ["data", "next_before_id"], "properties": {
            "data": {"type": "array", "items": ref("AuditEntry")}, "next_before_id": nullable(_INT)}})},
    "/admin/health": {"get": _op(
        "Deployment health as the router sees it", operation_id="getHealth",
        ok=_data({"type": "object", "additionalProperties": {"type": "object"}}))},
}

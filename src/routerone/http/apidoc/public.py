"""The public surface: chat completions, models, the caller's account, health, metrics, these docs."""
from __future__ import annotations

from .common import operation, path_parameter, ref

TAG = "OpenAI-compatible API"
OPS_TAG = "Operations"
TAGS = [{"name": TAG, "description": "What an OpenAI SDK talks to: `base_url=http://HOST:PORT/v1` and a "
                                     "Router One key (`Authorization: Bearer sk-ro-...`)."},
        {"name": OPS_TAG, "description": "Health, metrics and this reference (no key needed)."}]

_NUM = {"type": ["number", "null"]}
_MESSAGE = {
    "type": "object", "required": ["role"],
    "description": "A chat message. `content` is required except on an assistant message with `tool_calls`; "
                   "a `tool` message needs `tool_call_id`. Unknown fields are passed upstream as received.",
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
        "content": {"anyOf": [{"type": "string"}, {"type": "null"}, {
            "type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["type"],
                "properties": {"type": {"enum": ["text", "image_url", "input_audio", "file", "refusal"]},
                               "text": {"type": "string"}}}}]},
        "name": {"type": ["string", "null"]},
        "tool_call_id": {"type": "string"},
        "tool_calls": {"type": ["array", "null"], "items": {
            "type": "object", "required": ["id", "function"],
            "properties": {"id": {"type": "string"}, "type": {"const": "function"},
                           "function": {"type": "object", "required": ["name", "arguments"],
                                        "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}}}}}},
    },
}

SCHEMAS = {
    "ChatCompletionRequest": {
        "type": "object", "required": ["model", "messages"],
        "description": "OpenAI's chat-completions request. The fields below are checked; every other "
                       "OpenAI field is type-checked when present and passed through, as are unknown fields.",
        "properties": {
            "model": {"type": "string", "minLength": 1, "examples": ["auto"],
                      "description": "a model id from GET /v1/models, `provider/model`, or `auto` (Router One picks)"},
            "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
            "models": {"type": "array", "items": {"type": "string"},
                       "description": "fallback models, tried in order after `model` (OpenRouter style)"},
            "route": {"type": ["string", "null"], "description": "routing strategy for `auto` (balanced, quality, cost, latency)"},
            "temperature": {**_NUM, "minimum": 0, "maximum": 2},
            "top_p": {**_NUM, "minimum": 0, "maximum": 1},
            "frequency_penalty": {**_NUM, "minimum": -2, "maximum": 2},
            "presence_penalty": {**_NUM, "minimum": -2, "maximum": 2},
            "max_tokens": {"type": ["integer", "null"], "minimum": 1},
            "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
            "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 128},
            "stream": {"type": ["boolean", "null"], "description": "true: server-sent events, ending with `data: [DONE]`"},
            "stream_options": {"type": ["object", "null"], "description": "only with stream: true",
                               "properties": {"include_usage": {"type": ["boolean", "null"]}}},
            "stop": {"anyOf": [{"type": "string"}, {"type": "null"},
                               {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 4}]},
            "tools": {"type": ["array", "null"], "items": {"type": "object", "required": ["type"],
                                                           "properties": {"type": {"enum": ["function", "custom"]}}}},
            "response_format": {"type": ["object", "null"], "required": ["type"], "properties": {
                "type": {"enum": ["text", "json_object", "json_schema"]}}},
            "user": {"type": ["string", "null"]},
        },
    },
    "ChatCompletion": {
        "type": "object", "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "id": {"type": "string"}, "object": {"const": "chat.completion"}, "created": {"type": "integer"},
            "model": {"type": "string", "description": "the model that answered"},
            "choices": {"type": "array", "items": {"type": "object", "required": ["index", "message", "finish_reason"]}},
            "usage": {"type": "object", "properties": {
                "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"},
                "total_tokens": {"type": "integer"},
                "cost": {"type": "number", "description": "what this request was charged, in USD"}}},
        },
    },
    "Model": {"type": "object", "required": ["id", "object", "created", "owned_by"], "properties": {
        "id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"},
        "owned_by": {"type": "string", "description": "the provider (`routerone` for auto)"}}},
    "ModelList": {"type": "object", "required": ["object", "data"], "properties": {
        "object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}}},
    "KeyAccount": {"type": "object", "required": ["data"], "properties": {"data": {
        "type": "object", "required": ["account_id", "key_id", "balance_micros", "available_micros"],
        "properties": {
            "account_id": {"type": "integer"}, "key_id": {"type": "integer"}, "label": {"type": "string"},
            "key_prefix": {"type": "string"}, "balance_micros": {"type": "integer"}, "balance": {"type": "number"},
            "available_micros": {"type": "integer"}, "spent_micros": {"type": "integer"},
            "key_spent_micros": {"type": "integer"}, "spend_cap_micros": {"type": ["integer", "null"]},
            "expires_at": {"type": ["number", "null"]}, "allowed_models": {"type": "array", "items": {"type": "string"}},
            "limits": {"type": "object"}, "is_admin": {"type": "boolean"}}}}},
}

PATHS = {
    "/v1/chat/completions": {"post": operation(
        "Create a chat completion", TAG, ok=ref("ChatCompletion"), body=ref("ChatCompletionRequest"),
        operation_id="createChatCompletion",
        description="OpenAI-compatible. `model: \"auto\"` lets Router One choose; the response headers "
                    "`x-routerone-model`, `-provider`, `-strategy`, `-reason`, `-fallbacks`, `-cost` say what "
                    "happened. With `stream: true` the reply is `text/event-stream`. The body must be "
                    "`Content-Type: application/json`.",
        ok_content={"application/json": {"schema": ref("ChatCompletion")},
                    "text/event-stream": {"schema": {"type": "string"}}},
        errors=(400, 402, 403, 404, 413, 429, 502, 503, 504))},
    "/v1/models": {"get": operation(
        "List the models this key may use", TAG, ok=ref("ModelList"), errors=(), operation_id="listModels",
        description="The configured models on the key's allowlist (all of them when it has none), and `auto` "
                    "(which routes among exactly those) when there is at least one.")},
    "/v1/models/{model}": {"get": operation(
        "Retrieve a model", TAG, ok=ref("Model"), errors=(404,), operation_id="retrieveModel",
        parameters=[path_parameter("model", {"type": "string", "minLength": 1},
                                   "a model id, `provider/model`, an alias, or `auto`")],
        description="404 `model_not_found` for an id that is unknown, not configured, or not allowed for this key.")},
    "/v1/account": {"get": operation(
        "The caller's key and account", TAG, ok=ref("KeyAccount"), errors=(), operation_id="getOwnAccount",
        description="Balance, spend, limits and allowlist of the key in the Authorization header.")},
    "/healthz": {"get": operation(
        "Liveness", OPS_TAG, auth=None, errors=(), ok={"type": "object", "required": ["status"],
                                                         "properties": {"status": {"type": "string"}}})},
    "/metrics": {"get": operation(
        "Prometheus metrics", OPS_TAG, auth=None, errors=(), ok=None,
        ok_content={"text/plain": {"schema": {"type": "string"}}})},
    "/openapi.json": {"get": operation(
        "This reference, as OpenAPI 3.1", OPS_TAG, auth=None, errors=(), ok={"type": "object"})},
    "/docs": {"get": operation(
        "This reference, as an HTML page", OPS_TAG, auth=None, errors=(), ok=None,
        ok_content={"text/html": {"schema": {"type": "string"}}})},
}

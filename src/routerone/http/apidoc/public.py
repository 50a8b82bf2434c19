"""The public surface: chat completions, models, the caller's account, health, metrics, these docs."""
from __future__ import annotations

from .common import operation, path_parameter, ref

TAG = "OpenAI-compatible API"
OPS_TAG = "Operations"
TAGS = [{"name": TAG, "description": "What an OpenAI SDK talks to: `base_url=http://HOST:PORT/v1` and a "
                                     "Router One key (`Authorization: Bearer sk-ro-...`)."},
        {"name": OPS_TAG, "description": "Health, metrics and this reference (no key needed)."}]

_NUM = {"type": ["number", "null"]}
_TEXT_PART = {"type": "object", "required": ["type", "text"],
              "properties": {"type": {"const": "text"}, "text": {"type": "string"}}}
_USER_PART = {"anyOf": [
    _TEXT_PART,
    {"type": "object", "required": ["type", "image_url"], "properties": {
        "type": {"const": "image_url"},
        "image_url": {"type": "object", "required": ["url"], "properties": {"url": {"type": "string", "minLength": 1}}}}},
    {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["input_audio", "file"]}}}]}
_ASSISTANT_PART = {"anyOf": [_TEXT_PART, {"type": "object", "required": ["type", "refusal"], "properties": {
    "type": {"const": "refusal"}, "refusal": {"type": "string"}}}]}
_TOOL_CALL = {"type": "object", "required": ["id", "function"], "properties": {
    "id": {"type": "string"}, "type": {"const": "function"},
    "function": {"type": "object", "required": ["name", "arguments"],
                 "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}}}}}
_NAME = {"name": {"type": ["string", "null"]}}


def _text_or(parts: dict) -> dict:
    return {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": parts}]}


_MESSAGE = {
    "description": "A chat message, by role. Unknown fields are passed upstream as received.",
    "anyOf": [
        {"type": "object", "required": ["role", "content"], "properties": {
            "role": {"enum": ["system", "developer"]}, "content": _text_or(_TEXT_PART), **_NAME}},
        {"type": "object", "required": ["role", "content"], "properties": {
            "role": {"const": "user"}, "content": _text_or(_USER_PART), **_NAME}},
        {"type": "object", "required": ["role", "content"], "properties": {
            "role": {"const": "assistant"}, **_NAME, "tool_calls": {"type": ["array", "null"], "items": _TOOL_CALL},
            "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": _ASSISTANT_PART}]}}},
        {"type": "object", "required": ["role", "tool_calls"], "properties": {
            "role": {"const": "assistant"}, **_NAME, "content": {"type": "null"},
            "tool_calls": {"type": "array", "minItems": 1, "items": _TOOL_CALL}}},
        {"type": "object", "required": ["role", "content", "tool_call_id"], "properties": {
            "role": {"const": "tool"}, "content": _text_or(_TEXT_PART), "tool_call_id": {"type": "string"}}},
        {"type": "object", "required": ["role"], "properties": {
            "role": {"const": "function"}, "content": {"anyOf": [{"type": "null"}, _text_or(_TEXT_PART)]}, **_NAME}},
    ],
}
_TOOL = {"anyOf": [
    {"type": "object", "required": ["type", "function"], "properties": {
        "type": {"const": "function"},
        "function": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1}, "parameters": {"type": ["object", "null"]}}}}},
    {"type": "object", "required": ["type"], "properties": {"type": {"const": "custom"}}}]}
_STRINGS = ("user", "reasoning_effort", "service_tier", "safety_identifier", "prompt_cache_key")
_OBJECTS = ("logit_bias", "metadata", "prediction", "audio", "web_search_options")
_BOOLS = ("logprobs", "parallel_tool_calls", "store")

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
            "tools": {"type": ["array", "null"], "items": _TOOL},
            "tool_choice": {"anyOf": [{"enum": ["none", "auto", "required"]}, {"type": "object"}, {"type": "null"}]},
            "response_format": {"anyOf": [{"type": "null"}, {"type": "object", "required": ["type"], "properties": {
                "type": {"enum": ["text", "json_object", "json_schema"]}}}]},
            "seed": {"type": ["integer", "null"]},
            "top_logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": 20},
            **{k: {"type": ["string", "null"]} for k in _STRINGS},
            "reasoning_effort": {"type": ["string", "null"], "description": (
                "Anthropic: extended thinking, `thinking.budget_tokens` minimal/low 1024, medium 8192, high 24576, "
                "xhigh/max 32768, at most half of max_tokens (none: no thinking); Gemini: `thinkingBudget` with "
                "`includeThoughts` (none: a budget of 0). The "
                "reasoning text comes back as the non-standard `message.reasoning_content` / "
                "`delta.reasoning_content` (LiteLLM's and DeepSeek's field), its tokens in "
                "`usage.completion_tokens` and `completion_tokens_details.reasoning_tokens`; Anthropic's signed "
                "blocks as `thinking_blocks` (LiteLLM's field), which an assistant message sends back to keep "
                "thinking on in a tool loop")},
            **{k: {"type": ["object", "null"]} for k in _OBJECTS},
            **{k: {"type": ["boolean", "null"]} for k in _BOOLS},
        },
        "anyOf": [{"properties": {"stream_options": {"type": "null"}}},
                  {"required": ["stream"], "properties": {"stream": {"const": True}}}],
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
    "ChatCompletionEvent": {
        "type": "object", "required": ["data"],
        "description": "One server-sent event of a streamed completion: `data` holds a chat.completion.chunk "
                       "(JSON), an `{\"error\": ...}` object if the stream fails after it started (after a chunk "
                       "with finish_reason \"error\"), or the final `[DONE]`.",
        "properties": {"data": {"type": "string"}, "event": {"type": "string"}}},
    "Readiness": {"type": "object", "required": ["status"], "properties": {
        "status": {"enum": ["ready", "draining", "unready"]},
        "unreachable": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "with `unready`: {dependency (database, redis): `timeout` or the error's "
                                       "type name}"}}},
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

_readyz = operation(
    "Readiness", OPS_TAG, auth=None, errors=(), ok=ref("Readiness"), operation_id="readiness",
    description="200 `{\"status\": \"ready\"}` when the database (and, under the closed Redis failure policy, "
                "Redis) answers a ping within a second, and no other session holds a lock that would make "
                "requests' writes wait (the ping asks for those locks, writes nothing, and waits 250 ms); checks "
                "are shared and cached for one second. 503 `{\"status\": \"draining\"}` from the moment a "
                "drain starts (SIGTERM), or `{\"status\": \"unready\", \"unreachable\": {\"database\": "
                "\"timeout\"}}` naming each dependency that did not answer and the kind of failure (`timeout`, "
                "`locked`, or the error's type). Neither 503 is the error shape: a load balancer reads `status`.")
_readyz["responses"]["503"] = {"description": "Not ready: draining, or a dependency is unreachable or locked",
                               "content": {"application/json": {"schema": ref("Readiness")}}}

PATHS = {
    "/v1/chat/completions": {"post": operation(
        "Create a chat completion", TAG, ok=ref("ChatCompletion"), body=ref("ChatCompletionRequest"),
        operation_id="createChatCompletion",
        description="OpenAI-compatible. `model: \"auto\"` lets Router One choose; the response headers "
                    "`x-routerone-model`, `-provider`, `-strategy`, `-reason`, `-fallbacks`, `-cost` say what "
                    "happened. With `stream: true` the reply is `text/event-stream`. The body must be "
                    "`Content-Type: application/json`.",
        ok_content={"application/json": {"schema": ref("ChatCompletion")},
                    "text/event-stream": {"schema": ref("ChatCompletionEvent")}},
        errors=(400, 402, 403, 404, 413, 429, 502, 503, 504))},
    "/v1/models": {"get": operation(
        "List the models this key may use", TAG, ok=ref("ModelList"), errors=(), operation_id="listModels",
        description="The configured models on the key's allowlist (all of them when it has none), and `auto` "
                    "(which routes among exactly those) when there is at least one. A client that sends "
                    "`anthropic-version` gets Anthropic's shape: `{data: [ModelInfo], first_id, last_id, "
                    "has_more}`, paged by `limit` (1..1000, default 20), `after_id`, `before_id`.")},
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
    "/readyz": {"get": _readyz},
    "/metrics": {"get": operation(
        "Prometheus metrics", OPS_TAG, auth=None, errors=(), ok=None,
        ok_content={"text/plain": {"schema": {"type": "string"}}})},
    "/openapi.json": {"get": operation(
        "This reference, as OpenAPI 3.1", OPS_TAG, auth=None, errors=(), ok={"type": "object"})},
    "/docs": {"get": operation(
        "This reference, as an HTML page", OPS_TAG, auth=None, errors=(), ok=None,
        ok_content={"text/html": {"schema": {"type": "string"}}})},
}

"""The other client protocols: Anthropic Messages (`/v1/messages`, `/count_tokens`), OpenAI
Responses (`/v1/responses`, get and delete by id, input_items, cancel, input_tokens) and Embeddings
(`/v1/embeddings`).

The request schemas say what Router One itself checks (wire/messages.py, wire/responses.py,
wire/embeddings.py, then the chat rules of wire/chat.py on the translation), no more: every other
field of the vendors' specs is accepted (passed to an Anthropic upstream as sent, or dropped when
translating), so no body is closed with `additionalProperties: false`. A constraint here is one
the gateway enforces with a 400; the vendors' own specs (../shared/specs) describe the rest.
"""
from __future__ import annotations

from ...wire.responses_items import INCLUDABLE
from .common import nullable, operation, path_parameter, ref

MESSAGES_TAG = "Anthropic Messages API"
RESPONSES_TAG = "OpenAI Responses and Embeddings"
TAGS = [{"name": MESSAGES_TAG, "description": "What Claude Code and the `anthropic` SDK talk to "
                                              "(`ANTHROPIC_BASE_URL=http://HOST:PORT`): the key in `x-api-key` or "
                                              "`Authorization: Bearer`, errors in Anthropic's shape."},
        {"name": RESPONSES_TAG, "description": "OpenAI's Responses API (Codex CLI) and embeddings, errors in the "
                                               "seed's shape."}]

_STR = {"type": "string"}
_NONEMPTY = {"type": "string", "minLength": 1}
_OBJ = {"type": "object"}
_ROUTER_FIELDS = {
    "models": {"type": ["array", "null"], "items": _STR, "description": "fallback models, tried in order"},
    "route": {"type": ["string", "null"], "description": "routing strategy for `auto`"},
}


def _block(kind: str, **props: dict) -> dict:
    """A content block of type `kind` whose `props` are required and checked."""
    return {"type": "object", "required": ["type", *props], "properties": {"type": {"const": kind}, **props}}


def _other_block(*checked: str) -> dict:
    """Any block of a type not in `checked` (dropped by the translation, kept by pass-through)."""
    return {"type": "object", "required": ["type"], "properties": {"type": {"not": {"enum": [*checked, None]}}}}


# -- Anthropic Messages -------------------------------------------------------------------------
_IMAGE_SOURCE = {"anyOf": [
    {"type": "object", "required": ["type", "media_type", "data"],
     "properties": {"type": {"const": "base64"}, "media_type": _STR, "data": _STR}},
    {"type": "object", "required": ["type", "url"], "properties": {"type": {"const": "url"}, "url": _NONEMPTY}}]}
_DOC_SOURCE = {"type": "object", "required": ["type", "data"],
               "properties": {"type": {"enum": ["base64", "text"]}, "data": _STR}}
_TEXT_BLOCK = _block("text", text=_STR)
_IMAGE_BLOCK = _block("image", source=_IMAGE_SOURCE)
_RESULT_CONTENT = {"anyOf": [_STR, {"type": "null"}, {"type": "array", "items": {"anyOf": [
    {"not": _OBJ}, _TEXT_BLOCK, _IMAGE_BLOCK, {"type": "object", "properties": {"type": {"not": {"enum": ["text", "image"]}}}}]}}]}
_USER_BLOCK = {"anyOf": [
    _TEXT_BLOCK, _IMAGE_BLOCK, _block("document", source=_DOC_SOURCE),
    {**_block("tool_result", tool_use_id=_STR), "properties": {"type": {"const": "tool_result"}, "tool_use_id": _STR,
                                                                "content": _RESULT_CONTENT}},
    _other_block("text", "image", "document", "tool_result")]}
_ASSISTANT_BLOCK = {"anyOf": [_TEXT_BLOCK, _block("tool_use", id=_STR, name=_STR, input=_OBJ),
                              _other_block("text", "tool_use")]}
_SYSTEM_ITEM = {"anyOf": [{"not": _OBJ}, _TEXT_BLOCK,
                          {"type": "object", "properties": {"type": {"not": {"const": "text"}}}}]}


def _turn(role: str, blocks: dict) -> dict:
    return {"type": "object", "required": ["role", "content"], "properties": {
        "role": {"const": role}, "content": {"anyOf": [_STR, {"type": "array", "items": blocks}]}}}


_ANTHROPIC_TOOL = {"anyOf": [
    {"type": "object", "required": ["name", "input_schema"], "properties": {
        "type": {"enum": ["custom", None]}, "name": _NONEMPTY, "input_schema": _OBJ}},
    {"type": "object", "required": ["type"], "description": "a server or versioned tool (bash_..., web_search_...): "
                                                            "passed to an Anthropic upstream, dropped otherwise",
     "properties": {"type": {"not": {"enum": ["custom", None]}}}}]}
_TOOL_CHOICE = {"anyOf": [{"type": "null"},
                          {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["auto", "any", "none"]}}},
                          {"type": "object", "required": ["type", "name"],
                           "properties": {"type": {"const": "tool"}, "name": _STR}}]}


def _messages_request(count_only: bool) -> dict:
    props = {
        "model": {**_NONEMPTY, "examples": ["auto"],
                  "description": "`auto`, a model id from GET /v1/models, or `provider/model`"},
        "messages": {"type": "array", "minItems": 1, "contains": {"type": "object", "properties": {"role": {"const": "user"}},
                                                                   "required": ["role"]},
                     "description": "user and assistant turns (a `system` turn is accepted too); at least one user turn",
                     "items": {"anyOf": [_turn("user", _USER_BLOCK), _turn("assistant", _ASSISTANT_BLOCK),
                                         _turn("system", _SYSTEM_ITEM)]}},
        "system": {"anyOf": [_STR, {"type": "null"}, {"type": "array", "items": _SYSTEM_ITEM}]},
        "max_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "stop_sequences": {"type": ["array", "null"], "items": _STR, "maxItems": 4,
                           "description": "at most 4 (what every upstream accepts)"},
        "stream": {"type": ["boolean", "null"], "description": "true: server-sent events (Anthropic's event sequence)"},
        "tools": {"type": ["array", "null"], "items": _ANTHROPIC_TOOL},
        "tool_choice": _TOOL_CHOICE,
        **_ROUTER_FIELDS,
    }
    return {"type": "object", "required": ["model", "messages"] + ([] if count_only else ["max_tokens"]),
            "properties": props,
            "description": "Anthropic's `CreateMessageParams`. The fields below are checked; every other field "
                           "(`thinking`, `cache_control`, `metadata`, `top_k`, beta fields, ...) is accepted: an "
                           "Anthropic upstream receives the body as sent, other upstreams get a translation "
                           "(text, images, PDFs, tools and tool results, system blocks)."
                           + (" `max_tokens` is optional here." if count_only else "")}


_ANTHROPIC_ERROR_TYPES = ["invalid_request_error", "authentication_error", "billing_error", "permission_error",
                          "not_found_error", "request_too_large", "rate_limit_error", "api_error",
                          "overloaded_error", "timeout_error"]
_MESSAGE_EVENTS = ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                   "message_delta", "message_stop", "ping", "error"]
_RESPONSE_EVENTS = ["response.created", "response.in_progress", "response.output_item.added",
                    "response.content_part.added", "response.output_text.delta", "response.output_text.done",
                    "response.content_part.done", "response.output_item.done",
                    "response.function_call_arguments.delta", "response.function_call_arguments.done",
                    "response.refusal.delta", "response.refusal.done",
                    "response.reasoning_text.delta", "response.reasoning_text.done",
                    "response.completed", "response.incomplete", "response.failed"]


def _event(names: list[str], data_required: list[str], description: str) -> dict:
    """One server-sent event: `event:` names it, `data:` holds its JSON."""
    return {"type": "object", "required": ["event", "data"], "description": description, "properties": {
        "event": {"enum": names},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"type": "object", "required": data_required,
                                   "properties": {"type": {"enum": names}}}}}}


_USAGE_COST = {"cost": {"type": "number", "description": "what this request was charged, in USD (Router One's)"}}

# -- OpenAI Responses -------------------------------------------------------------------------
_TEXT_KINDS = ["input_text", "output_text", "text", "refusal"]
_TEXT_PART = {"type": "object", "required": ["type"], "properties": {"type": {"enum": _TEXT_KINDS}},
              "anyOf": [{"required": ["text"], "properties": {"text": _STR}},
                        {"required": ["refusal"], "properties": {"refusal": _STR}, "not": {"required": ["text"]}}]}
_INPUT_PART = {"anyOf": [_TEXT_PART, _block("input_image", image_url=_NONEMPTY), _block("input_file", file_data=_STR)]}
_MSG_TYPE = {"type": {"const": "message", "description": "may be left out"}}
_INPUT_ITEM = {"anyOf": [
    {"type": "object", "required": ["role", "content"], "properties": {
        **_MSG_TYPE, "role": {"const": "user"},
        "content": {"anyOf": [_STR, {"type": "array", "minItems": 1, "items": _INPUT_PART}]}}},
    {"type": "object", "required": ["role", "content"], "properties": {
        **_MSG_TYPE, "role": {"enum": ["system", "developer", "assistant"]},
        "content": {"anyOf": [_STR, {"type": "array", "items": _TEXT_PART}]}}},
    _block("function_call", call_id=_STR, name=_STR, arguments=_STR),
    _block("function_call_output", call_id=_STR, output={"anyOf": [_STR, {"type": "array", "items": {
        "type": "object", "required": ["text"], "description": "text parts only (a chat tool message holds text)",
        "properties": {"type": {"enum": ["input_text", "output_text", "text"]}, "text": _STR}}}]}),
    _block("reasoning")]}
_FUNCTION_TOOL = {"type": "object", "required": ["type", "name"], "properties": {
    "type": {"const": "function"}, "name": _NONEMPTY, "parameters": {"type": ["object", "null"]},
    "description": {}, "strict": {}}}

SCHEMAS = {
    "CreateMessageRequest": _messages_request(count_only=False),
    "CountTokensRequest": _messages_request(count_only=True),
    "Message": {
        "type": "object", "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
        "description": "Anthropic's `Message`; from an Anthropic upstream, its own message as it came.",
        "properties": {
            "id": _STR, "type": {"const": "message"}, "role": {"const": "assistant"},
            "model": {"type": "string", "description": "the model that answered"},
            "content": {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {
                "type": {"type": "string", "description": "text, tool_use, thinking, ..."}}}},
            "stop_reason": {"type": ["string", "null"]}, "stop_sequence": {"type": ["string", "null"]},
            "usage": {"type": "object", "required": ["input_tokens", "output_tokens"], "properties": {
                "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"},
                "cache_creation_input_tokens": {"type": ["integer", "null"]},
                "cache_read_input_tokens": {"type": ["integer", "null"]}, **_USAGE_COST}}}},
    "MessageStreamEvent": _event(_MESSAGE_EVENTS, ["type"],
                                 "One server-sent event of a streamed message, in Anthropic's order (message_start, "
                                 "ping, content blocks, message_delta with usage and `cost`, message_stop), or an "
                                 "`error` event if the stream fails after it started."),
    "MessageTokensCount": {"type": "object", "required": ["input_tokens"], "properties": {"input_tokens": {
        "type": "integer", "description": "Router One's estimate (o200k tokens plus framing), with no upstream call"}}},
    "AnthropicError": {
        "type": "object", "required": ["type", "error", "request_id"],
        "description": "Anthropic's `ErrorResponse`, for /v1/messages: the type follows the HTTP status; the message "
                       "ends with Router One's code in parentheses, e.g. `(insufficient_balance)`.",
        "properties": {
            "type": {"const": "error"},
            "error": {"type": "object", "required": ["type", "message"], "properties": {
                "type": {"enum": _ANTHROPIC_ERROR_TYPES}, "message": _STR}},
            "request_id": {"type": ["string", "null"]}}},
    "CreateResponseRequest": {
        "type": "object", "required": ["model", "input"],
        "description": "OpenAI's `CreateResponse`. The fields below are checked; `reasoning.effort` and "
                       "`text.verbosity` go on as chat's `reasoning_effort` and `verbosity` (each provider maps "
                       "or refuses them as on /v1/chat/completions). `conversation`, `prompt`, `moderation`, "
                       "`background: true` and `top_logprobs` > 0 are a 400 naming them, as are hosted tools "
                       "and item types other than those below; others (`include`, `reasoning.summary`, "
                       "`max_tool_calls`, `context_management`, `stream_options`, ...) are accepted and not "
                       "used.",
        "properties": {
            "model": {**_NONEMPTY, "examples": ["auto"]},
            "input": {"anyOf": [_STR, {"type": "array", "minItems": 1, "items": _INPUT_ITEM}]},
            "instructions": {"type": ["string", "null"], "description": "a system message (not carried over)"},
            "previous_response_id": nullable(_NONEMPTY),
            "max_output_tokens": {"type": ["integer", "null"], "minimum": 1},
            "stream": {"type": ["boolean", "null"], "description": "true: server-sent events (`response.*`)"},
            "store": {"type": ["boolean", "null"], "description": "false: not stored (no GET, no previous_response_id)"},
            "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
            "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "parallel_tool_calls": {"type": ["boolean", "null"]},
            **{k: {"type": ["string", "null"]} for k in ("user", "safety_identifier", "prompt_cache_key", "service_tier")},
            "metadata": {"type": ["object", "null"], "maxProperties": 16, "propertyNames": {"maxLength": 64},
                         "additionalProperties": {"type": "string", "maxLength": 512}},
            "truncation": {"enum": ["auto", "disabled", None], "description": "auto is not performed"},
            "reasoning": {"type": ["object", "null"], "properties": {"effort": {
                "enum": ["none", "minimal", "low", "medium", "high", "xhigh", "max", None]}}},
            **{k: {"type": "null", "description": "not supported: a 400"} for k in ("conversation", "prompt",
                                                                                   "moderation")},
            "background": {"enum": [False, None], "description": "true is not supported: a 400"},
            "top_logprobs": {"enum": [0, None], "description": "logprobs are not supported: a 400"},
            "tools": {"type": ["array", "null"], "items": _FUNCTION_TOOL, "description": "function tools only"},
            "tool_choice": {"anyOf": [{"type": "null"}, {"enum": ["auto", "none", "required"]},
                                      {"type": "object", "required": ["type", "name"],
                                       "properties": {"type": {"const": "function"}, "name": _STR}}]},
            "text": {"type": ["object", "null"], "properties": {
                "verbosity": {"enum": ["low", "medium", "high", None]},
                "format": {"properties": {"type": {"enum": [None, "text", "json_object", "json_schema"]}},
                           "if": {"properties": {"type": {"const": "json_schema"}}, "required": ["type"]},
                           "then": {"required": ["name", "schema"],
                                    "properties": {"name": _NONEMPTY, "schema": {"type": "object"}}}}}},
            **_ROUTER_FIELDS,
        }},
    "Response": {
        "type": "object", "required": ["id", "object", "created_at", "status", "model", "output"],
        "properties": {
            "id": _STR, "object": {"const": "response"}, "created_at": {"type": "integer"},
            "status": {"enum": ["completed", "incomplete", "failed", "in_progress"]}, "model": _STR,
            "output": {"type": "array", "description": (
                "A `reasoning` item (the model's reasoning text, from chat's `reasoning_content`: `content` of "
                "`reasoning_text` parts, `summary` empty) comes before the message it led to; sent back, it is "
                "dropped."), "items": {"type": "object", "required": ["type"], "properties": {
                "type": {"enum": ["reasoning", "message", "function_call"]}}}},
            "previous_response_id": {"type": ["string", "null"]},
            "usage": {"type": "object", "properties": {"input_tokens": {"type": "integer"},
                                                       "output_tokens": {"type": "integer"},
                                                       "total_tokens": {"type": "integer"}, **_USAGE_COST}}}},
    "ResponseStreamEvent": _event(_RESPONSE_EVENTS, ["type", "sequence_number"],
                                  "One server-sent event of a streamed response (OpenAI's semantic events; the last "
                                  "is response.completed, response.incomplete or response.failed)."),
    "ResponseDeleted": {"type": "object", "required": ["id", "object", "deleted"], "properties": {
        "id": _STR, "object": {"const": "response.deleted"}, "deleted": {"const": True}}},
    "ResponseItemList": {
        "type": "object", "required": ["object", "data", "first_id", "last_id", "has_more"],
        "description": "OpenAI's `ResponseItemList`: the items a response was generated from (the "
                       "previous_response_id chain's items, then its own input; not the instructions).",
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"type": "object", "required": ["id", "type"], "properties": {
                "id": _STR, "type": {"enum": ["message", "function_call", "function_call_output", "reasoning"]}}}},
            "first_id": {"type": ["string", "null"]}, "last_id": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"}}},
    "CountResponseTokensRequest": {
        "type": "object", "required": ["input"],
        "description": "OpenAI's `TokenCountsBody`, checked as CreateResponseRequest checks the same fields; "
                       "without `model`, counted as `auto`.",
        "properties": {"model": nullable(_NONEMPTY)}},
    "ResponseInputTokens": {"type": "object", "required": ["object", "input_tokens"], "properties": {
        "object": {"const": "response.input_tokens"}, "input_tokens": {"type": "integer", "minimum": 0}}},
    "CreateEmbeddingRequest": {
        "type": "object", "required": ["model", "input"],
        "description": "OpenAI's embeddings request; other fields are accepted and not used.",
        "properties": {
            "model": {**_NONEMPTY, "description": "a configured embedding model (`auto` is refused)",
                      "examples": ["text-embedding-3-small"]},
            "input": {"anyOf": [
                _NONEMPTY,
                {"type": "array", "minItems": 1, "maxItems": 2048, "items": _NONEMPTY},
                {"type": "array", "minItems": 1, "maxItems": 2048, "items": {"type": "integer", "minimum": 0}},
                {"type": "array", "minItems": 1, "maxItems": 2048,
                 "items": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}}]},
            "encoding_format": {"enum": ["float", "base64", None]},
            "dimensions": {"type": ["integer", "null"], "minimum": 1},
            "user": {"type": ["string", "null"]}}},
    "EmbeddingList": {
        "type": "object", "required": ["object", "data", "model", "usage"], "properties": {
            "object": {"const": "list"}, "model": _STR,
            "data": {"type": "array", "items": {"type": "object", "required": ["object", "index", "embedding"],
                                                "properties": {"object": {"const": "embedding"}, "index": {"type": "integer"},
                                                               "embedding": {"anyOf": [{"type": "array", "items": {"type": "number"}},
                                                                                       {"type": "string", "description": "base64 float32"}]}}}},
            "usage": {"type": "object", "required": ["prompt_tokens", "total_tokens"], "properties": {
                "prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}, **_USAGE_COST}}}},
}

# the input_tokens body: the CreateResponse fields it shares, checked the same way
SCHEMAS["CountResponseTokensRequest"]["properties"].update(
    {k: SCHEMAS["CreateResponseRequest"]["properties"][k] for k in (
        "input", "instructions", "previous_response_id", "tools", "tool_choice", "text", "reasoning", "truncation",
        "parallel_tool_calls", "conversation")})

_CALL_ERRORS = (400, 402, 403, 404, 413, 429, 502, 503, 504)
_ANTHROPIC = ref("AnthropicError")


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _either_key(op: dict) -> dict:
    """Anthropic clients send the key in `x-api-key`; Bearer works too."""
    op["security"] = [{"bearer": []}, {"x-api-key": []}]
    return op


PATHS = {
    "/v1/messages": {"post": _either_key(operation(
        "Create a message (Anthropic Messages API)", MESSAGES_TAG, ok=ref("Message"),
        body=ref("CreateMessageRequest"), operation_id="createMessage", errors=_CALL_ERRORS, error_schema=_ANTHROPIC,
        description="Anthropic-compatible, over the same keys, balance, limits and routing as chat completions "
                    "(`x-api-key` or `Authorization: Bearer`). `anthropic-version` and `anthropic-beta` are passed "
                    "to an Anthropic upstream. With `stream: true` the reply is `text/event-stream`. Every error is "
                    "Anthropic-shaped (see AnthropicError).",
        ok_content={"application/json": {"schema": ref("Message")},
                    "text/event-stream": {"schema": ref("MessageStreamEvent")}}))},
    "/v1/messages/count_tokens": {"post": _either_key(operation(
        "Count a message's input tokens", MESSAGES_TAG, ok=ref("MessageTokensCount"), body=ref("CountTokensRequest"),
        operation_id="countMessageTokens", errors=(400, 403, 404, 413, 503), error_schema=_ANTHROPIC,
        description="Router One's own estimate, with no upstream call and no charge. 404 for a model that is not "
                    "configured; 403 for one the key may not use."))},
    "/v1/responses": {"post": operation(
        "Create a response (OpenAI Responses API)", RESPONSES_TAG, ok=ref("Response"),
        body=ref("CreateResponseRequest"), operation_id="createResponse", errors=_CALL_ERRORS,
        description="Over every upstream (translated to chat where it has no Responses API). Stored per account "
                    "unless `store: false`; `previous_response_id` continues a stored response of the caller's "
                    "account (404 `previous_response_not_found` otherwise). With `responses_store = false` nothing "
                    "is stored (`\"store\": false` in every response) and `previous_response_id` is a 400 "
                    "`response_storage_disabled`.",
        ok_content={"application/json": {"schema": ref("Response")},
                    "text/event-stream": {"schema": ref("ResponseStreamEvent")}})},
    "/v1/responses/{id}": {
        "get": operation("Retrieve a stored response", RESPONSES_TAG, ok=ref("Response"), errors=(400, 404, 503),
                         operation_id="getResponse",
                         parameters=[path_parameter("id", _STR, "a response id (resp_...) of the caller's account"),
                                     {"name": "stream", "in": "query", "required": False, "schema": {"type": "string"},
                                      "description": "true (replaying the events) is not supported: a 400"}],
                         description="404 for an id that is unknown, deleted, not stored, or another account's; "
                                     "400 `response_storage_disabled` when the server stores none "
                                     "(`responses_store = false`)."),
        "delete": operation("Delete a stored response", RESPONSES_TAG, ok=ref("ResponseDeleted"), errors=(404, 503),
                            operation_id="deleteResponse",
                            parameters=[path_parameter("id", _STR, "a response id (resp_...) of the caller's account")]),
        "post": operation(
            "Not supported: compact", RESPONSES_TAG, ok=None, errors=(404,), ok_description="never",
            operation_id="responsesNotSupported", parameters=[path_parameter("id", _STR, "compact")],
            description="The openai SDK's `responses.compact`: always a 404 `not_supported`.")},
    "/v1/responses/{id}/input_items": {"get": operation(
        "List a stored response's input items", RESPONSES_TAG, ok=ref("ResponseItemList"), errors=(400, 404, 503),
        operation_id="listInputItems",
        parameters=[path_parameter("id", _STR, "a response id (resp_...) of the caller's account"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "1 to 100, default 20"),
                    _query("order", {"enum": ["asc", "desc"]}, "desc (the default): newest first"),
                    _query("after", _STR, "an item id: the items after it (a 400 if the list has no such id)"),
                    _query("before", _STR, "an item id: the items just before it (a 400 if the list has no such id)"),
                    _query("include", {"type": "array", "items": {"enum": list(INCLUDABLE)}},
                           "OpenAI's IncludeEnum values; items are returned as stored")],
        description="404 for an id that is unknown, deleted, not stored, or another account's; 400 "
                    "`response_storage_disabled` when the server stores none (`responses_store = false`).")},
    "/v1/responses/{id}/cancel": {"post": operation(
        "Cancel a response (never possible)", RESPONSES_TAG, ok=None, errors=(400, 404), ok_description="never",
        operation_id="cancelResponse",
        parameters=[path_parameter("id", _STR, "a response id (resp_...) of the caller's account")],
        description="Only background responses can be cancelled and Router One makes none: the caller's "
                    "stored response gets OpenAI's 400 \"Cannot cancel a synchronous response.\" (param and "
                    "code null); any other id a 404; with `responses_store = false`, a 400 "
                    "`response_storage_disabled`.")},
    "/v1/responses/input_tokens": {"post": operation(
        "Count a response request's input tokens", RESPONSES_TAG, ok=ref("ResponseInputTokens"),
        body=ref("CountResponseTokensRequest"), operation_id="countResponseInputTokens",
        errors=(400, 403, 404, 413, 503),
        description="Router One's own count (o200k tokens of the text, the previous_response_id chain, "
                    "instructions and tools included, plus per-message framing and a flat estimate per image), "
                    "with no upstream call and no charge. 404 for a model that is not configured or a "
                    "previous_response_id not found; 403 for a model the key may not use.")},
    "/v1/embeddings": {"post": operation(
        "Create embeddings", RESPONSES_TAG, ok=ref("EmbeddingList"), body=ref("CreateEmbeddingRequest"),
        operation_id="createEmbedding", errors=_CALL_ERRORS,
        description="OpenAI-compatible and Gemini upstreams; billed on input tokens at catalog prices (`usage.cost`, "
                    "`x-routerone-cost`). 400 for a chat model, `auto`, or `dimensions` the model cannot return.")},
}

"""OpenAI Responses (`POST /v1/responses`) <-> the internal chat pipeline. Pure data in, data out.

Inbound, `responses_to_chat(body, prior)` turns a `CreateResponse` body (plus the stored items of
the `previous_response_id` chain, `prior`) into a chat-completions body:

| Responses                                        | chat                                           |
|--------------------------------------------------|------------------------------------------------|
| `instructions`                                   | a leading `system` message (not carried over)  |
| `input` string                                   | one user message                               |
| message item (user/system/developer/assistant)   | a message (developer -> system); parts         |
|   `input_text` / `output_text`, `input_image`,   |   text, `image_url`, `file`                    |
|   `input_file`                                   |                                                |
| `function_call` items                            | `tool_calls` of one assistant message          |
| `function_call_output` item                      | a `tool` message                               |
| `reasoning` items                                | dropped (wire/responses_reasoning.py)          |
| function `tools`, `tool_choice`                  | function tools, auto/none/required/named       |
| `max_output_tokens`, `temperature`, `top_p`,     | `max_tokens`, `temperature`, `top_p`,          |
| `parallel_tool_calls`, `user`, `text.format`     | `parallel_tool_calls`, `user`, `response_format`|
| `safety_identifier`, `service_tier`, `metadata`, | the same (each provider passes, maps or drops  |
| `prompt_cache_key/_retention/_options`           | them as on /v1/chat/completions)               |
| `text.verbosity`, `reasoning.effort`             | `verbosity`, `reasoning_effort`                |

Hosted tools (web_search, file_search, computer use, MCP, ...) have no chat form: a 400 naming the
tool; so are `conversation`, `prompt`, `background: true`, `top_logprobs` > 0 and `moderation`
(dropping them would change the answer). Dropped, as they do not: `include`, `reasoning.summary`,
`truncation`, `max_tool_calls`, `stream_options`, `context_management`, `background_options`,
`image`, `access_programs` (the policy, and the Responses names of chat parameters an error names:
wire/responses_params.py). Outbound, `completion_to_response` builds the `Response` object (a
`reasoning` item for the message's `reasoning_content`, the output message and `function_call`
items, usage with `cost` in USD), and `context_items` the items the
next turn of a `previous_response_id` chain continues from.
"""
from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from ..errors import InvalidRequest, UnsupportedParameter
from .chat import ChatRequest, raise_if_too_deep, validate_body
from .responses_items import with_item_ids
from .responses_params import reasoning_to_chat, refuse_unsupported
from .responses_reasoning import reasoning_item, reasoning_of

__all__ = ["responses_to_chat", "request_items", "completion_to_response", "response_shell",
           "output_items", "response_usage", "new_response_id", "parse_body", "context_items", "finish"]

# passed on as they are (the last two: Router One's fallbacks and strategy)
_PASSED = ("temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "prompt_cache_key",
           "prompt_cache_retention", "prompt_cache_options", "service_tier", "metadata", "models", "route")


def new_response_id() -> str:
    return "resp_" + secrets.token_hex(24)


def _fail(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def parse_body(raw: bytes) -> dict:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    raise_if_too_deep(raw, body)
    if not isinstance(body, dict):
        raise _fail("body", "The request body must be a JSON object")
    prev = body.get("previous_response_id")
    if prev is not None and (not isinstance(prev, str) or not prev):
        raise _fail("previous_response_id", "'previous_response_id' must be a response id string")
    if body.get("store") is not None and not isinstance(body["store"], bool):
        raise _fail("store", "'store' must be a boolean")
    return body


def request_items(body: dict) -> list[dict]:
    """The request's `input` as a list of items (a string is one user message)."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise _fail("input", "'input' must be a string or a non-empty array of input items")
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _fail(f"input[{i}]", f"'input[{i}]' must be an object")
    return raw


def _part(p: Any, param: str) -> dict:
    kind = p.get("type") if isinstance(p, dict) else None
    if kind in ("input_text", "output_text", "text", "refusal") and isinstance(p.get("text", p.get("refusal")), str):
        return {"type": "text", "text": p.get("text", p.get("refusal"))}
    if kind == "input_image":
        url = p.get("image_url")
        if not isinstance(url, str) or not url:
            raise _fail(f"{param}.image_url", f"'{param}.image_url' must be a URL (file_id images are not supported)")
        image: dict = {"url": url}
        if p.get("detail") in ("low", "high", "auto"):
            image["detail"] = p["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and isinstance(p.get("file_data"), str):
        file = {"file_data": p["file_data"]}
        if isinstance(p.get("filename"), str):
            file["filename"] = p["filename"]
        return {"type": "file", "file": file}
    raise _fail(param, f"'{param}' must be an input_text, input_image (URL) or input_file (file_data) part")


def _message(item: dict, param: str) -> dict:
    role = item.get("role")
    if role not in ("user", "system", "developer", "assistant"):
        raise _fail(f"{param}.role", f"'{param}.role' must be user, system, developer or assistant")
    content = item.get("content")
    chat_role = "system" if role == "developer" else role
    if isinstance(content, str):
        return {"role": chat_role, "content": content}
    if not isinstance(content, list):
        raise _fail(f"{param}.content", f"'{param}.content' must be a string or an array of content parts")
    parts = [_part(p, f"{param}.content[{j}]") for j, p in enumerate(content)]
    if role != "user":
        if any(p["type"] != "text" for p in parts):
            raise _fail(f"{param}.content", f"'{param}.content': a {role} message may hold text only")
        return {"role": chat_role, "content": "".join(p["text"] for p in parts)}
    return {"role": "user", "content": parts}


def _output_text(output: Any, param: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):       # text parts only: a tool message has no images or files
        for j, p in enumerate(output):
            if not (isinstance(p, dict) and p.get("type", "text") in ("input_text", "output_text", "text")
                    and isinstance(p.get("text"), str)):
                raise UnsupportedParameter(f"'{param}[{j}]': a function_call_output may hold text parts only",
                                           param=f"{param}[{j}]")
        return "".join(p["text"] for p in output)
    raise _fail(param, f"'{param}' must be a string or an array of content parts")


def items_to_messages(items: list[dict], where: str = "input") -> list[dict]:
    out: list[dict] = []
    for i, item in enumerate(items):
        param = f"{where}[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item, param))
        elif kind == "function_call":
            if not all(isinstance(item.get(k), str) for k in ("call_id", "name", "arguments")):
                raise _fail(param, f"'{param}' needs string call_id, name and arguments")
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise _fail(f"{param}.call_id", f"'{param}.call_id' must be a string")
            out.append({"role": "tool", "tool_call_id": item["call_id"],
                        "content": _output_text(item.get("output"), f"{param}.output")})
        elif kind == "reasoning":
            continue
        else:
            raise UnsupportedParameter(f"'{param}': input items of type {kind!r} are not supported", param=param)
    return out


def _tools(body: dict, chat: dict) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _fail("tools", "'tools' must be an array")
        out = []
        for j, t in enumerate(tools):
            if not isinstance(t, dict) or t.get("type") != "function":
                kind = t.get("type") if isinstance(t, dict) else None
                raise UnsupportedParameter(f"'tools[{j}]': tools of type {kind!r} are not supported (function "
                                           "tools only)", param=f"tools[{j}]")
            params = t.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise _fail(f"tools[{j}].parameters", f"'tools[{j}].parameters' must be an object")
            fn = {"name": t.get("name"), "parameters": params or {"type": "object", "properties": {}}}
            if isinstance(t.get("description"), str):
                fn["description"] = t["description"]
            if isinstance(t.get("strict"), bool):
                fn["strict"] = t["strict"]
            out.append({"type": "function", "function": fn})
        if out:
            chat["tools"] = out
    tc = body.get("tool_choice")
    if tc is None:
        return
    if tc in ("auto", "none", "required"):
        choice: str | dict = tc
    elif isinstance(tc, dict) and tc.get("type") == "function" and isinstance(tc.get("name"), str):
        choice = {"type": "function", "function": {"name": tc["name"]}}
    else:
        raise _fail("tool_choice", "'tool_choice' must be auto, none, required or {type: function, name}")
    if tools:
        chat["tool_choice"] = choice
    elif choice not in ("auto", "none"):        # a call is demanded and there is nothing to call
        raise _fail("tool_choice", "'tool_choice' requires a tool to call, and 'tools' is empty")


def _format(body: dict, chat: dict) -> None:
    text = body.get("text")
    if text is not None and not isinstance(text, dict):
        raise _fail("text", "'text' must be an object")
    verbosity = (text or {}).get("verbosity")
    if verbosity is not None:
        if verbosity not in ("low", "medium", "high"):
            raise _fail("text.verbosity", "'text.verbosity' must be low, medium or high")
        chat["verbosity"] = verbosity
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return
    if fmt["type"] == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif fmt["type"] == "json_schema":
        if not isinstance(fmt.get("name"), str) or not fmt["name"]:
            raise _fail("text.format.name", "'text.format.name' is required for a json_schema format")
        if not isinstance(fmt.get("schema"), dict):
            raise _fail("text.format.schema", "'text.format.schema' must be a JSON Schema object")
        spec = {"name": fmt["name"], "schema": fmt["schema"]}
        if isinstance(fmt.get("strict"), bool):
            spec["strict"] = fmt["strict"]
        chat["response_format"] = {"type": "json_schema", "json_schema": spec}
    else:
        raise _fail("text.format.type", "'text.format.type' must be text, json_object or json_schema")


def responses_to_chat(body: dict, prior: list[dict]) -> ChatRequest:
    """The pipeline's request for a `CreateResponse` body continuing `prior` items."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("model", "'model' is required and must be a string")
    messages: list[dict] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise _fail("instructions", "'instructions' must be a string")
    messages += items_to_messages(prior, "previous_response") if prior else []
    messages += items_to_messages(request_items(body))
    chat: dict = {"model": model, "messages": messages}
    refuse_unsupported(body)
    reasoning_to_chat(body, chat)
    for key in _PASSED:
        if body.get(key) is not None:
            chat[key] = body[key]
    mot = body.get("max_output_tokens")
    if mot is not None:
        if isinstance(mot, bool) or not isinstance(mot, int) or mot < 1:
            raise _fail("max_output_tokens", "'max_output_tokens' must be an integer >= 1")
        chat["max_tokens"] = mot
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _fail("stream", "'stream' must be a boolean")
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    _tools(body, chat)
    _format(body, chat)
    req = validate_body(chat)
    req.protocol = "responses"
    return req


# -- outbound -------------------------------------------------------------------------------------

def response_usage(u: dict | None) -> dict:
    u = u or {}
    pd, cd = u.get("prompt_tokens_details") or {}, u.get("completion_tokens_details") or {}
    out = {"input_tokens": int(u.get("prompt_tokens") or 0),
           "input_tokens_details": {"cached_tokens": int(pd.get("cached_tokens") or 0),
                                    "cache_write_tokens": int(pd.get("cache_write_tokens") or 0)},
           "output_tokens": int(u.get("completion_tokens") or 0),
           "output_tokens_details": {"reasoning_tokens": int(cd.get("reasoning_tokens") or 0)},
           "total_tokens": int(u.get("prompt_tokens") or 0) + int(u.get("completion_tokens") or 0)}
    if "cost" in u:
        out["cost"] = u["cost"]
    return out


def _echo_tools(body: dict) -> list[dict]:
    out = []
    for t in body.get("tools") or ():
        out.append({"type": "function", "name": t.get("name"), "description": t.get("description"),
                    "parameters": t.get("parameters") or {"type": "object", "properties": {}},
                    "strict": t.get("strict") if isinstance(t.get("strict"), bool) else False})
    return out


def _echo_choice(tc: Any) -> str | dict:
    if tc in ("auto", "none", "required") or (isinstance(tc, dict) and tc.get("type") == "function"
                                               and isinstance(tc.get("name"), str)):
        return tc
    return "auto"


def _echo_text(text: dict) -> dict:
    out = {"format": text.get("format") or {"type": "text"}}
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
    return out


def _echo_reasoning(body: dict) -> dict | None:
    r = body.get("reasoning")
    if not isinstance(r, dict) or r.get("effort") is None:
        return None
    return {"effort": r["effort"], "summary": None}


def response_shell(body: dict, response_id: str, created_at: int, model: str) -> dict:
    """The Response object before any output: what the request asked for, echoed."""
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    shell = {"id": response_id, "object": "response", "created_at": created_at, "status": "in_progress",
            "completed_at": None, "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": model, "output": [], "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"), "reasoning": _echo_reasoning(body),
            "store": body.get("store", True) is not False, "temperature": body.get("temperature", 1.0),
            "text": _echo_text(text),
            "tool_choice": _echo_choice(body.get("tool_choice")), "tools": _echo_tools(body),
            "top_p": body.get("top_p", 1.0), "truncation": "disabled",
            "metadata": body.get("metadata") or {}}
    if isinstance(body.get("user"), str):
        shell["user"] = body["user"]
    return shell


def item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def output_items(message: dict) -> list[dict]:
    """A chat completion's message -> Responses output items (its reasoning, a message, then function
    calls)."""
    reasoning = reasoning_of(message)
    items: list[dict] = [reasoning_item(reasoning)] if reasoning else []
    content = []
    if isinstance(message.get("content"), str) and message["content"]:
        content.append(text_part(message["content"]))
    if isinstance(message.get("refusal"), str) and message["refusal"]:     # a refusal is not the answer
        content.append({"type": "refusal", "refusal": message["refusal"]})
    if content:
        items.append({"type": "message", "id": item_id("msg"), "status": "completed", "role": "assistant",
                      "content": content})
    for tc in message.get("tool_calls") or ():
        fn = tc.get("function") or {}
        items.append({"type": "function_call", "id": item_id("fc"), "call_id": tc.get("id") or item_id("call"),
                      "name": fn.get("name") or "", "arguments": fn.get("arguments") or "", "status": "completed"})
    return items


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def finish(resp: dict, finish_reason: str | None, usage: dict | None) -> dict:
    """Set status/incomplete_details/usage on a Response object at the end of the answer."""
    reason = _INCOMPLETE.get(finish_reason or "")
    resp["status"] = "incomplete" if reason else "completed"
    resp["incomplete_details"] = {"reason": reason} if reason else None
    resp["completed_at"] = int(time.time()) if not reason else None
    resp["usage"] = response_usage(usage)
    return resp


def completion_to_response(completion: dict, body: dict, response_id: str, created_at: int) -> dict:
    choice = (completion.get("choices") or [{}])[0]
    resp = response_shell(body, response_id, created_at, completion.get("model") or "")
    resp["output"] = output_items(choice.get("message") or {})
    return finish(resp, choice.get("finish_reason"), completion.get("usage"))


def context_items(prior: list[dict], body: dict, resp: dict) -> list[dict]:
    """What a later `previous_response_id` turn continues from: the chain's items, this request's
    input items (each with an id: what `input_items` lists and pages on), and this response's output
    items (instructions are not carried over)."""
    return [*prior, *with_item_ids(request_items(body)), *resp.get("output", [])]

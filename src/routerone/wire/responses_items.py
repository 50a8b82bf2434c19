"""`GET /v1/responses/{id}/input_items`: a stored response's input items as OpenAI's `ItemResource`
objects, one page at a time (`ResponseItemList`). Pure data in, data out.

A response's input items are the items it was generated from: the `previous_response_id` chain's
items (each earlier turn's input and output), then the request's own `input`; `instructions` are
not items. They are the stored context (wire/responses.py `context_items`) less the response's own
output items. Each is given the shape OpenAI returns it in: an `id` (the one it was sent with or
given when stored, `with_item_ids`; an item stored before ids were kept, or whose id an earlier item
of the list has, gets one derived from the response id and its position, the same on every call),
a `status`, and message content as parts
(`input_text` for user/system/developer, `output_text` for assistant).

Paging (`ItemsQuery`): `order` desc (the default) or asc, `limit` 1..100 (20), `after` an item id
(the items that follow it in that order), `before` an item id (the `limit` items just before it;
not in OpenAI's current spec, older SDKs send it); an id the list does not hold is a 400 naming
the parameter. `include` values must be OpenAI's `IncludeEnum`; the items are returned as stored
whatever it says (input image URLs included).
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import InvalidRequest

__all__ = ["ItemsQuery", "parse_items_query", "with_item_ids", "input_item_resources", "item_page",
           "INCLUDABLE", "DEFAULT_ITEMS_LIMIT", "MAX_ITEMS_LIMIT"]

INCLUDABLE = ("file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
              "message.input_image.image_url", "computer_call_output.output.image_url",
              "code_interpreter_call.outputs", "reasoning.encrypted_content", "message.output_text.logprobs")
DEFAULT_ITEMS_LIMIT, MAX_ITEMS_LIMIT = 20, 100
_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}
_STATUSES = ("in_progress", "completed", "incomplete")


@dataclass(frozen=True, slots=True)
class ItemsQuery:
    limit: int = DEFAULT_ITEMS_LIMIT
    order: str = "desc"
    after: str | None = None
    before: str | None = None


def parse_items_query(query: Mapping[str, str], include: Sequence[str]) -> ItemsQuery:
    """The list's query parameters, checked; `include` is every value sent (`include` or `include[]`)."""
    raw_limit = query.get("limit")
    limit = DEFAULT_ITEMS_LIMIT
    if raw_limit is not None:
        if not (raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_ITEMS_LIMIT):
            raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_ITEMS_LIMIT}", param="limit")
        limit = int(raw_limit)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be asc or desc", param="order")
    for value in include:
        if value not in INCLUDABLE:
            raise InvalidRequest(f"'include' values must be among: {', '.join(INCLUDABLE)}", param="include")
    return ItemsQuery(limit, order, query.get("after") or None, query.get("before") or None)


def _has_id(item: dict) -> bool:
    return isinstance(item.get("id"), str) and bool(item["id"])


def with_item_ids(items: list[dict]) -> list[dict]:
    """`items` (a request's input, as stored for the chain), each with an id: its own, else a new one."""
    return [item if _has_id(item) else
            {**item, "id": f"{_PREFIX.get(item.get('type', 'message'), 'item')}_{secrets.token_hex(16)}"}
            for item in items]


def _derived_id(response_id: str, position: int, kind: str) -> str:
    digest = hashlib.sha256(f"{response_id}:{position}".encode()).hexdigest()[:32]
    return f"{_PREFIX.get(kind, 'item')}_{digest}"


def _output_part(p: object) -> object:
    if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text"):
        return {"type": "output_text", "text": p.get("text", ""), "annotations": p.get("annotations") or [],
                "logprobs": p.get("logprobs") or []}
    return p


def _input_part(p: object) -> object:
    if isinstance(p, dict) and p.get("type") in ("output_text", "text"):
        return {"type": "input_text", "text": p.get("text", "")}
    if isinstance(p, dict) and p.get("type") == "input_image" and p.get("detail") not in ("low", "high", "auto"):
        return {**p, "detail": "auto"}
    return p


def _content(role: object, content: object) -> object:
    if role == "assistant":
        if isinstance(content, str):
            return [_output_part({"type": "output_text", "text": content})]
        return [_output_part(p) for p in content] if isinstance(content, list) else content
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    return [_input_part(p) for p in content] if isinstance(content, list) else content


def _resource(item: dict, fallback_id: str) -> dict:
    out = {**item, "type": item.get("type", "message"), "id": item["id"] if _has_id(item) else fallback_id}
    if out["type"] == "message":
        out["content"] = _content(out.get("role"), out.get("content"))
    if out["type"] in ("message", "function_call", "function_call_output") and out.get("status") not in _STATUSES:
        out["status"] = "completed"
    if out["type"] == "reasoning" and not isinstance(out.get("summary"), list):
        out["summary"] = []
    return out


def input_item_resources(response_id: str, context: list[dict], n_output: int) -> list[dict]:
    """The input items (oldest first) of a response stored with `context` and `n_output` output items,
    each id naming one item: a repeat of an earlier item's id (a client that sent a reply's output
    back beside previous_response_id, or its own ids twice) gets the derived one, so `after` always
    moves on (it found the first of them each time: the SDK's auto-pagination never ended)."""
    inputs = context[:len(context) - n_output] if n_output else context
    out, seen = [], set()
    for i, item in enumerate(inputs):
        if not isinstance(item, dict):
            continue
        derived = _derived_id(response_id, i, item.get("type", "message"))
        resource = _resource(item, derived)
        if resource["id"] in seen:
            resource["id"] = derived
        seen.add(resource["id"])
        out.append(resource)
    return out


def _position(ids: list[str], item_id: str, param: str) -> int:
    try:
        return ids.index(item_id)
    except ValueError:
        raise InvalidRequest(f"'{param}': no input item of this response has the id '{item_id}'",
                             param=param) from None


def item_page(items: list[dict], q: ItemsQuery) -> dict:
    """One page of `items` (oldest first) as a ResponseItemList, as `q` asks."""
    seq = items if q.order == "asc" else items[::-1]
    ids = [item["id"] for item in seq]
    lo = _position(ids, q.after, "after") + 1 if q.after is not None else 0
    hi = _position(ids, q.before, "before") if q.before is not None else len(seq)
    window = seq[lo:hi]
    page = window[-q.limit:] if q.before is not None and q.after is None else window[:q.limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(window) > len(page)}

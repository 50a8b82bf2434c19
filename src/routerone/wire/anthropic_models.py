"""`GET /v1/models` and `/v1/models/{id}` in Anthropic's shape, for a client that sends
`anthropic-version` (Anthropic's SDKs and Claude Code always do). Pure data in, data out.

A list is a cursor page, `{data: [ModelInfo], first_id, last_id, has_more}`, `limit` 1..1000
(default 20), `after_id` / `before_id` the id to page after or before (an id not in the list gives
an empty page). `ModelInfo` is `{type: "model", id, display_name, created_at, max_input_tokens,
max_tokens, capabilities}`; Router One knows no release dates: `created_at` is the epoch, as
Anthropic's spec allows when the date is unknown."""
from __future__ import annotations

from typing import Mapping

from ..errors import InvalidRequest

__all__ = ["model_info", "models_page"]

DEFAULT_LIMIT, MAX_LIMIT = 20, 1000
EPOCH = "1970-01-01T00:00:00Z"


def model_info(model_id: str, max_input_tokens: int | None, max_tokens: int | None) -> dict:
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": EPOCH,
            "max_input_tokens": max_input_tokens, "max_tokens": max_tokens, "capabilities": None}


def _limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit: must be an integer from 1 to {MAX_LIMIT}", param="limit")
    return limit


def models_page(infos: list[dict], query: Mapping[str, str]) -> dict:
    """The page of `infos` (in list order) that the query's `limit`, `after_id`, `before_id` ask for."""
    limit = _limit(query)
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        raise InvalidRequest("before_id: give after_id or before_id, not both", param="before_id")
    ids = [m["id"] for m in infos]
    if before is not None:
        end = ids.index(before) if before in ids else 0
        start = max(0, end - limit)
        data, has_more = infos[start:end], start > 0
    else:
        start = (ids.index(after) + 1 if after in ids else len(ids)) if after is not None else 0
        data, has_more = infos[start:start + limit], start + limit < len(infos)
    return {"data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}

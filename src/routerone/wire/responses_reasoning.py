"""A chat answer's reasoning text as a Responses `reasoning` output item. Pure data in, data out.

The chat pipeline carries a model's reasoning as `message.reasoning_content` / `delta.reasoning_content`
(Anthropic's thinking, Gemini's thoughts, DeepSeek's reasoning; vLLM's reasoning parsers name it
`reasoning`). In Responses terms that text is the reasoning itself, not a summary of it: OpenAI's
`ReasoningItem.content` holds `reasoning_text` parts ("the reasoning text from the model", what
OpenAI's own open-weight models return there), while `summary` parts are what a model writes when
`reasoning.summary` asks for one, which Router One never asks any provider for (and drops). So the
item is `{type: reasoning, id: rs_..., summary: [], content: [{type: reasoning_text, text}]}`, placed
before the message it led to, and streamed with `response.reasoning_text.delta` / `.done` events
inside `response.content_part.added` / `.done` (whose part may be `reasoning_text` in OpenAI's spec).

Sent back (an input item, or a stored `previous_response_id` chain), a reasoning item is dropped, as
before: its text alone is no provider's input (Anthropic wants its signed thinking blocks, DeepSeek
refuses `reasoning_content` in a request, Gemini's thoughts are not sent back).
"""
from __future__ import annotations

import secrets

__all__ = ["reasoning_of", "reasoning_texts", "reasoning_item"]


def reasoning_of(message: dict) -> str:
    """The reasoning text a chat message (or delta) carries, "" if none."""
    text = message.get("reasoning_content")
    if text.__class__ is not str or not text:
        text = message.get("reasoning")     # vLLM's name for it
    return text if text.__class__ is str else ""


def reasoning_texts(message: dict) -> tuple[str, ...]:
    """The reasoning texts a chat message (or delta) carries, as output to count: `reasoning_content`
    and vLLM's `reasoning`, the same text once (vLLM while it renamed the field, and mlx-vlm's server,
    send it as both)."""
    texts = [t for t in (message.get("reasoning_content"), message.get("reasoning")) if t.__class__ is str and t]
    return (texts[0],) if len(texts) == 2 and texts[0] == texts[1] else tuple(texts)


def reasoning_item(text: str | None, status: str = "completed") -> dict:
    """A reasoning output item holding `text` (one reasoning_text part; none if `text` is None)."""
    content = [] if text is None else [{"type": "reasoning_text", "text": text}]
    return {"type": "reasoning", "id": f"rs_{secrets.token_hex(16)}", "summary": [], "content": content,
            "status": status}

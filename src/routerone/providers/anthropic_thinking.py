"""OpenAI `reasoning_effort` -> Anthropic extended thinking (`thinking: {type: enabled, budget_tokens}`).

| reasoning_effort | budget_tokens (before the clamp below) |
|------------------|----------------------------------------|
| none (or absent) | no `thinking` sent (as before)         |
| minimal, low     | 1024 (Anthropic's minimum)             |
| medium           | 8192                                   |
| high             | 24576                                  |
| xhigh, max       | 32768                                  |

(medium/high/xhigh as in the Gemini adapter's `THINKING_BUDGET_TOKENS`; minimal is raised to 1024.)

Anthropic's rules, kept here so the caller gets a 400 naming the parameter, not an upstream error:
* `budget_tokens` must be >= 1024 and < `max_tokens`, and counts toward `max_tokens`. `max_tokens`
  is never raised: it is what the billing reservation and the rate limits assumed (the caller's
  `max_completion_tokens`, which in OpenAI's protocol includes reasoning, or the model's default).
  The budget is clamped to half of `max_tokens` (the other half is left for the answer), never
  below 1024; a `max_tokens` of 1024 or less cannot think: 400 naming it.
* with thinking, `temperature` may only be 1 (after the usual clamp of values above 1), `top_p`
  only 0.95..1, `top_k` not at all, tool use not forced (`tool_choice` required or named, and
  `response_format` json, which is a forced tool here), and the answer not prefilled (a last
  assistant message): each a 400 naming the parameter.
* `reasoning_effort` together with Anthropic's own `thinking` field: 400 (say one).
* Continuing a tool loop (the last turn carries tool results): Anthropic then requires the previous
  assistant turn to start with its signed thinking blocks. Replies carry them as
  `message.thinking_blocks` (LiteLLM's field; streamed, one `delta.thinking_blocks` entry per block
  once it is complete), and an assistant message that sends them back gets them, unchanged, at the
  start of its turn (the openai SDK does so when the reply's message object is appended to the
  history). When that turn does not start with them (a client that rebuilt the message from its
  content and tool calls), thinking is left off for this request (what Anthropic allows); it is on
  again from the next user turn. Without thinking, sent-back blocks are left out.
"""
from __future__ import annotations

from ..errors import InvalidRequest, UnsupportedParameter

__all__ = ["THINKING_BUDGET_TOKENS", "MIN_BUDGET_TOKENS", "thinking_for", "thinking_blocks_of", "without_thinking",
           "THINKING_TYPES"]

MIN_BUDGET_TOKENS = 1024
THINKING_BUDGET_TOKENS = {"minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768,
                          "max": 32768}
_FORCED_CHOICES = ("any", "tool")
THINKING_TYPES = ("thinking", "redacted_thinking")


def _refuse(param: str, why: str) -> UnsupportedParameter:
    return UnsupportedParameter(f"'{param}' is not supported by Anthropic models with reasoning_effort "
                                f"(extended thinking): {why}", param=param)


def thinking_blocks_of(m: dict, param: str) -> list[dict]:
    """An assistant message's `thinking_blocks` (as a reply gave them) -> Anthropic request blocks."""
    raw = m.get("thinking_blocks")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest(f"'{param}.thinking_blocks' must be a list of the thinking blocks a reply gave",
                             param=f"{param}.thinking_blocks")
    out = []
    for j, b in enumerate(raw):
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "thinking" and isinstance(b.get("thinking"), str) and isinstance(b.get("signature"), str) \
                and b["signature"]:
            out.append({"type": "thinking", "thinking": b["thinking"], "signature": b["signature"]})
        elif kind == "redacted_thinking" and isinstance(b.get("data"), str) and b["data"]:
            out.append({"type": "redacted_thinking", "data": b["data"]})
        else:
            p = f"{param}.thinking_blocks[{j}]"
            raise InvalidRequest(f"'{p}' must be a thinking block (thinking, signature) or a redacted_thinking "
                                 "block (data), as the reply gave it", param=p)
    return out


def without_thinking(messages: list[dict]) -> list[dict]:
    """The Messages turns with sent-back thinking blocks left out (thinking is off); a turn left empty
    goes, and same-role neighbours it separated are merged."""
    if not any(isinstance(t["content"], list) and any(b.get("type") in THINKING_TYPES for b in t["content"])
               for t in messages):
        return messages
    out: list[dict] = []
    for turn in messages:
        content = turn["content"]
        if isinstance(content, list):
            content = [b for b in content if b.get("type") not in THINKING_TYPES]
            if not content:
                continue
            if len(content) == 1 and content[0]["type"] == "text" and set(content[0]) == {"type", "text"}:
                content = content[0]["text"]
        if out and out[-1]["role"] == turn["role"]:
            prev = out[-1]["content"]
            as_list = [{"type": "text", "text": prev}] if isinstance(prev, str) else prev
            out[-1] = {"role": turn["role"], "content": as_list + (
                [{"type": "text", "text": content}] if isinstance(content, str) else content)}
        else:
            out.append({"role": turn["role"], "content": content})
    if not out:
        raise InvalidRequest("'messages' must contain at least one user or assistant message with content "
                             "besides thinking_blocks", param="messages")
    return out


def _continues_tool_loop_unsigned(messages: list[dict]) -> bool:
    """The last turn answers tool calls, and the assistant turn before it does not open with its
    signed thinking blocks."""
    last = messages[-1]
    if not (last["role"] == "user" and isinstance(last["content"], list)
            and any(b.get("type") == "tool_result" for b in last["content"])):
        return False
    before = messages[-2]["content"] if len(messages) > 1 else ""
    return not (isinstance(before, list) and before and before[0].get("type") in THINKING_TYPES)


def _check_compatible(body: dict, out: dict) -> None:
    if out.get("temperature", 1.0) != 1.0:
        raise _refuse("temperature", "only temperature 1 is allowed with thinking")
    top_p = out.get("top_p")
    if top_p is not None and not 0.95 <= top_p <= 1:
        raise _refuse("top_p", "top_p must be between 0.95 and 1 with thinking")
    if body.get("top_k") is not None:
        raise _refuse("top_k", "top_k is not allowed with thinking")
    if (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
        raise _refuse("response_format", "JSON output is a forced tool call here, and thinking cannot force "
                                         "tool use")
    if (out.get("tool_choice") or {}).get("type") in _FORCED_CHOICES:
        raise _refuse("tool_choice", "thinking cannot force tool use (use 'auto' or 'none')")
    if out["messages"][-1]["role"] == "assistant":
        raise _refuse("messages", "the answer cannot be prefilled (last message from the assistant) with "
                                  "thinking")


def thinking_for(body: dict, out: dict) -> dict | None:
    """The `thinking` field for the Messages body `out` built from the OpenAI request `body`, or
    None (send none). Raises `UnsupportedParameter` as the module docstring says."""
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none":
        return None
    if effort not in THINKING_BUDGET_TOKENS:
        raise UnsupportedParameter(f"'reasoning_effort' {effort!r} is not supported by Anthropic models (use "
                                   f"none, {', '.join(THINKING_BUDGET_TOKENS)})", param="reasoning_effort")
    if body.get("thinking") is not None:
        raise UnsupportedParameter("'reasoning_effort' and Anthropic's 'thinking' cannot both be given: send "
                                   "one of them", param="reasoning_effort")
    if _continues_tool_loop_unsigned(out["messages"]):
        return None
    _check_compatible(body, out)
    max_tokens = out["max_tokens"]
    if max_tokens <= MIN_BUDGET_TOKENS:
        param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        raise _refuse(param, f"thinking needs a budget of at least {MIN_BUDGET_TOKENS} tokens below "
                             f"{param}; give more than {MIN_BUDGET_TOKENS} (got {max_tokens})")
    budget = max(MIN_BUDGET_TOKENS, min(THINKING_BUDGET_TOKENS[effort], max_tokens // 2))
    return {"type": "enabled", "budget_tokens": budget}

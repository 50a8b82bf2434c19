"""Which CreateResponse parameters Router One refuses (dropping them would change the answer), how
`reasoning` becomes chat's `reasoning_effort`, and the Responses name of a chat parameter an error
names (`responses_param`). Pure data in, data out; used by wire/responses.py and the service."""
from __future__ import annotations

import re

from ..errors import InvalidRequest, UnsupportedParameter

__all__ = ["refuse_unsupported", "reasoning_to_chat", "responses_param"]


def _fail(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


# CreateResponse parameters whose dropping would change the answer, and what value of each is
# harmless (accepted, nothing to do). Anything else: a 400 naming the parameter.
_REFUSED: dict[str, tuple[tuple, str]] = {
    "conversation": ((), "conversations are not supported; continue with previous_response_id"),
    "prompt": ((), "stored prompt templates are not supported; send instructions and input"),
    "background": ((False,), "background responses are not supported; stream or wait for the answer"),
    "top_logprobs": ((0,), "logprobs are not supported on /v1/responses"),
    "moderation": ((), "moderation is not supported"),
}
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


def refuse_unsupported(body: dict) -> None:
    for key, (harmless, why) in _REFUSED.items():
        value = body.get(key)
        if value is not None and not any(value == v and type(value) is type(v) for v in harmless):
            raise UnsupportedParameter(f"'{key}' is not supported by Router One: {why}", param=key)
    if body.get("truncation") not in (None, "auto", "disabled"):
        raise _fail("truncation", "'truncation' must be auto or disabled")
    meta = body.get("metadata")
    if meta is not None and not (isinstance(meta, dict) and len(meta) <= 16 and all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512 for k, v in meta.items())):
        raise _fail("metadata", "'metadata' must be an object of at most 16 string values (keys up to 64 "
                                "characters, values up to 512)")


_CHAT_PARAMS = ((re.compile(r"^messages$"), "input"),      # not messages[i]: instructions and dropped items shift i
                (re.compile(r"^max_tokens\b"), "max_output_tokens"),
                (re.compile(r"^reasoning_effort\b"), "reasoning.effort"),
                (re.compile(r"^verbosity\b"), "text.verbosity"),
                (re.compile(r"^response_format(\.json_schema)?"), "text.format"),
                (re.compile(r"^(tools\[\d+\])\.function"), r"\1"),
                (re.compile(r"^tool_choice\.function"), "tool_choice"))


def responses_param(param: str | None) -> str | None:
    """The CreateResponse name of a chat request's `param` (`messages` -> `input`, `max_tokens` -> `max_output_tokens`,
    `tools[0].function.name` -> `tools[0].name`, ...): an error names what the caller sent."""
    if not param:
        return param
    for pattern, repl in _CHAT_PARAMS:
        renamed = pattern.sub(repl, param, count=1)
        if renamed != param:
            return renamed
    return param


def reasoning_to_chat(body: dict, chat: dict) -> None:
    """`reasoning.effort` -> `reasoning_effort` (each provider maps or refuses it as on chat);
    `reasoning.summary` is dropped: no reasoning items are returned."""
    reasoning = body.get("reasoning")
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise _fail("reasoning", "'reasoning' must be an object")
    effort = reasoning.get("effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise _fail("reasoning.effort", f"'reasoning.effort' must be one of {', '.join(_EFFORTS)}")
        chat["reasoning_effort"] = effort

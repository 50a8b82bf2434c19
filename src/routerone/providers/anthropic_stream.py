"""Anthropic Messages SSE events -> OpenAI `chat.completion.chunk` dicts (sans-I/O).

| Anthropic event                           | OpenAI chunk                                               |
|-------------------------------------------|------------------------------------------------------------|
| message_start                             | `delta: {role: assistant, content: ""}`; input usage kept  |
| content_block_start text (non-empty)      | `delta.content`                                            |
| content_block_start tool_use              | `delta.tool_calls[{index: k, id, type, function{name, arguments: ""}}]`, k = position among tool calls (not the block index) |
| content_block_delta text_delta            | `delta.content`                                            |
| content_block_delta input_json_delta      | `delta.tool_calls[{index: k, function{arguments}}]`        |
| response-format tool's input_json_delta   | `delta.content` (the JSON answer streams as content)       |
| thinking_delta                            | `delta.reasoning_content` (LiteLLM/DeepSeek convention); a later thinking block's first text after "\n\n" |
| content_block_stop of a thinking / redacted_thinking block | `delta.thinking_blocks: [the whole signed block]` (LiteLLM's field) |
| citations deltas                          | nothing                                                    |
| message_delta with stop_reason            | `delta: {}, finish_reason` (once); cumulative usage kept   |
| message_stop                              | nothing; `done = True` (no message_delta usage before it: the output is counted by Router One) |
| ping, other content_block_stop, unknown events | nothing                                               |
| empty events (`quiet`): ping (by `type` or `event:`), a delta of empty text, a `message_delta` with no stop_reason or usage, an unknown event with nothing but its type | nothing, and a keep-alive for the idle timeout |
| a `type` that is not a plain name         | nothing, not even for pass-through                        |
| pass-through: a known event without what the SDKs read (`_relayable`) | raises UpstreamUnavailable (malformed) |
| error                                     | raises the mapped `UpstreamError` (overloaded is retryable)|
"""
from __future__ import annotations

import re
import time

import orjson

from ..errors import UpstreamUnavailable
from ..wire.types import Usage
from .anthropic_response import ERROR_TYPE_STATUS, THOUGHT_SEPARATOR, error_from_anthropic, finish_reason, \
    is_json_tool, signed_block, usage_from_anthropic, well_formed_block, TYPE_NAME
from .base import SSEEvent

__all__ = ["AnthropicStream"]

_TEXT, _TOOL, _JSON, _THINK, _OTHER = "text", "tool", "json", "thinking", "other"
_EVENT_NAME = re.compile(r"[a-z_]{1,64}")
SIGNED_BLOCK_CAP_CHARS = 2_000_000   # the thinking blocks kept whole for `thinking_blocks`, open ones together (128k tokens ~ 0.5M chars)


def _is_index(value) -> bool:
    return value.__class__ is int


# the text a delta of each known type carries (the SDKs' accumulators append it to the block)
_DELTA_TEXT = {"text_delta": "text", "input_json_delta": "partial_json", "thinking_delta": "thinking",
               "signature_delta": "signature"}


def _relayable(kind: str, data: dict) -> bool:
    """Whether an event relayed as it came (pass-through) has what the SDKs read in it: a
    message_start's message (a message, with an id, the assistant's role, a list of content), a block's index (an
    integer) and its content block or delta (objects with a type; a block's fields as
    `well_formed_block` says, a delta's text as `_DELTA_TEXT`), a message_delta's delta (an object). An event that has not is the
    upstream's failure (the stream ends with an error), never relayed for a client's SDK to choke on
    (message_start with no message, a delta with no index: its stream accumulator raised)."""
    if kind == "message_start":
        msg = data.get("message")
        return msg.__class__ is dict and msg.get("type") == "message" and msg.get("id").__class__ is str \
            and msg.get("role") == "assistant" and msg.get("content", []).__class__ is list
    if kind == "content_block_start":
        return _is_index(data.get("index")) and well_formed_block(data.get("content_block"))
    if kind == "content_block_delta":
        delta = data.get("delta")
        if not (_is_index(data.get("index")) and delta.__class__ is dict and delta.get("type").__class__ is str
                and TYPE_NAME.fullmatch(delta["type"]) is not None):
            return False
        field = _DELTA_TEXT.get(delta["type"])
        return field is None or delta.get(field).__class__ is str
    if kind == "content_block_stop":
        return _is_index(data.get("index"))
    if kind == "message_delta":
        return data.get("delta").__class__ is dict
    return True


_BLOCK_EVENTS = frozenset(("content_block_start", "content_block_delta", "content_block_stop"))


def _empty(kind: str, data: dict, known: bool) -> bool:
    """Whether an event says nothing and shows no work: a ping (however named), a delta whose text is
    empty, a message_delta with neither a stop_reason nor usage, an unknown event with nothing but its
    type. Sent every 50 ms these held a stream and its hold open until stream_timeout_s; they are
    keep-alives now. (A signature delta, a redacted thinking block, a block's start or stop are work.)"""
    if kind == "ping":
        return True
    if kind == "content_block_delta":
        delta = data.get("delta")
        field = _DELTA_TEXT.get(delta.get("type")) if delta.__class__ is dict else None
        return field is not None and delta.get(field) == ""
    if kind == "message_delta":
        delta = data.get("delta")
        return not data.get("usage") and not (delta.__class__ is dict and delta.get("stop_reason"))
    return not known and not any(k != "type" for k in data)


class AnthropicStream:
    """One translator per upstream stream. `usage` is None until `message_start` arrives."""

    __slots__ = ("usage", "done", "quiet", "_provider", "_id", "_model", "_created", "_blocks", "_tool_count",
                 "_usage_raw", "_finished", "_native", "_final_count", "_thought", "_thinking_started",
                 "_signed", "_relayed_blocks", "_relayed_count", "_kept_chars")

    def __init__(self, provider: str = "anthropic", *, native: bool = False) -> None:
        """`native`: attach each upstream event to the chunks it produced (`_native`; a chunk with
        no choices when it produced none), for /v1/messages pass-through."""
        self.usage: Usage | None = None
        self.done = False
        self.quiet = False             # the last event fed was empty (`_empty`): a keep-alive
        self._provider = provider
        self._id, self._model, self._created = "", "", int(time.time())
        self._blocks: dict[int, tuple[str, int]] = {}   # content block index -> (kind, tool index)
        self._tool_count = 0
        self._usage_raw: dict = {}
        self._finished = False
        self._native = native
        self._final_count = False     # a message_delta said how many tokens were output
        self._thought = False          # some thinking text was relayed (the next block's is set off)
        self._thinking_started: set[int] = set()   # thinking blocks whose text has begun
        self._signed: dict[int, dict] = {}   # open thinking blocks, as built from their deltas
        self._relayed_blocks: dict[int, int] = {}     # pass-through: upstream block index -> the client's
        self._relayed_count = 0                       # ... and the blocks started so far
        self._kept_chars = 0                 # their text and signatures' length, together

    def feed(self, event: SSEEvent) -> list[dict]:
        self.quiet = False
        if self.done:                   # nothing after message_stop (in the same read) is taken
            return []
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise UpstreamUnavailable("upstream sent a malformed stream event", provider=self._provider) from None
        if not isinstance(data, dict):
            raise UpstreamUnavailable("upstream sent a malformed stream event", provider=self._provider)
        kind = data.get("type") or event.event
        if kind.__class__ is not str or not _EVENT_NAME.fullmatch(kind):
            self.quiet = True
            return []                   # not an event name (a number, a line break...): nothing to relay
        if self._native and not _relayable(kind, data):
            raise UpstreamUnavailable("upstream sent a malformed stream event", provider=self._provider)
        handler = getattr(self, f"_on_{kind}", None)
        self.quiet = _empty(kind, data, handler is not None)
        chunks = handler(data) if handler is not None else []
        if self._native:
            data["type"] = kind         # relayed with its `event:` line (`event: ping` with `data: {}`)
            if kind in _BLOCK_EVENTS:
                data["index"] = self._relayed_index(kind, data["index"])
            if chunks:
                chunks[-1]["_native"] = data
            else:
                chunks = [{"choices": [], "_native": data}]
        return chunks

    def _relayed_index(self, kind: str, index: int) -> int:
        """A relayed block's index as Anthropic numbers a message's blocks: 0, 1, ... in the order
        they start. The SDKs file a delta at content[index]: an upstream's 10**9, or a first block
        numbered 1, raised IndexError in the anthropic SDK's stream helper; a delta or stop for a
        block never started has no block to go to (the upstream's failure)."""
        blocks = self._relayed_blocks
        if kind == "content_block_start":
            blocks[index] = self._relayed_count
            self._relayed_count += 1
        elif index not in blocks:
            raise UpstreamUnavailable("upstream sent a malformed stream event", provider=self._provider)
        return blocks[index]

    # -- chunk helpers -----------------------------------------------------------------------
    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                "model": self._model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def _merge_usage(self, raw: object) -> None:
        if isinstance(raw, dict):
            self._usage_raw.update({k: v for k, v in raw.items() if v is not None})
            self.usage = usage_from_anthropic(self._usage_raw)

    # -- event handlers ----------------------------------------------------------------------
    def _on_message_start(self, data: dict) -> list[dict]:
        msg = data.get("message") or {}
        self._id, self._model = str(msg.get("id") or ""), str(msg.get("model") or "")
        self._merge_usage(msg.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_content_block_start(self, data: dict) -> list[dict]:
        block, index = data.get("content_block") or {}, data.get("index", len(self._blocks))
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = (_TEXT, -1)
            return [self._chunk({"content": block["text"]})] if block.get("text") else []
        if kind == "tool_use" and is_json_tool(block.get("name")):
            self._blocks[index] = (_JSON, -1)
            return []
        if kind in ("thinking", "redacted_thinking"):
            self._blocks[index] = (_THINK, -1)
            if not self._native:          # /v1/messages relays the events themselves
                self._forget(index)
                self._signed[index] = {"type": kind, "data": block.get("data"), "thinking": [], "signature": [],
                                       "chars": 0}
                for field in ("data", "thinking", "signature"):     # counted toward the cap as deltas are
                    self._keep(index, field, block.get(field))
            if kind == "redacted_thinking":
                return []
            text = block.get("thinking")
            return self._thinking(index, text) if text and text.__class__ is str else []
        if kind != "tool_use":
            self._blocks[index] = (_OTHER, -1)
            return []
        k = self._tool_count
        self._tool_count += 1
        self._blocks[index] = (_TOOL, k)
        call = {"index": k, "id": block.get("id") or "", "type": "function",
                "function": {"name": block.get("name") or "", "arguments": ""}}
        return [self._chunk({"tool_calls": [call]})]

    def _on_content_block_delta(self, data: dict) -> list[dict]:
        delta = data.get("delta") or {}
        kind, k = self._blocks.get(data.get("index"), (_OTHER, -1))
        if delta.get("type") == "text_delta" and kind == _TEXT and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == _THINK and delta.get("type") in ("signature_delta", "thinking_delta"):
            field = "signature" if delta["type"] == "signature_delta" else "thinking"
            self._keep(data["index"], field, delta.get(field))
        if delta.get("type") == "thinking_delta" and kind == _THINK and delta.get("thinking") \
                and delta["thinking"].__class__ is str:
            return self._thinking(data["index"], delta["thinking"])
        if delta.get("type") != "input_json_delta" or not delta.get("partial_json"):
            return []
        if kind == _JSON:
            return [self._chunk({"content": delta["partial_json"]})]
        if kind == _TOOL:
            return [self._chunk({"tool_calls": [{"index": k, "function": {"arguments": delta["partial_json"]}}]})]
        return []

    def _keep(self, index: int, field: str, text) -> None:
        """A thinking block's text or signature, kept until the block ends; one that takes the open
        blocks over the cap (a hostile upstream's endless thinking, or blocks never stopped) is not
        given back at all, rather than cut."""
        built = self._signed.get(index)
        if built is None or text.__class__ is not str:
            return
        built["chars"] += len(text)
        self._kept_chars += len(text)
        if self._kept_chars > SIGNED_BLOCK_CAP_CHARS:
            self._forget(index)
        elif field == "data":
            built["data"] = text
        else:
            built[field].append(text)

    def _forget(self, index) -> dict | None:
        built = self._signed.pop(index, None)
        if built is not None:
            self._kept_chars -= built["chars"]
        return built

    def _on_content_block_stop(self, data: dict) -> list[dict]:
        index = data.get("index")
        built = self._forget(index) if _is_index(index) else None
        if built is None:
            return []
        for field in ("thinking", "signature"):
            built[field] = "".join(p for p in built[field] if p.__class__ is str)
        block = signed_block(built)
        return [self._chunk({"thinking_blocks": [block]})] if block is not None else []

    def _thinking(self, index: int, text: str) -> list[dict]:
        if index not in self._thinking_started:
            self._thinking_started.add(index)
            if self._thought:
                text = THOUGHT_SEPARATOR + text
        self._thought = True
        return [self._chunk({"reasoning_content": text})]

    def _on_message_delta(self, data: dict) -> list[dict]:
        usage = data.get("usage")
        self._merge_usage(usage)
        if isinstance(usage, dict) and "output_tokens" in usage:
            self._final_count = True
        stop_reason = (data.get("delta") or {}).get("stop_reason")
        if stop_reason is None or self._finished:
            return []
        self._finished = True
        return [self._chunk({}, finish_reason(stop_reason, called_tools=self._tool_count > 0))]

    def _on_message_stop(self, data: dict) -> list[dict]:
        self.done = True
        if self.usage is not None and not self._final_count and "completion_tokens" not in self.usage.unreadable:
            # the final count never came (message_start says 1): Router One counts what was relayed
            self.usage.unreadable += ("completion_tokens",)
        return []

    def _on_error(self, data: dict) -> list[dict]:
        error = data.get("error")
        err_type = error.get("type") if isinstance(error, dict) else None
        status = ERROR_TYPE_STATUS.get(err_type if isinstance(err_type, str) else "", 500)
        raise error_from_anthropic(status, error, provider=self._provider, headers={})

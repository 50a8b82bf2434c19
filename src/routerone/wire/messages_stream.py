"""The chat pipeline's SSE stream -> Anthropic Messages SSE events (sans-I/O).

`MessagesStreamEncoder.feed(data)` takes the bytes one write of the chat stream carries (whole
`data: ...` events: chunks, the usage chunk with `cost`, an `{"error": ...}` event, `[DONE]`) and
returns the Anthropic events for them, each with its `event:` line (the SDK dispatches on it):

| chat stream                                  | Messages events                                          |
|----------------------------------------------|----------------------------------------------------------|
| first chunk                                  | message_start (empty content, usage so far), ping        |
| `delta.content`                              | content_block_start text (once per run), text_delta      |
| `delta.tool_calls[k]`, first (or a new id)   | content_block_start tool_use {id, name, input: {}}       |
| `delta.tool_calls[k].function.arguments`     | input_json_delta on that tool's block                    |
| `finish_reason`                              | the stop reason is kept                                  |
| usage chunk                                  | kept for message_delta (with `usage.cost` in USD)        |
| `[DONE]`                                     | content_block_stop of each open block (in index order),  |
|                                              | message_delta {stop_reason, usage}, message_stop         |
| `finish_reason: "error"` + `{"error": ...}`  | `error` event (Anthropic's error types)                  |

A text block is closed when another block starts; a tool_use block stays open until the end: an
OpenAI-protocol upstream may interleave the arguments of parallel calls (call 0's, call 1's, call
0's again), and a delta is never sent to a block whose content_block_stop has gone out (a client
acts on a tool call at its stop, with the input it has then).

Pass-through: when an Anthropic upstream served the request, each chunk carries the upstream's own
event in `_native` (see providers/anthropic_stream.py); those are relayed as they came (thinking
and signature deltas included), with the public model id in message_start and Router One's cost
added to the final message_delta's usage (held back until the settled usage chunk arrives), whose
token counts are the ones billed (an upstream's negative, absurd or unreadable counts are not relayed).
"""
from __future__ import annotations

import secrets

import orjson

from .chat_stream_reader import ChatStreamReader
from .messages import MESSAGE_DEFAULTS, STOP_REASONS, anthropic_usage, billed_usage, message_id, start_usage

__all__ = ["MessagesStreamEncoder", "sse_event"]

# Router One error types/codes -> Anthropic error types, for errors raised after the 200
_ERROR_TYPES = {"rate_limit_error": "rate_limit_error", "timeout_error": "timeout_error",
                "invalid_request_error": "invalid_request_error", "authentication_error": "authentication_error",
                "billing_error": "billing_error", "permission_error": "permission_error"}


def sse_event(data: dict) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessagesStreamEncoder(ChatStreamReader):
    def __init__(self) -> None:
        self.started = False
        self.finished = False
        self._index = -1                  # index of the last content block started (-1: none)
        self._text_open = False           # that block is a text block, still open
        self._open_tools: list[int] = []  # tool_use blocks still open (all close at the end)
        self._tools: dict[int, int] = {}  # chat tool_call index -> content block index
        self._tool_ids: dict[int, str | None] = {}   # chat tool_call index -> the upstream's id of its call
        self._stop_reason = "end_turn"
        self._usage: dict | None = None
        self._held: list[dict] = []       # pass-through: message_delta / message_stop, until the cost
        self._model = ""

    # -- one chat-stream chunk (feed, [DONE] and error events: chat_stream_reader.py) -----------
    def _chunk(self, chunk: dict, out: list[bytes]) -> None:
        native = chunk.get("_native")
        if native is not None:
            self._native(native, chunk, out)
            return
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        if not self.started:
            self._start(chunk, out)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if not self._text_open:
                    self._new_block({"type": "text", "text": "", "citations": None}, out)
                    self._text_open = True
                out.append(sse_event({"type": "content_block_delta", "index": self._index,
                                      "delta": {"type": "text_delta", "text": delta["content"]}}))
            for tc in delta.get("tool_calls") or ():
                self._tool_delta(tc, out)
            finish = choice.get("finish_reason")
            if finish and finish != "error":
                self._stop_reason = STOP_REASONS.get(finish, "end_turn")

    def _start(self, chunk: dict, out: list[bytes]) -> None:
        self.started = True
        self._model = chunk.get("model") or ""
        msg = {"id": message_id(str(chunk.get("id") or "")), "type": "message", "role": "assistant",
               "content": [], "model": self._model, "stop_reason": None, "stop_sequence": None,
               "stop_details": None, "usage": anthropic_usage(self._usage), "container": None}
        out.append(sse_event({"type": "message_start", "message": msg}))
        out.append(sse_event({"type": "ping"}))

    def _new_block(self, block: dict, out: list[bytes]) -> None:
        """Starts the next block; an open text block ends first (tool_use blocks stay open)."""
        if self._text_open:
            out.append(sse_event({"type": "content_block_stop", "index": self._index}))
            self._text_open = False
        self._index += 1
        out.append(sse_event({"type": "content_block_start", "index": self._index, "content_block": block}))

    def _close_all(self, out: list[bytes]) -> None:
        last = [self._index] if self._text_open else []
        for index in sorted(self._open_tools + last):
            out.append(sse_event({"type": "content_block_stop", "index": index}))
        self._open_tools, self._text_open = [], False

    def _tool_delta(self, tc: dict, out: list[bytes]) -> None:
        """A delta of tool call `index` (0 when absent). Its first delta opens a tool_use block (the
        upstream's id, or one of Router One's when it sent none); a delta that brings a name and an id
        other than the one the call at that index came with is a new call (an upstream that numbers
        every call 0, or none): a new block, not its arguments appended to the last call's. (A
        delta with only arguments continues the call, whatever id it carries.)"""
        k = tc.get("index", 0)
        fn = tc.get("function") or {}
        call_id = tc.get("id")
        if k in self._tools and call_id and fn.get("name") and self._tool_ids.get(k) not in (None, call_id):
            del self._tools[k]
        if k not in self._tools:
            if not (call_id or fn.get("name") or fn.get("arguments")):
                return                          # nothing yet to open a block with (a bare index)
            self._new_block({"type": "tool_use", "id": call_id or f"toolu_{secrets.token_hex(12)}",
                             "name": fn.get("name") or "", "input": {}, "caller": {"type": "direct"}}, out)
            self._tools[k] = self._index
            self._open_tools.append(self._index)
            self._tool_ids[k] = call_id or None
        args = fn.get("arguments")
        if args and k in self._tools:
            out.append(sse_event({"type": "content_block_delta", "index": self._tools[k],
                                  "delta": {"type": "input_json_delta", "partial_json": args}}))

    def _done(self, out: list[bytes]) -> None:
        if self.finished:
            return
        self.finished = True
        if self._held:                       # pass-through: the upstream's own closing events
            for ev in self._held:
                if ev.get("type") == "message_delta" and self._usage:
                    # cumulative counts (as Anthropic sends them): the billed ones, whatever message_start said
                    ev["usage"] = billed_usage(ev.get("usage"), self._usage, delta=True)
                out.append(sse_event(ev))
            if self._held[-1].get("type") != "message_stop":
                # the upstream's stream ended after its message_delta (the answer was finished: the
                # chat stream says [DONE]) without message_stop, or with one of a type that is no
                # name: a client waits for message_stop, so the stream ends with Router One's
                out.append(sse_event({"type": "message_stop"}))
            return
        if not self.started:
            self._start({}, out)
        self._close_all(out)
        usage = anthropic_usage(self._usage)
        for key in ("cache_creation", "inference_geo", "service_tier"):
            usage.pop(key, None)            # not part of MessageDeltaUsage
        out.append(sse_event({"type": "message_delta",
                              "delta": {"stop_reason": self._stop_reason, "stop_sequence": None,
                                        "stop_details": None, "container": None},
                              "usage": usage}))
        out.append(sse_event({"type": "message_stop"}))

    def _error(self, error: dict, out: list[bytes]) -> None:
        self.finished = True
        kind = _ERROR_TYPES.get(str(error.get("type")), "api_error")
        if error.get("code") in ("upstream_overloaded", "overloaded"):
            kind = "overloaded_error"
        message = str(error.get("message") or "The upstream stream failed")
        out.append(sse_event({"type": "error", "error": {"type": kind, "message": message}, "request_id": None}))

    def _native(self, ev: dict, chunk: dict, out: list[bytes]) -> None:
        self.started = True
        kind = ev.get("type")
        if kind == "message_start" and isinstance(ev.get("message"), dict):
            msg = ev["message"]
            msg["model"] = chunk.get("model") or msg.get("model")
            msg["usage"] = start_usage(msg.get("usage"))    # counts so far, before anything is billed
            for k, v in MESSAGE_DEFAULTS.items():
                msg.setdefault(k, v)
        if kind in ("message_delta", "message_stop"):
            self._held.append(ev)
            return
        out.append(sse_event(ev))

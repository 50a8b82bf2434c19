"""The chat pipeline's SSE stream -> Responses API streaming events (sans-I/O).

Events are written as OpenAI sends them (`event: <type>` and `data: {...}` with a growing
`sequence_number`):

| chat stream                                  | Responses events                                            |
|----------------------------------------------|-------------------------------------------------------------|
| first chunk                                  | response.created, response.in_progress                      |
| `delta.reasoning_content` (first of a run)   | (text closed) response.output_item.added (reasoning),       |
|                                              | content_part.added (reasoning_text)                         |
| `delta.reasoning_content`                    | response.reasoning_text.delta                               |
| `delta.content` (first of a run)             | response.output_item.added (message), content_part.added    |
| `delta.content`                              | response.output_text.delta                                  |
| `delta.refusal` (a run of it)                | content_part.added (refusal), response.refusal.delta        |
| `delta.tool_calls[k]`, first (or a new id)   | (text closed) response.output_item.added (function_call)    |
| `delta.tool_calls[k].function.arguments`     | response.function_call_arguments.delta                      |
| content or a tool call after reasoning       | reasoning_text.done, content_part.done, output_item.done    |
| `finish_reason`                              | output_text.done / content_part.done / arguments.done /     |
|                                              | output_item.done for every open item                        |
| usage chunk, `[DONE]`                        | response.completed (or response.incomplete) with usage+cost |
| `{"error": ...}`                             | response.failed (status failed, error {code, message}, the  |
|                                              | usage billed, which the pipeline sends before the error)    |

After `[DONE]` (or the error) `final` holds the finished Response object, for storing. Reasoning
(vLLM's `delta.reasoning` too) is the item wire/responses_reasoning.py describes.
"""
from __future__ import annotations

import orjson

from .chat_stream_reader import ChatStreamReader
from .responses import finish, item_id, response_usage, text_part
from .responses_reasoning import reasoning_item, reasoning_of

__all__ = ["ResponsesStreamEncoder"]


class ResponsesStreamEncoder(ChatStreamReader):
    def __init__(self, shell: dict) -> None:
        self.resp = shell                       # the Response object being built
        self.final: dict | None = None
        self._seq = 0
        self._text_item: dict | None = None     # the open message item
        self._reasoning: dict | None = None     # the open reasoning item
        self._calls: dict[int, dict] = {}       # chat tool_call index -> function_call item
        self._call_ids: dict[int, str | None] = {}   # chat tool_call index -> the upstream's id of its call
        self._open_calls: list[int] = []
        self._positions: dict[str, int] = {}     # output item id -> its output_index
        self._pieces: dict[str, list[str]] = {}  # open item id -> its text (or arguments) so far, in pieces
        self._finish: str | None = None
        self._usage: dict | None = None
        self._started = False

    def _event(self, out: list[bytes], data: dict) -> None:
        data["sequence_number"] = self._seq
        self._seq += 1
        out.append(b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")

    # feed, and the [DONE] and error events: chat_stream_reader.py
    def _chunk(self, chunk: dict, out: list[bytes]) -> None:
        if not self._started:
            self._start(chunk, out)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            reasoning = reasoning_of(delta)
            if reasoning:
                self._reason(reasoning, out)
            if delta.get("content"):
                self._text(delta["content"], out)
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                self._text(delta["refusal"], out, "refusal")
            for tc in delta.get("tool_calls") or ():
                self._tool(tc, out)
            if choice.get("finish_reason") and choice["finish_reason"] != "error":
                self._finish = choice["finish_reason"]
                self._close_all(out)

    def _start(self, chunk: dict, out: list[bytes]) -> None:
        self._started = True
        if chunk.get("model"):
            self.resp["model"] = chunk["model"]
        self._event(out, {"type": "response.created", "response": dict(self.resp)})
        self._event(out, {"type": "response.in_progress", "response": dict(self.resp)})

    def _index(self, item: dict) -> int:
        return self._positions[item["id"]]

    def _append(self, item: dict) -> None:
        """An output item, its output_index kept (list.index per event was quadratic in the items)."""
        self._positions[item["id"]] = len(self.resp["output"])
        self.resp["output"].append(item)

    def _reason(self, text: str, out: list[bytes]) -> None:
        """A delta of reasoning text: the open reasoning item's one reasoning_text part, the item
        opened (and an open message closed: its answer came before this reasoning) if need be."""
        item = self._reasoning
        if item is None or item["status"] != "in_progress":
            self._close_text(out)
            item = self._reasoning = reasoning_item(None, "in_progress")
            self._append(item)
            self._event(out, {"type": "response.output_item.added", "output_index": self._index(item),
                              "item": dict(item, content=[])})
            item["content"].append({"type": "reasoning_text", "text": ""})
            self._event(out, {"type": "response.content_part.added", "item_id": item["id"],
                              "output_index": self._index(item), "content_index": 0, "part": dict(item["content"][0])})
            self._pieces[item["id"]] = []
        self._pieces[item["id"]].append(text)
        self._event(out, {"type": "response.reasoning_text.delta", "item_id": item["id"],
                          "output_index": self._index(item), "content_index": 0, "delta": text})

    def _close_reasoning(self, out: list[bytes]) -> None:
        item = self._reasoning
        if item is None or item["status"] != "in_progress":
            return
        self._join_pieces(item)
        common = {"item_id": item["id"], "output_index": self._index(item), "content_index": 0}
        part = item["content"][0]
        self._event(out, {"type": "response.reasoning_text.done", **common, "text": part["text"]})
        self._event(out, {"type": "response.content_part.done", **common, "part": dict(part)})
        item["status"] = "completed"
        self._event(out, {"type": "response.output_item.done", "output_index": common["output_index"],
                          "item": dict(item, content=[dict(part)])})

    def _text(self, text: str, out: list[bytes], kind: str = "output_text") -> None:
        """A delta of the answer's text (`kind` output_text) or of a refusal (`kind` refusal): a part
        of that kind in the open message item, opened (and the other kind's part closed) if need be."""
        self._close_reasoning(out)
        item = self._text_item
        if item is None or item["status"] != "in_progress":     # none yet, or closed by a tool call: a new message
            item = self._text_item = {"type": "message", "id": item_id("msg"), "status": "in_progress",
                                      "role": "assistant", "content": []}
            self._append(item)
            self._event(out, {"type": "response.output_item.added", "output_index": self._index(item),
                              "item": dict(item, content=[])})
        if item["id"] not in self._pieces or item["content"][-1]["type"] != kind:
            self._close_part(item, out)
            item["content"].append(text_part("") if kind == "output_text" else {"type": "refusal", "refusal": ""})
            self._event(out, {"type": "response.content_part.added", "item_id": item["id"],
                              "output_index": self._index(item), "content_index": len(item["content"]) - 1,
                              "part": dict(item["content"][-1])})
            self._pieces[item["id"]] = []
        self._pieces[item["id"]].append(text)
        delta = {"type": f"response.{kind}.delta", "item_id": item["id"], "output_index": self._index(item),
                 "content_index": len(item["content"]) - 1, "delta": text}
        if kind == "output_text":
            delta["logprobs"] = []
        self._event(out, delta)

    def _close_part(self, item: dict, out: list[bytes]) -> None:
        """The message item's open content part (if any): its text joined, its done events."""
        if item["id"] not in self._pieces:
            return
        self._join_pieces(item)
        idx, at, part = self._index(item), len(item["content"]) - 1, item["content"][-1]
        common = {"item_id": item["id"], "output_index": idx, "content_index": at}
        if part["type"] == "refusal":
            self._event(out, {"type": "response.refusal.done", **common, "refusal": part["refusal"]})
        else:
            self._event(out, {"type": "response.output_text.done", **common, "text": part["text"], "logprobs": []})
        self._event(out, {"type": "response.content_part.done", **common, "part": dict(part)})

    def _close_text(self, out: list[bytes]) -> None:
        item = self._text_item
        if item is None or item["status"] != "in_progress":
            return
        self._close_part(item, out)
        item["status"] = "completed"
        self._event(out, {"type": "response.output_item.done", "output_index": self._index(item), "item": item})

    def _tool(self, tc: dict, out: list[bytes]) -> None:
        """A delta of tool call `index` (0 when absent); one that brings a name and an id other than
        the one the call at that index came with is a new call (an upstream that numbers every call
        0, or none), not more arguments for the last one; one with only arguments continues it."""
        k = tc.get("index", 0)
        fn = tc.get("function") or {}
        item = self._calls.get(k)
        if item is not None and tc.get("id") and fn.get("name") and self._call_ids.get(k) not in (None, tc["id"]):
            if k in self._open_calls:
                self._open_calls.remove(k)
                self._close_call(item, out)
            item = None
        if item is None:
            if not (tc.get("id") or fn.get("name") or fn.get("arguments")):
                return                          # nothing yet to open an item with (a bare index)
            self._close_reasoning(out)
            self._close_text(out)
            item = self._calls[k] = {"type": "function_call", "id": item_id("fc"),
                                     "call_id": tc.get("id") or item_id("call"), "name": fn.get("name") or "",
                                     "arguments": "", "status": "in_progress"}
            self._call_ids[k] = tc.get("id") or None
            self._pieces[item["id"]] = []
            self._append(item)
            self._open_calls.append(k)
            self._event(out, {"type": "response.output_item.added", "output_index": self._index(item),
                              "item": dict(item)})
        if fn.get("arguments"):
            pieces = self._pieces.get(item["id"])
            if pieces is not None:
                pieces.append(fn["arguments"])
            else:                               # after the call was closed (a finish_reason came): rare
                item["arguments"] += fn["arguments"]
            self._event(out, {"type": "response.function_call_arguments.delta", "item_id": item["id"],
                              "output_index": self._index(item), "delta": fn["arguments"]})

    def _close_all(self, out: list[bytes]) -> None:
        self._close_reasoning(out)
        self._close_text(out)
        for k in self._open_calls:
            self._close_call(self._calls[k], out)
        self._open_calls = []

    def _join_pieces(self, item: dict) -> None:
        """An open item's text or arguments, joined once (`+=` on a dict value copied all of it per delta)."""
        pieces = self._pieces.pop(item["id"], None)
        if pieces is not None:
            if item["type"] == "message":
                part = item["content"][-1]
                part["refusal" if part["type"] == "refusal" else "text"] = "".join(pieces)
            elif item["type"] == "reasoning":
                item["content"][0]["text"] = "".join(pieces)
            else:
                item["arguments"] = "".join(pieces)

    def _close_call(self, item: dict, out: list[bytes]) -> None:
        self._join_pieces(item)
        idx = self._index(item)
        self._event(out, {"type": "response.function_call_arguments.done", "item_id": item["id"],
                          "output_index": idx, "name": item["name"], "arguments": item["arguments"]})
        item["status"] = "completed"
        self._event(out, {"type": "response.output_item.done", "output_index": idx, "item": dict(item)})

    def _done(self, out: list[bytes]) -> None:
        if self.final is not None:
            return
        if not self._started:
            self._start({}, out)
        self._close_all(out)
        resp = finish(self.resp, self._finish, self._usage)
        self.final = resp
        kind = "response.completed" if resp["status"] == "completed" else "response.incomplete"
        self._event(out, {"type": kind, "response": resp})

    def _error(self, error: dict, out: list[bytes]) -> None:
        if not self._started:
            self._start({}, out)
        resp = self.resp
        for item in resp["output"]:
            self._join_pieces(item)        # what was streamed of the items still open
        resp["status"] = "failed"
        if self._usage is not None:                 # what the failed stream was billed
            resp["usage"] = response_usage(self._usage)
        code = error.get("code") if error.get("code") in _ERROR_CODES else "server_error"
        resp["error"] = {"code": code, "message": str(error.get("message") or "The upstream stream failed")}
        self.final = resp
        self._event(out, {"type": "response.failed", "response": resp})


# ResponseError.code's enum values Router One can meet mid-stream
_ERROR_CODES = {"server_error", "rate_limit_exceeded", "invalid_prompt"}

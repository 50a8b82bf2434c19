"""Gemini `streamGenerateContent?alt=sse` events -> OpenAI `chat.completion.chunk` dicts.

Each SSE event is a whole `GenerateContentResponse` carrying only new parts. Per event and candidate:
- the first chunk of a choice carries `role: "assistant"`;
- thought text (`thought: true` parts) -> `reasoning_content`, visible text -> `content`, in one delta;
- each `functionCall` part -> one complete `tool_calls` entry (`index` = position among this choice's
  tool calls so far, with `id`, `type`, `name` and the full `arguments` in one fragment);
- `finishReason` -> a separate final chunk `{delta: {}, finish_reason}` (`tool_calls` if the choice
  called tools);
- `logprobsResult` -> the content chunk's `logprobs`.
`usageMetadata` updates `usage` (the last one wins; Gemini reports running totals); output after the
last one makes its completion count Router One's own count of what was relayed. Gemini has no
terminal sentinel, so `done` turns true once every expected choice (`n`) has a finishReason, or when
the prompt was blocked. An `{"error": ...}` event raises the mapped `UpstreamError`.
"""
from __future__ import annotations

import time

import orjson

from ..errors import UpstreamUnavailable
from ..wire.types import Usage
from .base import SSEEvent
from .gemini_errors import error_from_event
from .gemini_response import candidate_index, completion_id, finish_reason, logprobs_from, split_parts, usage_from

__all__ = ["GeminiStream"]


class GeminiStream:
    __slots__ = ("usage", "done", "quiet", "_provider", "_id", "_created", "_model", "_choices", "_started",
                 "_tool_calls", "_finished", "_usage_raw")

    def __init__(self, model: str, *, choices: int = 1, provider: str = "gemini") -> None:
        self.usage: Usage | None = None
        self.done = False
        self.quiet = False             # the last event fed said nothing (`_says_nothing`): a keep-alive
        self._usage_raw: object = None     # the last usageMetadata, as sent
        self._provider = provider
        self._id: str | None = None
        self._created = int(time.time())
        self._model = model
        self._choices = max(1, choices)
        self._started: set[int] = set()
        self._tool_calls: dict[int, int] = {}
        self._finished: set[int] = set()

    def feed(self, event: SSEEvent) -> list[dict]:
        self.quiet = True
        data = event.data.strip()
        if not data:
            return []
        try:
            resp = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamUnavailable("Gemini sent a malformed stream event", provider=self._provider) from None
        if not isinstance(resp, dict):
            raise UpstreamUnavailable("Gemini sent a malformed stream event", provider=self._provider)
        if "error" in resp:
            raise error_from_event(resp["error"], provider=self._provider)
        self.quiet = self._says_nothing(resp)
        if self._id is None:
            self._id = completion_id(resp)
        if isinstance(resp.get("modelVersion"), str):
            self._model = resp["modelVersion"]
        usage = usage_from(resp.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        candidates = [c for c in resp.get("candidates") or () if isinstance(c, dict)]
        if not candidates and (resp.get("promptFeedback") or {}).get("blockReason"):
            self.done = True
            return [self._chunk(0, {"role": "assistant", "content": None}, "content_filter")]
        out: list[dict] = []
        for cand in candidates:
            out.extend(self._candidate(cand, candidate_index(cand)))
        if usage is None and self.usage is not None and "completion_tokens" not in self.usage.unreadable \
                and any(c["choices"][0]["delta"].get("content") or c["choices"][0]["delta"].get("tool_calls")
                        or c["choices"][0]["delta"].get("reasoning_content") for c in out):
            # output after the last usageMetadata: that count was not the final one; Router One
            # counts what was relayed (Usage.filled_from)
            self.usage.unreadable += ("completion_tokens",)
        return out

    def _says_nothing(self, resp: dict) -> bool:
        """An event with no candidate that has a part other than empty text (no parts, no content,
        no candidates), no finishReason, no blocked prompt, and the same usageMetadata as before (or
        none): sent every 50 ms such events held a stream and its hold open until stream_timeout_s.
        Running usage totals that grow are work (thinking that streams nothing), not a keep-alive."""
        usage = resp.get("usageMetadata")
        if usage is not None and usage != self._usage_raw:
            self._usage_raw = usage
            return False
        if resp.get("promptFeedback"):
            return False
        for cand in resp.get("candidates") or ():
            if not isinstance(cand, dict):
                continue
            if cand.get("finishReason") not in (None, "", "FINISH_REASON_UNSPECIFIED"):
                return False
            content = cand.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else ():
                if not (isinstance(part, dict) and part.get("text") == "" and set(part) <= {"text", "thought"}):
                    return False
        return True

    def _candidate(self, cand: dict, index: int) -> list[dict]:
        out = []
        delta: dict = {}
        if index not in self._started:
            self._started.add(index)
            delta["role"] = "assistant"
        text, calls, thoughts = split_parts(cand)
        if thoughts:
            delta["reasoning_content"] = thoughts
        if text:
            delta["content"] = text
        if calls:
            first = self._tool_calls.get(index, 0)
            delta["tool_calls"] = [{"index": first + k, **call} for k, call in enumerate(calls)]
            self._tool_calls[index] = first + len(calls)
        if delta:
            out.append(self._chunk(index, delta, None, logprobs_from(cand)))
        reason = cand.get("finishReason")
        if reason and reason != "FINISH_REASON_UNSPECIFIED" and index not in self._finished:
            self._finished.add(index)
            out.append(self._chunk(index, {}, finish_reason(reason, self._tool_calls.get(index, 0) > 0)))
            self.done = len(self._finished) >= self._choices
        return out

    def _chunk(self, index: int, delta: dict, reason: str | None, logprobs: dict | None = None) -> dict:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                "model": self._model,
                "choices": [{"index": index, "delta": delta, "finish_reason": reason, "logprobs": logprobs}]}

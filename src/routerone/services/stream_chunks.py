"""A streamed reply's chunks, one at a time (services/streaming.py relays them): whether the held
chunks carry content yet, each chunk checked and put as OpenAI's protocol has it, and the relayed
text counted (what is billed when the upstream's own count never comes) and kept for the request
log (bounded: tokens.TokenCounter keeps at most ~100k characters, the log LOG_TEXT_CAP)."""
from __future__ import annotations

import asyncio
from typing import Callable

from ..errors import UpstreamUnavailable
from ..providers.guarded import FINISH_REASONS, StreamNumbering, parts_text, spec_finish_reason
from ..tokens import PIECE_CHARS, TokenCounter, load_tokenizer, tokenizer_loaded
from ..wire.responses_reasoning import reasoning_texts

__all__ = ["LOG_TEXT_CAP", "RelayedText", "has_content", "spec_chunk", "unreadable_chunk",
           "kept_output_chars", "output_too_long"]

LOG_TEXT_CAP = 65_536        # characters of a streamed completion kept for the request log (log_content)
KEPT_CHARS_PER_TOKEN = 32    # far above any tokenizer's ~4: only an upstream ignoring max_tokens gets there
KEPT_SLACK_CHARS = 1 << 20   # plus reasoning that some servers do not count in max_tokens (DeepSeek's)
_loading: list = []          # the tokenizer's background load, once started (see RelayedText.add)
_TEXT_OR_NONE = (str, type(None))


def unreadable_chunk(provider: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"{provider}: upstream sent a stream chunk Router One cannot read", provider=provider)


def has_content(chunks: list[dict], provider: str) -> bool:
    """Whether the held chunks carry content yet (reasoning text is content here: a thinking model
    streams it for minutes before its answer). A chunk of the wrong shape (choices or a delta that
    is not an object, content that is not text) is an upstream failure, raised before the stream
    is committed to, so the router can still fail over."""
    try:
        for c in chunks:
            for ch in c.get("choices") or ():
                d = ch.get("delta") or {}
                text = d.get("content")
                if text is not None and text.__class__ is not str and text.__class__ is not list:
                    raise TypeError("content")
                if text or d.get("tool_calls") or d.get("refusal") or ch.get("finish_reason") \
                        or d.get("reasoning_content").__class__ is str and d["reasoning_content"] \
                        or d.get("reasoning").__class__ is str and d["reasoning"]:
                    return True
    except (AttributeError, TypeError):
        raise unreadable_chunk(provider) from None
    return False


def spec_chunk(chunk: dict, numbering: StreamNumbering | None,
               relayed: Callable[..., None]) -> tuple[bool, bool]:
    """Check one chunk's choices and put them as OpenAI's protocol has it, in place; `relayed` gets
    its output text (reasoning with log=False). Returns (finished, said): whether a choice
    finished, and whether the chunk (as put) gives the client anything: usage, a finish, or a delta
    value other than its role (text, reasoning, tool calls, a refusal, audio, ...); a delta that is
    `{}`, a role again or empty content says nothing (how a keep-alive chunk is told apart). Raises
    TypeError or AttributeError for a chunk of the wrong shape (the caller's upstream failure); see
    ChatStream._frame for what is checked and what is put right."""
    finished = False
    said = bool(chunk.get("usage"))
    for ch in chunk.get("choices") or ():
        ix = ch.setdefault("index", 0)
        if ix.__class__ is not int:
            raise TypeError("choice index")   # how a client tells the choices apart
        if numbering is not None:
            ix = ch["index"] = numbering.choice(ix)
        d = ch.get("delta")
        if d.__class__ is not dict:
            if d is not None:
                raise TypeError("delta")
            d = ch["delta"] = {}
        if "role" in d and d["role"] != "assistant":
            d["role"] = "assistant"
        if "logprobs" in ch and ch["logprobs"].__class__ is not dict:
            ch["logprobs"] = None
        text = d.get("content")
        if text:
            if text.__class__ is not str:     # a list of parts: its text, as OpenAI's clients expect
                text = d["content"] = parts_text(text)
            relayed(text)
        # reasoning text (Anthropic's thinking, Gemini's thoughts, DeepSeek's; vLLM's `reasoning`): output tokens
        for reasoning in reasoning_texts(d):     # the same text as both fields: counted once
            relayed(reasoning, log=False)
        calls = d.get("tool_calls")
        if calls is None:
            d.pop("tool_calls", None)               # null: none (OpenAI's delta has a list or no key)
        else:
            if calls.__class__ is not list:
                raise TypeError("tool_calls")        # "" and {} too: not a list of calls
            for tc in calls:
                if tc.get("type", "function") != "function":
                    tc["type"] = "function"          # the only type of a chat tool call
                fn = tc.get("function")
                if fn is None:
                    fn = tc["function"] = {}         # the openai SDK's stream helper asserts one
                if tc.get("index", 0).__class__ is not int or tc.get("id").__class__ not in _TEXT_OR_NONE \
                        or fn.get("name").__class__ not in _TEXT_OR_NONE:
                    raise TypeError("tool call")   # what every client keys tool calls by, and names them
                if numbering is not None:
                    tc["index"] = numbering.call(ix, tc)
                args = fn.get("arguments")
                if args is not None:
                    if args.__class__ is not str:
                        raise TypeError("arguments")     # {} too: not text
                    if args:
                        relayed(args)
        if not said:       # the delta as put: its content text, no null tool_calls
            for key, value in d.items():
                if value and key != "role":
                    said = True
                    break
        finish = ch.setdefault("finish_reason", None)     # a key every chunk's choice has
        if finish == "":
            ch["finish_reason"] = None           # not finished (an empty name is none)
        elif finish:
            if finish.__class__ is not str:
                raise TypeError("finish_reason")
            if finish not in FINISH_REASONS and finish != "error":    # "error": Router One's own
                ch["finish_reason"] = spec_finish_reason(finish)
            finished = said = True
    return finished, said


def kept_output_chars(allowed_tokens: int) -> int:
    """The most output characters a stream whose whole output is kept (/v1/responses) may relay."""
    return KEPT_CHARS_PER_TOKEN * allowed_tokens + KEPT_SLACK_CHARS


def output_too_long(provider: str, allowed_tokens: int) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"The upstream stream went on far past the {allowed_tokens} output tokens the "
                               f"request allows ({kept_output_chars(allowed_tokens)} characters); it was ended",
                               provider=provider, code="upstream_output_too_long")


class RelayedText:
    """The output text relayed to the client: counted as it passes (bounded memory), and with
    `keep_log` its first LOG_TEXT_CAP characters kept for the request log."""
    __slots__ = ("counter", "chars", "log_text", "_log_chars")

    def __init__(self, keep_log: bool) -> None:
        self.counter = TokenCounter()
        self.chars = 0
        self.log_text: list[str] | None = [] if keep_log else None
        self._log_chars = 0

    def add(self, text: str, *, log: bool = True) -> None:
        """Count relayed output text (billed if the upstream's own count never comes); with `log`,
        keep it for the request log too (the answer's text, not reasoning)."""
        self.counter.add(text)
        self.chars += len(text)
        if self.counter.pending_chars > PIECE_CHARS and not tokenizer_loaded() and not _loading:
            # a long stream will need the tokenizer to keep its count bounded: load it off the loop
            _loading.append(asyncio.get_running_loop().run_in_executor(None, load_tokenizer))
        if log and self.log_text is not None and self._log_chars < LOG_TEXT_CAP:
            self.log_text.append(text[:LOG_TEXT_CAP - self._log_chars])
            self._log_chars += len(self.log_text[-1])
            if self._log_chars >= LOG_TEXT_CAP:
                self.log_text.append("\u2026 [truncated]")

    def logged(self) -> str | None:
        """The request log's copy of the completion (None without log_content)."""
        return "".join(self.log_text) if self.log_text is not None else None

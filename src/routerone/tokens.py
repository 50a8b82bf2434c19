"""Offline token counting for reservations, limits and context checks.

Short prompts are bounded by their UTF-8 length: every o200k/cl100k token is at least one byte, so
bytes >= tokens always, and the surplus is small in absolute terms and handed back at settlement.
Prompts of EXACT_COUNT_MIN_BYTES or more are counted exactly with o200k (`bpe-openai`, which ships
its encodings: no download). The tokenizer costs ~135 MB of memory and ~1 s to load, so it is
loaded only when a long prompt (or an upstream that reports no usage) first needs it.
"""
from __future__ import annotations

from functools import lru_cache

__all__ = ["count_text_tokens", "count_prompt_tokens", "needs_tokenizer", "load_tokenizer",
           "MESSAGE_OVERHEAD_TOKENS", "EXACT_COUNT_MIN_BYTES"]

MESSAGE_OVERHEAD_TOKENS = 4    # role and separators per message, as OpenAI's counting guide does
EXACT_COUNT_MIN_BYTES = 4096


@lru_cache(maxsize=1)
def load_tokenizer():
    import bpe_openai   # heavy (memory): imported on first need only
    return bpe_openai.get_encoding("o200k_base")


def needs_tokenizer(text: str) -> bool:
    """True when counting `text` would load the tokenizer now (the caller may do it off-loop)."""
    return (load_tokenizer.cache_info().currsize == 0 and len(text) * 4 >= EXACT_COUNT_MIN_BYTES
            and len(text.encode()) >= EXACT_COUNT_MIN_BYTES)


def count_text_tokens(text: str) -> int:
    return len(load_tokenizer().encode(text)) if text else 0


def count_prompt_tokens(text: str, n_messages: int) -> int:
    """An upper-leaning count for a prompt: its text plus per-message framing."""
    n_bytes = len(text.encode())
    body = count_text_tokens(text) if n_bytes >= EXACT_COUNT_MIN_BYTES else n_bytes
    return body + MESSAGE_OVERHEAD_TOKENS * n_messages + 3

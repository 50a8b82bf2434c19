"""Offline token counting (o200k via `bpe-openai`, which ships its encodings: no download)."""
from __future__ import annotations

from functools import lru_cache

import bpe_openai

__all__ = ["count_text_tokens", "count_prompt_tokens", "MESSAGE_OVERHEAD_TOKENS"]

MESSAGE_OVERHEAD_TOKENS = 4   # role and separators per message, as OpenAI's counting guide does


@lru_cache(maxsize=1)
def _encoding():
    return bpe_openai.get_encoding("o200k_base")


def count_text_tokens(text: str) -> int:
    return len(_encoding().encode(text)) if text else 0


def count_prompt_tokens(text: str, n_messages: int) -> int:
    """An upper-leaning estimate for a prompt: its text plus per-message framing."""
    return count_text_tokens(text) + MESSAGE_OVERHEAD_TOKENS * n_messages + 3

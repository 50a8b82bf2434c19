"""The adapter for each wire protocol. One instance each: adapters are stateless."""
from __future__ import annotations

from .anthropic import AnthropicAdapter
from .base import ProviderAdapter
from .gemini import GeminiAdapter
from .openai_compat import OpenAICompatAdapter

__all__ = ["ADAPTERS", "adapter_for"]

ADAPTERS: dict[str, ProviderAdapter] = {
    "openai": OpenAICompatAdapter(),
    "gemini": GeminiAdapter(),
    "anthropic": AnthropicAdapter(),
}


def adapter_for(protocol: str) -> ProviderAdapter:
    return ADAPTERS[protocol]

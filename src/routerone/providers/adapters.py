"""The adapter for each wire protocol. One instance each: adapters are stateless."""
from __future__ import annotations

from .anthropic import AnthropicAdapter
from .base import ProviderAdapter
from .gemini import GeminiAdapter
from .guarded import guarded
from .openai_compat import OpenAICompatAdapter

__all__ = ["ADAPTERS", "adapter_for"]

# wrapped: a reply an adapter cannot read is an upstream failure (502), never a 500 (see guarded.py)
ADAPTERS: dict[str, ProviderAdapter] = {
    "openai": guarded(OpenAICompatAdapter()),
    "gemini": guarded(GeminiAdapter()),
    "anthropic": guarded(AnthropicAdapter()),
}


def adapter_for(protocol: str) -> ProviderAdapter:
    return ADAPTERS[protocol]

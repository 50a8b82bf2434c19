"""OpenAI wire types: the chat request Router One accepts and the objects it emits."""
from .chat import ChatRequest, parse_chat_request
from .types import Usage

__all__ = ["ChatRequest", "parse_chat_request", "Usage"]

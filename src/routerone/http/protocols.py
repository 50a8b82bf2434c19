"""The route table of the non-chat client protocols (each lives in its own module)."""
from __future__ import annotations

from aiohttp import web

from .embeddings import add_embeddings_routes
from .messages import add_messages_routes
from .responses import add_responses_routes

__all__ = ["add_protocol_routes"]


def add_protocol_routes(app: web.Application) -> None:
    add_messages_routes(app)
    add_embeddings_routes(app)
    add_responses_routes(app)

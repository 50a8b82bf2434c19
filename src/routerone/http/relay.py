"""Shared by the non-chat protocol routes: key lookup from either credential header, and relaying
a pipeline stream through a protocol's encoder."""
from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from ..services.auth import AuthContext
from ..services.call import Reply
from .runtime import RUNTIME

__all__ = ["authenticate", "relay_stream"]

_CLIENT_GONE = (ConnectionResetError, ConnectionError)


async def authenticate(request: web.Request, *, x_api_key: bool = False) -> AuthContext:
    """`Authorization: Bearer <key>`, or (Anthropic clients) `x-api-key: <key>`."""
    header = request.headers.get("Authorization")
    if x_api_key and not header and request.headers.get("x-api-key"):
        header = "Bearer " + request.headers["x-api-key"].strip()
    return await request.app[RUNTIME].auth.authenticate(header)


async def relay_stream(request: web.Request, reply: Reply, encode: Callable[[bytes], bytes],
                       before_last: Callable[[], Awaitable[bytes]] | None = None) -> web.StreamResponse:
    """Write the pipeline's stream as `encode` renders it. `before_last` runs before the final
    bytes go out (Responses stores the finished response there, so a client that reads the last
    event and at once sends `previous_response_id` finds it) and may add bytes of its own."""
    stream = reply.stream
    assert stream is not None
    resp = web.StreamResponse(headers={**reply.headers, "Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    try:
        await resp.prepare(request)
        async for data in stream:
            out = encode(data)
            if stream.ended:
                if before_last is not None:
                    out += await before_last()
                await resp.write_eof(out)
            elif out:
                await resp.write(out)
    except _CLIENT_GONE:
        stream.abandon()
        return resp
    except BaseException:
        await stream.close()
        raise
    await stream.close()
    return resp

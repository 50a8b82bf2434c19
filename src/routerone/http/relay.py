"""Shared by the non-chat protocol routes: key lookup from either credential header, and relaying
a pipeline stream through a protocol's encoder."""
from __future__ import annotations

import asyncio
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
                       before_last: Callable[[], Awaitable[bytes]] | None = None, *,
                       ping: Callable[[], bytes] | None = None, ping_interval_s: float = 15.0) -> web.StreamResponse:
    """Write the pipeline's stream as `encode` renders it. `before_last` runs before the final
    bytes go out (Responses stores the finished response there, so a client that reads the last
    event and at once sends `previous_response_id` finds it) and may add bytes of its own. With
    `ping`, what it returns is written whenever the upstream is silent for `ping_interval_s` (Claude
    Code gives up on a stream after 300 s without a byte; upstreams other than Anthropic never ping)."""
    stream = reply.stream
    assert stream is not None
    resp = web.StreamResponse(headers={**reply.headers, "Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    pending: asyncio.Future | None = None
    try:
        await resp.prepare(request)
        it = stream.__aiter__()
        while True:
            if ping is None:
                try:
                    data = await it.__anext__()
                except StopAsyncIteration:
                    break
            else:
                pending = asyncio.ensure_future(it.__anext__())
                while not (await asyncio.wait((pending,), timeout=ping_interval_s))[0]:
                    beat = ping()
                    if beat:
                        await resp.write(beat)
                done, pending = pending, None
                try:
                    data = done.result()
                except StopAsyncIteration:
                    break
            out = encode(data)
            if stream.ended:
                if before_last is not None:
                    out += await before_last()
                await resp.write_eof(out)
            elif out:
                await resp.write(out)
    except _CLIENT_GONE:
        if pending is not None:        # a read is in flight: abandon the stream once it is done
            request.app[RUNTIME].chat.spawn(_abandon_after(pending, stream))
        else:
            stream.abandon()
        return resp
    except BaseException:
        if pending is not None:
            pending.cancel()
        await stream.close()
        raise
    await stream.close()
    return resp


async def _abandon_after(pending: asyncio.Future, stream) -> None:
    try:
        await pending
    except BaseException:  # noqa: BLE001 - whatever the read did, the stream is settled below
        pass
    stream.abandon()

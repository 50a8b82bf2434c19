"""Shared by the non-chat protocol routes: key lookup from either credential header, and relaying
a pipeline stream through a protocol's encoder."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from aiohttp import web

from ..services.auth import AuthContext
from ..services.call import Reply
from .guard import abort
from .runtime import RUNTIME

__all__ = ["authenticate", "relay_stream"]

log = logging.getLogger("routerone.http")
_CLIENT_GONE = (ConnectionResetError, ConnectionError)
WRITE_NEVER_WAITS_BYTES = 32 * 1024       # below the transport's high-water mark (64 KiB): a write cannot pause


class _ClientStalled(Exception):
    """A write the client did not take within client_write_timeout_s (not any other timeout)."""


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
    Code gives up on a stream after 300 s without a byte; upstreams other than Anthropic never ping).
    A write the client does not take within `client_write_timeout_s` (it stopped reading) ends the
    stream as on /v1/chat/completions: the upstream is closed, what was relayed is settled (499), the
    connection dropped."""
    stream = reply.stream
    assert stream is not None
    write_timeout_s = request.app[RUNTIME].settings.client_write_timeout_s

    async def write(data: bytes, *, eof: bool = False, prepare: bool = False) -> None:
        transport = request.transport
        if not (eof or prepare) and transport is not None \
                and transport.get_write_buffer_size() + len(data) < WRITE_NEVER_WAITS_BYTES:
            await resp.write(data)     # the socket buffer takes it: no deadline (and no timer) needed
            return
        try:
            async with asyncio.timeout(write_timeout_s):
                await (resp.prepare(request) if prepare else resp.write_eof(data) if eof else resp.write(data))
        except TimeoutError:
            raise _ClientStalled() from None

    resp = web.StreamResponse(headers={**reply.headers, "Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    pending: asyncio.Future | None = None
    try:
        await write(b"", prepare=True)
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
                        await write(beat)
                done, pending = pending, None
                try:
                    data = done.result()
                except StopAsyncIteration:
                    break
            out = encode(data)
            if stream.ended:
                if before_last is not None:
                    out += await before_last()
                await write(out, eof=True)
            elif out:
                await write(out)
    except _CLIENT_GONE:
        if pending is not None:        # a read is in flight: abandon the stream once it is done
            request.app[RUNTIME].chat.spawn(_abandon_after(pending, stream))
        else:
            stream.abandon()
        return resp
    except _ClientStalled:
        log.warning("stream %s: the client stopped reading for %gs; closing it", stream.call.request_id,
                    write_timeout_s)
        abort(request)
        if pending is not None:
            pending.cancel()
        await stream.close()
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

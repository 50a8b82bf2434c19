"""The only network code for providers: one pooled aiohttp client, with connect / first-byte /
idle-between-chunks timeouts. Failures become `UpstreamError`s the router can act on."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator, Mapping

import aiohttp

from ..errors import UpstreamTimeout, UpstreamUnavailable
from .base import UpstreamRequest

__all__ = ["Transport", "Timeouts", "UpstreamResponse", "UpstreamStream"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 10.0
    first_byte_s: float = 120.0
    idle_s: float = 120.0


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class UpstreamStream:
    """An open upstream response body. Iterate for raw byte chunks; always `close()`."""

    __slots__ = ("status", "headers", "_resp", "_idle_s")

    def __init__(self, resp: aiohttp.ClientResponse, idle_s: float) -> None:
        self._resp = resp
        self._idle_s = idle_s
        self.status = resp.status
        self.headers = resp.headers

    async def read_all(self) -> bytes:
        async with asyncio.timeout(self._idle_s):   # a deadline, not a new task (cheaper than wait_for)
            return await self._resp.read()

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self._resp.content
        while True:
            try:
                async with asyncio.timeout(self._idle_s):
                    data = await content.readany()
            except asyncio.TimeoutError:
                raise UpstreamTimeout("The upstream stream stalled (idle timeout)") from None
            except (aiohttp.ClientError, ConnectionError) as exc:
                raise UpstreamUnavailable(f"The upstream connection failed mid-stream ({type(exc).__name__})") from None
            if not data:
                return
            yield data

    def close(self) -> None:
        self._resp.release() if self._resp.content.at_eof() else self._resp.close()


class Transport:
    def __init__(self, timeouts: Timeouts | None = None, *, limit: int = 0) -> None:
        self.timeouts = timeouts or Timeouts()
        self._session: aiohttp.ClientSession | None = None
        self._connect_timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect_s,
                                                      connect=self.timeouts.connect_s)
        self._limit = limit

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=60, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",),
                json_serialize=None)  # type: ignore[arg-type]
        return self._session

    async def open(self, req: UpstreamRequest, *, provider: str = "") -> UpstreamStream:
        """Send the request and wait for the status line and headers (the first byte)."""
        t = self.timeouts
        try:
            async with asyncio.timeout(t.first_byte_s):
                resp = await self._client().post(req.url, data=req.body, headers=req.headers,
                                                 timeout=self._connect_timeout)
        except asyncio.TimeoutError:
            raise UpstreamTimeout(f"{provider}: no response within {t.first_byte_s:g}s", provider=provider) from None
        except aiohttp.ClientConnectorError:
            raise UpstreamUnavailable(f"{provider}: cannot connect", provider=provider) from None
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            raise UpstreamUnavailable(f"{provider}: connection failed ({type(exc).__name__})",
                                      provider=provider) from None
        return UpstreamStream(resp, t.idle_s)

    async def send(self, req: UpstreamRequest, *, provider: str = "") -> UpstreamResponse:
        stream = await self.open(req, provider=provider)
        try:
            body = await stream.read_all()
        except asyncio.TimeoutError:
            raise UpstreamTimeout(f"{provider}: response body stalled", provider=provider) from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamUnavailable(f"{provider}: connection failed ({type(exc).__name__})",
                                      provider=provider) from None
        finally:
            stream.close()
        return UpstreamResponse(stream.status, stream.headers, body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

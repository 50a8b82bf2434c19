"""Shared fixtures: a fake OpenAI upstream, real gateways on real sockets, and OpenAI SDK clients.

    def test_x(openai_client, fake_requests):               # sync SDK, funded key, default gateway
        openai_client.chat.completions.create(model="gpt-4o", messages=[...])
        assert fake_requests[-1]["model"] == "gpt-4o"       # what the upstream received

    def test_y(gateway, make_openai_client):                 # a gateway with its own settings
        gw = gateway(max_retries=0, max_body_bytes=4096)
        client = make_openai_client(gw)                      # new funded key on that gateway

Every response a test receives through `openai_client`, `async_openai_client`, `make_openai_client`
or a client on `openai_wire.transport()` is recorded; at teardown each one must validate against
OpenAI's spec (see `openai_wire`). Provider-specific fixtures belong in their own test packages.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import AsyncIterator, Callable, Iterator

import httpx2
import pytest
from openai import AsyncOpenAI, OpenAI

from openai_schema import wire_problems
from routerone.testing import fake_openai
from routerone.testing.harness import Gateway
from routerone.testing.threaded import ThreadedServer

FAKE_UPSTREAM_KEY = "sk-fake-upstream-0123456789"


# -- the fake upstream ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[ThreadedServer]:
    """One fake OpenAI upstream for the session; `.base_url` (ends in /v1) and `.api_key` (the bearer
    token it insists on). Script it per request with directives in the last user message
    (`[[error:429]]`, ...); `.app["fake"].requests` holds the bodies it received."""
    with ThreadedServer(lambda: fake_openai.make_app(api_key=FAKE_UPSTREAM_KEY)) as srv:
        srv.base_url = srv.url + "/v1"     # type: ignore[attr-defined]
        srv.api_key = FAKE_UPSTREAM_KEY    # type: ignore[attr-defined]
        yield srv


@pytest.fixture
def fake_requests(fake_upstream: ThreadedServer) -> list[dict]:
    """The request bodies the fake upstream receives during this test, oldest first."""
    requests: list[dict] = fake_upstream.app["fake"].requests   # type: ignore[index]
    requests.clear()
    return requests


# -- gateways ---------------------------------------------------------------------------------

@pytest.fixture
def gateway(tmp_path: Path, fake_upstream: ThreadedServer) -> Iterator[Callable[..., Gateway]]:
    """Factory: `gateway(providers=None, **settings_overrides)` starts a Router One on its own
    SQLite file; stopped at teardown. Default providers: "openai" -> the session's fake upstream."""
    started: list[Gateway] = []
    counter = itertools.count(1)

    def make(providers: dict[str, tuple[str, str]] | None = None, **overrides) -> Gateway:
        if providers is None:
            providers = {"openai": (fake_upstream.base_url, FAKE_UPSTREAM_KEY)}
        gw = Gateway.for_upstreams(str(tmp_path / f"gateway-{next(counter)}.sqlite"), providers, **overrides)
        gw.start()
        started.append(gw)
        return gw

    yield make
    for gw in reversed(started):
        gw.stop()


@pytest.fixture
def gw(gateway: Callable[..., Gateway]) -> Gateway:
    """A gateway with default settings in front of the fake upstream."""
    return gateway()


@pytest.fixture
def funded_key(gw: Gateway) -> tuple[str, int]:
    """(secret, account_id): a user key on `gw` whose account holds $10."""
    return gw.new_key(balance_micros=10_000_000)


# -- recording what Router One sends, and checking it against OpenAI's spec --------------------

class _Recorded:
    def __init__(self, request: httpx2.Request, response: httpx2.Response) -> None:
        self.method, self.path = request.method, request.url.path
        self.anthropic_client = "anthropic-version" in request.headers   # Anthropic's SDKs always send it
        self.status = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = dict(response.headers)
        self.body = bytearray()

    def problems(self) -> list[str]:
        return wire_problems(self.method, self.path, self.status, self.content_type, bytes(self.body))


class _TeeStream(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, rec: _Recorded) -> None:
        self.inner, self.rec = inner, rec

    def __iter__(self) -> Iterator[bytes]:
        for part in self.inner:
            self.rec.body += part
            yield part

    def close(self) -> None:
        self.inner.close()


class _AsyncTeeStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, rec: _Recorded) -> None:
        self.inner, self.rec = inner, rec

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self.inner:
            self.rec.body += part
            yield part

    async def aclose(self) -> None:
        await self.inner.aclose()


class OpenAIWire:
    """Records response bodies (as far as they were read) and checks each against OpenAI's spec:
    chat completions -> CreateChatCompletionResponse, every SSE chunk ->
    CreateChatCompletionStreamResponse (except the error-finish chunk), `{"error":...}` events and
    every >= 400 body -> ErrorResponse, `GET .../models` -> ListModelsResponse."""

    def __init__(self) -> None:
        self.responses: list[_Recorded] = []

    def transport(self) -> httpx2.BaseTransport:
        wire, inner = self, httpx2.HTTPTransport()

        class Recording(httpx2.BaseTransport):
            def handle_request(self, request: httpx2.Request) -> httpx2.Response:
                resp = inner.handle_request(request)
                rec = _Recorded(request, resp)
                wire.responses.append(rec)
                return httpx2.Response(resp.status_code, headers=resp.headers, extensions=resp.extensions,
                                       stream=_TeeStream(resp.stream, rec))  # type: ignore[arg-type]

            def close(self) -> None:
                inner.close()
        return Recording()

    def async_transport(self) -> httpx2.AsyncBaseTransport:
        wire, inner = self, httpx2.AsyncHTTPTransport()

        class Recording(httpx2.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
                resp = await inner.handle_async_request(request)
                rec = _Recorded(request, resp)
                wire.responses.append(rec)
                return httpx2.Response(resp.status_code, headers=resp.headers, extensions=resp.extensions,
                                       stream=_AsyncTeeStream(resp.stream, rec))  # type: ignore[arg-type]

            async def aclose(self) -> None:
                await inner.aclose()
        return Recording()

    def problems(self) -> list[str]:
        return [p for rec in self.responses for p in rec.problems()]

    def assert_valid(self) -> None:
        problems = self.problems()
        assert not problems, "responses that are not valid OpenAI wire objects:\n  " + "\n  ".join(problems[:10])


@pytest.fixture
def openai_wire() -> Iterator[OpenAIWire]:
    """The recorder behind the SDK client fixtures; fails the test at teardown on any invalid body."""
    wire = OpenAIWire()
    yield wire
    wire.assert_valid()


# -- OpenAI SDK clients -----------------------------------------------------------------------

SDK_TIMEOUT_S = 30.0


@pytest.fixture
def make_openai_client(openai_wire: OpenAIWire) -> Iterator[Callable[..., OpenAI]]:
    """Factory: `make_openai_client(base_url_or_gateway, api_key=None, **client_opts)` -> sync
    `OpenAI` with retries off; a Gateway without api_key gets a new funded key."""
    clients: list[OpenAI] = []

    def make(target: Gateway | str, api_key: str | None = None, **opts) -> OpenAI:
        base_url = target.base_url if isinstance(target, Gateway) else target
        if api_key is None:
            assert isinstance(target, Gateway), "api_key is required for a plain base URL"
            api_key = target.new_key()[0]
        opts.setdefault("max_retries", 0)
        client = OpenAI(base_url=base_url, api_key=api_key,
                        http_client=httpx2.Client(transport=openai_wire.transport(), timeout=SDK_TIMEOUT_S), **opts)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture
async def make_async_openai_client(openai_wire: OpenAIWire) -> AsyncIterator[Callable[..., AsyncOpenAI]]:
    """Like `make_openai_client`, for `AsyncOpenAI`."""
    clients: list[AsyncOpenAI] = []

    def make(target: Gateway | str, api_key: str | None = None, **opts) -> AsyncOpenAI:
        base_url = target.base_url if isinstance(target, Gateway) else target
        if api_key is None:
            assert isinstance(target, Gateway), "api_key is required for a plain base URL"
            api_key = target.new_key()[0]
        opts.setdefault("max_retries", 0)
        client = AsyncOpenAI(base_url=base_url, api_key=api_key, http_client=httpx2.AsyncClient(
            transport=openai_wire.async_transport(), timeout=SDK_TIMEOUT_S), **opts)
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


@pytest.fixture
def openai_client(gw: Gateway, funded_key: tuple[str, int], make_openai_client) -> OpenAI:
    """Sync `OpenAI` on `gw` with `funded_key`, retries off."""
    return make_openai_client(gw, funded_key[0])


@pytest.fixture
async def async_openai_client(gw: Gateway, funded_key: tuple[str, int], make_async_openai_client) -> AsyncOpenAI:
    """`AsyncOpenAI` on `gw` with `funded_key`, retries off."""
    return make_async_openai_client(gw, funded_key[0])

"""The provider seam: a sans-I/O adapter per wire protocol, plus vendor and deployment data.

An adapter never does network I/O. It builds the upstream request, parses a response body,
translates upstream stream events into OpenAI chunks and maps upstream errors. `transport.py` is the
only module that talks to the network. Vendors that speak the OpenAI protocol are *data*
(`Vendor` rows in `data/vendors.toml`), not classes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol

from ..errors import UpstreamError
from ..wire.chat import ChatRequest
from ..wire.types import Usage

__all__ = ["Vendor", "Deployment", "UpstreamRequest", "ProviderResult", "SSEEvent",
           "StreamTranslator", "ProviderAdapter"]


@dataclass(frozen=True, slots=True)
class Vendor:
    """One upstream service: where it is, how to authenticate, and its protocol quirks as data."""
    name: str
    protocol: str                         # "openai" | "anthropic" | "gemini"
    base_url: str
    auth: str = "bearer"                  # bearer | api-key | x-api-key | x-goog-api-key | none
    api_key: str | None = field(default=None, repr=False)   # never printed
    chat_path: str = "/chat/completions"  # may hold {model} (Azure deployments)
    query: Mapping[str, str] = field(default_factory=dict)  # e.g. Azure api-version
    rename: Mapping[str, str] = field(default_factory=dict)  # OpenAI param -> vendor param
    drop: tuple[str, ...] = ()            # pure-hint OpenAI params this vendor rejects: removed
    refuse: tuple[str, ...] = ()          # OpenAI params it lacks that change the answer: a 400 unless neutral
    headers: Mapping[str, str] = field(default_factory=dict)
    stream_usage: bool = True             # honours stream_options.include_usage
    needs_key: bool = True
    label: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.api_key) or not self.needs_key


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a public model can be served: a vendor, the upstream model id, weight and caps."""
    model: str                            # public model name, e.g. "gpt-4o"
    vendor: Vendor
    upstream_model: str
    weight: int = 1
    rpm: int | None = None
    tpm: int | None = None

    @property
    def id(self) -> str:
        return f"{self.vendor.name}/{self.upstream_model}"


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(slots=True)
class ProviderResult:
    """A non-streamed answer translated to OpenAI: the response object and its usage; `native` is
    the upstream's own body when it speaks the client's protocol (Anthropic pass-through)."""
    response: dict
    usage: Usage | None
    native: dict | None = None


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    data: str


class StreamTranslator(Protocol):
    """Turns one upstream stream into OpenAI `chat.completion.chunk` dicts.

    `feed` returns chunks whose `id`, `created` and `model` the chat service fills in. A usage-only
    chunk (empty `choices`) is never returned: usage is exposed on `usage` instead. An upstream error
    event raises `UpstreamError`. `done` becomes true once the upstream has said it finished.
    `quiet` says the last event fed was empty by its protocol (an Anthropic `ping` or delta of empty
    text, a Gemini chunk with no parts...): a keep-alive, which does not reset the idle timeout.
    (The OpenAI protocol's are judged on the chunks themselves: `spec_chunk`'s "said".)
    """
    usage: Usage | None
    done: bool
    quiet: bool

    def feed(self, event: SSEEvent) -> list[dict]: ...


class ProviderAdapter(Protocol):
    protocol: str

    def build_request(self, req: ChatRequest, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        """Raise `InvalidRequest`/`UnsupportedParameter` for what this protocol cannot express."""

    def parse_response(self, body: bytes, dep: Deployment) -> ProviderResult: ...

    def stream_translator(self, req: ChatRequest, dep: Deployment) -> StreamTranslator: ...

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes,
                  dep: Deployment) -> UpstreamError: ...

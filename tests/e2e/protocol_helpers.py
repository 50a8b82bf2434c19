"""Helpers for the /v1/messages, /v1/responses and /v1/embeddings end-to-end tests: a recording
transport whose responses are checked against the vendor's own spec (Anthropic's for messages,
OpenAI's for responses and embeddings), the fixtures the three test modules share (`wire`, `key`;
import them by name), a gateway over their fake upstreams, and usage-row lookups."""
from __future__ import annotations

import base64
import json
import struct
import time

import httpx2
import pytest

from openai_schema import openai_errors
from providers.anthropic_schema import validate_anthropic, validate_error_body, validate_stream_event

__all__ = ["key", "make_protocol_wire", "protocol_gateway", "sse_events", "usage_rows", "wait_usage_rows",
           "wire"]


def sse_events(body: bytes) -> list[tuple[str | None, dict | str]]:
    """(event name, parsed data) of each complete SSE event."""
    out = []
    for event in body.decode().replace("\r\n", "\n").split("\n\n")[:-1]:
        name, data = None, []
        for line in event.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            text = "\n".join(data)
            out.append((name, text if text == "[DONE]" else json.loads(text)))
    return out


def _anthropic_problems(rec) -> list[str]:
    where = f"{rec.method} {rec.path} -> {rec.status}"
    try:
        if rec.status >= 400:
            validate_error_body(json.loads(bytes(rec.body)))
        elif rec.content_type.startswith("text/event-stream"):
            for name, data in sse_events(bytes(rec.body)):
                validate_stream_event(name, data)
        elif rec.path.endswith("/count_tokens"):
            validate_anthropic(json.loads(bytes(rec.body)), "CountMessageTokensResponse")
        elif rec.path.startswith("/v1/models"):
            validate_anthropic(json.loads(bytes(rec.body)),
                               "ListResponse_ModelInfo_" if rec.path == "/v1/models" else "ModelInfo")
        else:
            validate_anthropic(json.loads(bytes(rec.body)), "Message")
    except AssertionError as exc:
        return [f"{where}: {exc}"]
    return []


_RESPONSES_EVENT = "ResponseStreamEvent"


def _openai_problems(rec) -> list[str]:
    where = f"{rec.method} {rec.path} -> {rec.status}"
    body = bytes(rec.body)
    if rec.status >= 400:
        return [f"{where}: {e}" for e in openai_errors(json.loads(body), "ErrorResponse")]
    if rec.content_type.startswith("text/event-stream"):
        problems = []
        for name, data in sse_events(body):
            if name is not None and isinstance(data, dict) and name != data.get("type"):
                problems.append(f"{where}: event name {name!r} != type {data.get('type')!r}")
            problems += [f"{where} {data.get('type')}: {e}" for e in openai_errors(data, _RESPONSES_EVENT)]
        return problems
    obj = json.loads(body)
    if rec.path.endswith("/embeddings"):
        schema = "CreateEmbeddingResponse"
        # `encoding_format: base64` (the openai SDK's default) sends each vector as base64 of
        # little-endian float32, which the spec's `embedding: number[]` does not describe: check
        # that it decodes, then validate the decoded vector
        for item in obj.get("data") or ():
            if isinstance(item, dict) and isinstance(item.get("embedding"), str):
                raw = base64.b64decode(item["embedding"], validate=True)
                assert len(raw) % 4 == 0, "base64 embedding is not float32"
                item["embedding"] = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    elif rec.method == "DELETE":
        schema = None
        if not (obj.get("object") == "response.deleted" and obj.get("deleted") is True and obj.get("id")):
            return [f"{where}: not a deletion confirmation: {obj}"]
    elif rec.path.endswith("/input_items"):
        schema = "ResponseItemList"
    elif rec.path.endswith("/responses/input_tokens"):
        schema = "TokenCountsResource"
    else:
        schema = "Response"
    return [f"{where}: {e}" for e in openai_errors(obj, schema)] if schema else []


def make_protocol_wire(base: type):
    """A recorder like conftest's OpenAIWire (`base`, taken from the `openai_wire` fixture: test
    modules cannot import conftest by name) whose responses are checked against the vendor's
    spec: /v1/messages ones (and any error an Anthropic client gets) against Anthropic's,
    /v1/responses and /v1/embeddings ones against OpenAI's, anything else as OpenAIWire checks it."""

    class ProtocolWire(base):
        def problems(self) -> list[str]:
            out = []
            for rec in self.responses:
                if "/v1/messages" in rec.path or (rec.anthropic_client and (
                        rec.status >= 400 or rec.path.startswith("/v1/models"))):
                    out += _anthropic_problems(rec)   # /v1/models too, for an Anthropic client
                elif "/v1/responses" in rec.path or rec.path.endswith("/embeddings"):
                    out += _openai_problems(rec)
                else:
                    out += rec.problems()
            return out

        def assert_valid(self) -> None:
            assert self.responses, "no response went through the recording transport"
            problems = self.problems()
            assert not problems, "responses that do not match the vendor's spec:\n  " + "\n  ".join(problems[:10])

        def client(self) -> httpx2.Client:
            return httpx2.Client(transport=self.transport(), timeout=30)

        def async_client(self) -> httpx2.AsyncClient:
            return httpx2.AsyncClient(transport=self.async_transport(), timeout=30)

    return ProtocolWire()


@pytest.fixture
def wire(openai_wire):
    """Every response this test receives, checked against the vendor's spec at teardown."""
    w = make_protocol_wire(type(openai_wire))
    yield w
    w.assert_valid()


@pytest.fixture
def key(gw):
    return gw.new_key(balance_micros=10_000_000)


_UPSTREAM_URLS = {"anthropic": lambda f: f.url, "openai": lambda f: f.url + "/v1", "gemini": lambda f: f.base_url}


def protocol_gateway(gateway, fakes: dict, api_keys: dict[str, str]):
    """A gateway (conftest's `gateway` factory) whose providers are the fake upstreams in `fakes`
    ({"anthropic" | "openai" | "gemini": server}, in that order of preference), with no retries."""
    return gateway(providers={p: (_UPSTREAM_URLS[p](f), api_keys[p]) for p, f in fakes.items()}, max_retries=0)


def usage_rows(gw, account_id: int) -> list[dict]:
    return gw.admin("GET", f"/admin/usage?account_id={account_id}")["data"]


def wait_usage_rows(gw, account_id: int, n: int, timeout_s: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = usage_rows(gw, account_id)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)

"""Every Anthropic-side fixture matches Anthropic's OpenAPI spec, so the adapter is proven against
real wire shapes, not against shapes we made up: requests we build (`CreateMessageParams`),
responses (`Message`), error bodies (`ErrorResponse`) and every stream event."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from anthropic_schema import validate_anthropic, validate_error_body, validate_stream_event
from routerone.providers.sse import SSEDecoder

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
SCHEMA_FOR_KIND = {"request": "CreateMessageParams", "response": "Message", "error": "ErrorResponse"}
JSON_FIXTURES = sorted(FIXTURES.glob("*.json"))
SSE_FIXTURES = sorted(FIXTURES.glob("*.sse"))


def test_fixtures_exist() -> None:
    assert len(JSON_FIXTURES) >= 40 and len(SSE_FIXTURES) >= 8


@pytest.mark.parametrize("path", JSON_FIXTURES, ids=lambda p: p.stem)
def test_json_fixture_matches_spec(path: Path) -> None:
    fx = json.loads(path.read_text())
    assert fx["kind"] in (*SCHEMA_FOR_KIND, "request_error"), path.name
    assert fx.get("doc"), f"{path.name}: say which behaviour it pins"
    if fx["kind"] == "error":
        validate_error_body(fx["anthropic"])
    elif fx["kind"] in SCHEMA_FOR_KIND:
        validate_anthropic(fx["anthropic"], SCHEMA_FOR_KIND[fx["kind"]])


@pytest.mark.parametrize("path", SSE_FIXTURES, ids=lambda p: p.stem)
def test_sse_fixture_matches_spec(path: Path) -> None:
    decoder = SSEDecoder()
    events = decoder.feed(path.read_bytes()) + decoder.close()
    assert events, path.name
    names = [e.event for e in events]
    assert names[0] == "message_start"
    assert names[-1] in ("message_stop", "error")
    for event in events:
        validate_stream_event(event.event, orjson.loads(event.data))


def test_validator_rejects_a_wrong_shape() -> None:
    """Guard against a validator that accepts everything (e.g. a broken $ref)."""
    with pytest.raises(AssertionError):
        validate_anthropic({"model": "m", "messages": [], "max_tokens": 1, "n": 2}, "CreateMessageParams")
    with pytest.raises(AssertionError):
        validate_anthropic({"type": "error", "error": {"type": "nope", "message": "x"}, "request_id": None}, "ErrorResponse")
    with pytest.raises(AssertionError):
        validate_stream_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                      "delta": {"type": "text_delta"}})

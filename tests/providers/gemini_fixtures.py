"""Loading and normalising the Gemini fixtures in `fixtures/gemini/` (shared by the gemini tests).

Fixture kinds, told apart by their keys:
- request:  `openai_request` -> `gemini_request` (what `build_request` must send);
- response: `gemini_response` -> `openai_response` (what `parse_response` must return);
- stream:   `<name>.sse` (raw upstream bytes) + `<name>.json` with `openai_chunks`, `usage`, `done`;
- error:    `http_status`, `headers`, `gemini_error` | `gemini_error_array` | `raw_body` -> `expected`;
- rejections: `cases` of `openai_request` -> 400 naming `param`.
Random parts of the output are normalised: `created` -> 0, synthesized `call_<24 hex>` ids -> `<synthesized>`.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from routerone.providers.base import Deployment, SSEEvent, Vendor
from routerone.providers.gemini import GeminiAdapter
from routerone.providers.sse import SSEDecoder
from routerone.wire.chat import ChatRequest, validate_body

__all__ = ["FIXTURES", "ADAPTER", "DEP", "load", "sse_events", "chat_request", "normalize"]

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
ADAPTER = GeminiAdapter()
VENDOR = Vendor(name="gemini", protocol="gemini", base_url="https://generativelanguage.googleapis.com/v1beta",
                auth="x-goog-api-key", api_key="test-gemini-key")
DEP = Deployment("gemini-2.5-flash", VENDOR, "gemini-2.5-flash")
_SYNTHESIZED = re.compile(r"^call_[0-9a-f]{24}")


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def sse_events(name: str, *, chunk_size_bytes: int = 7) -> list[SSEEvent]:
    """Decode a recorded `.sse` body in small pieces, as the network would deliver it."""
    raw = (FIXTURES / name).read_bytes()
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for i in range(0, len(raw), chunk_size_bytes):
        events.extend(decoder.feed(raw[i:i + chunk_size_bytes]))
    return events   # no close(): a torn last event must not be dispatched, like a cut connection


def chat_request(body: dict) -> ChatRequest:
    return validate_body(json.loads(json.dumps(body)))


def normalize(obj: Any) -> Any:
    if isinstance(obj, list):
        return [normalize(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    out = {k: normalize(v) for k, v in obj.items()}
    if "created" in out:
        out["created"] = 0
    if isinstance(out.get("id"), str) and out.get("type") == "function":
        out["id"] = _SYNTHESIZED.sub("<synthesized>", out["id"])
    return out

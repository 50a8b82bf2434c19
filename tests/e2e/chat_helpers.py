"""Helpers shared by the provider end-to-end tests (Anthropic, Gemini) through the gateway."""
from __future__ import annotations

import json

import httpx2
import pytest
from pydantic import BaseModel

__all__ = ["everything_validates", "charges", "raw_post", "accumulate", "assistant_turn", "tool_results",
           "Weather"]


class Weather(BaseModel):
    """The structured answer the SDK's `parse(response_format=...)` tests ask for."""
    city: str
    temp_c: float
    sunny: bool


@pytest.fixture(autouse=True)
def everything_validates(openai_wire, gw):
    """Fail in the test (not only at teardown) when any response body/chunk is not OpenAI's shape.
    (Depends on `gw` only so that a gateway that cannot start reports one error, not two.)"""
    yield
    assert openai_wire.responses, "no response went through the recording transport"
    openai_wire.assert_valid()


def charges(gw, account_id: int) -> list[int]:
    return [e["amount_micros"] for e in gw.admin("GET", f"/admin/accounts/{account_id}/ledger")["data"]
            if e["kind"] == "charge"]


def raw_post(openai_wire, gw, key: str, body: dict) -> httpx2.Response:
    """A raw POST through the recording transport (so its body is spec-checked too)."""
    with httpx2.Client(transport=openai_wire.transport(), timeout=30) as http:
        return http.post(gw.base_url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})


def accumulate(chunks, choice_index: int = 0) -> tuple[str, dict[int, dict], str | None]:
    """(content, tool calls by index, finish_reason) of one choice from streamed deltas."""
    text, calls, finish = "", {}, None
    for chunk in chunks:
        for choice in chunk.choices:
            if choice.index != choice_index:
                continue
            text += choice.delta.content or ""
            for tc in choice.delta.tool_calls or ():
                slot = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": "", "type": None})
                if tc.id is not None:
                    assert slot["id"] is None, f"tool call {tc.index} got a second id"
                    slot["id"], slot["type"] = tc.id, tc.type
                if tc.function is not None:
                    slot["name"] = tc.function.name or slot["name"]
                    slot["arguments"] += tc.function.arguments or ""
            finish = choice.finish_reason or finish
    return text, calls, finish


def assistant_turn(content: str | None, calls: list[dict]) -> dict:
    return {"role": "assistant", "content": content, "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
        for c in calls]}


def tool_results(calls: list[dict]) -> list[dict]:
    return [{"role": "tool", "tool_call_id": c["id"], "content": json.dumps({"result": i})}
            for i, c in enumerate(calls)]

"""`GET /v1/models` in OpenAI's list format (with `auto`), through the SDK and raw; `GET /healthz`;
unknown routes answer an OpenAI error body."""
from __future__ import annotations

import httpx2
import openai
import pytest
from openai import OpenAI

from openai_schema import validate_error, validate_models

OPENAI_MODELS = {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"}


@pytest.fixture
def http(openai_wire):
    with httpx2.Client(transport=openai_wire.transport(), timeout=30) as client:
        yield client


def test_models_list_sync(openai_client: OpenAI):
    raw = openai_client.models.with_raw_response.list()
    body = raw.http_response.json()
    validate_models(body)
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids[0] == "auto"
    assert OPENAI_MODELS <= set(ids)
    assert len(ids) == len(set(ids))
    by_id = {m["id"]: m for m in body["data"]}
    assert by_id["auto"]["owned_by"] == "routerone"
    assert all(by_id[m]["owned_by"] == "openai" and by_id[m]["object"] == "model" for m in OPENAI_MODELS)
    assert {m.id for m in raw.parse()} == set(ids)


def test_models_list_shows_only_configured_providers(openai_client: OpenAI):
    ids = {m.id for m in openai_client.models.list()}
    assert ids == OPENAI_MODELS | {"auto"}       # anthropic / gemini have no credentials here


async def test_models_list_async(async_openai_client):
    page = await async_openai_client.models.list()
    ids = [m.id async for m in page]
    assert "auto" in ids and OPENAI_MODELS <= set(ids)


def test_every_listed_model_can_be_called(openai_client: OpenAI, fake_requests):
    for model in openai_client.models.list():
        completion = openai_client.chat.completions.create(model=model.id, messages=[{"role": "user", "content": "hi"}],
                                                           max_tokens=2)
        assert completion.model == fake_requests[-1]["model"]
        assert completion.model in OPENAI_MODELS


def test_models_list_needs_a_key(http, gw):
    resp = http.get(gw.base_url + "/models")
    assert resp.status_code == 401
    validate_error(resp.json())
    assert resp.json()["error"]["code"] == "invalid_api_key"


def test_healthz(http, gw):
    resp = http.get(gw.url + "/healthz")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == {"status": "ok"}


def test_unknown_route_is_an_openai_404(http, gw, funded_key):
    resp = http.get(gw.base_url + "/nope", headers={"Authorization": f"Bearer {funded_key[0]}"})
    assert resp.status_code == 404
    validate_error(resp.json())
    assert resp.json()["error"]["code"] == "not_found"


def test_wrong_method_is_an_openai_error(http, gw, funded_key):
    resp = http.get(gw.base_url + "/chat/completions", headers={"Authorization": f"Bearer {funded_key[0]}"})
    assert resp.status_code in (400, 405)
    validate_error(resp.json())
    assert resp.json()["error"]["code"] == "method_not_allowed"


def test_wire_recorder_sees_and_checks_every_response(openai_client: OpenAI, openai_wire):
    """The spec check behind the client fixtures really sees the bodies (a guard for this suite)."""
    openai_client.models.list()
    list(openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                               stream=True))
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert [(r.path, r.status) for r in openai_wire.responses] == [
        ("/v1/models", 200), ("/v1/chat/completions", 200), ("/v1/chat/completions", 404)]
    assert all(r.body for r in openai_wire.responses)
    assert openai_wire.responses[1].body.endswith(b"data: [DONE]\n\n")
    assert openai_wire.problems() == []

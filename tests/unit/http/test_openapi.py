"""The OpenAPI document describes exactly the routes the app serves, is valid JSON Schema
throughout, and its admin bodies are the very models the handlers validate with."""
from __future__ import annotations

import re
from types import SimpleNamespace

import orjson
import pytest
from jsonschema import Draft202012Validator

from routerone.app import create_app
from routerone.http.apidoc import area_modules, build_document
from routerone.errors import InsufficientBalance, InvalidRequest, PayloadTooLarge, ServiceUnavailable
from routerone.http.apidoc.page import render_page
from routerone.http.readiness import READINESS, readyz
from routerone.settings import Settings
from routerone.wire.admin import BODY_MODELS
from routerone.wire.messages import error_body

METHODS = {"get", "post", "put", "patch", "delete"}
NOT_API = ("/console",)        # HTML pages of the web console are not part of the API reference
HOME = "/"                     # with the console on, a redirect to it (a page, not an API route)


@pytest.fixture(scope="module")
def doc() -> dict:
    return build_document()


def _served() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite:///:memory:", demo="off"))
    out = set()
    for route in app.router.routes():
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.resource.canonical)
        if route.method.lower() in METHODS and not path.startswith(NOT_API) and path != HOME:
            out.add((route.method.lower(), path))
    return out


def test_every_served_route_is_documented_and_nothing_else(doc: dict) -> None:
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    served = _served()
    assert served - documented == set(), "routes missing from /openapi.json (add them in http/apidoc/)"
    assert documented - served == set(), "documented routes the app does not serve"


def test_the_document_is_openapi_31_with_valid_schemas(doc: dict) -> None:
    assert doc["openapi"] == "3.1.0" and doc["info"]["version"]
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', str(doc).replace("'", '"')))
    assert refs <= set(doc["components"]["schemas"]), refs - set(doc["components"]["schemas"])
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["responses"]["200"], (method, path)
            for code, resp in op["responses"].items():
                if code != "200":
                    assert resp["content"]["application/json"]["schema"] == _error_ref(path, code), (method, path, code)
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), (method, path)


def _error_ref(path: str, code: str) -> dict:
    """The seed's Error everywhere, but Anthropic's shape on /v1/messages* and /readyz's own body."""
    name = ("AnthropicError" if path.startswith("/v1/messages") else
            "Readiness" if path == "/readyz" else "Error")
    return {"$ref": f"#/components/schemas/{name}"}


def _schema(doc: dict, name: str) -> Draft202012Validator:
    """A validator for components/schemas/<name>, its $refs resolved within the document."""
    return Draft202012Validator({**doc["components"]["schemas"][name], "components": doc["components"]})


def test_the_error_schemas_describe_the_bodies_really_sent(doc: dict) -> None:
    anthropic, seed = _schema(doc, "AnthropicError"), _schema(doc, "Error")
    for exc in (InvalidRequest("bad", param="messages"), InsufficientBalance(), PayloadTooLarge(), ServiceUnavailable()):
        anthropic.validate(orjson.loads(error_body(exc, "req_1")))
        seed.validate(exc.to_dict())
        assert not anthropic.is_valid(exc.to_dict()) and not seed.is_valid(orjson.loads(error_body(exc, None)))


async def test_readyz_bodies_fit_the_documented_schema(doc: dict) -> None:
    ready = _schema(doc, "Readiness")
    for state, problems, status in ((False, {}, "ready"), (False, {"database": "timeout"}, "unready"),
                                    (True, {}, "draining")):
        async def problems_of(p=problems):
            return p
        r = SimpleNamespace(draining=state, dependency_problems=problems_of)
        resp = await readyz(SimpleNamespace(app={READINESS: r}))
        body = orjson.loads(resp.body)
        assert body["status"] == status and resp.status == (200 if status == "ready" else 503)
        ready.validate(body)
        assert str(resp.status) in doc["paths"]["/readyz"]["get"]["responses"]


def test_admin_bodies_are_the_validation_models(doc: dict) -> None:
    for model in BODY_MODELS:
        assert doc["components"]["schemas"][model.__name__]["additionalProperties"] is False
    create = doc["paths"]["/admin/keys"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create == {"$ref": "#/components/schemas/KeyCreate"}


def test_areas_merge_and_collisions_are_refused(doc: dict, monkeypatch) -> None:
    mods = area_modules()
    assert {m.__name__.rsplit(".", 1)[-1] for m in mods} >= {"admin", "public", "protocols"}
    twin = type("Twin", (), {"PATHS": {"/healthz": {"get": {}}}, "__name__": "twin"})
    monkeypatch.setattr("routerone.http.apidoc.area_modules", lambda: [*mods, twin])
    with pytest.raises(ValueError, match="already described"):
        build_document()


def test_the_docs_page_renders_every_operation_without_scripts(doc: dict) -> None:
    html = render_page(doc)
    assert "<script" not in html and "src=" not in html
    for path, ops in doc["paths"].items():
        for method in ops:
            assert f'id="{method}{path}"' in html.replace("&#x27;", "'"), (method, path)
    assert "amount_usd" in html and "Error" in html

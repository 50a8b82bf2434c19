"""The OpenAPI document describes exactly the routes the app serves, is valid JSON Schema
throughout, and its admin bodies are the very models the handlers validate with."""
from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator

from routerone.app import create_app
from routerone.http.apidoc import area_modules, build_document
from routerone.http.apidoc.page import render_page
from routerone.settings import Settings
from routerone.wire.admin import BODY_MODELS

METHODS = {"get", "post", "put", "patch", "delete"}
NOT_API = ("/console",)        # HTML pages of the web console are not part of the API reference


@pytest.fixture(scope="module")
def doc() -> dict:
    return build_document()


def _served() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite:///:memory:", demo="off"))
    out = set()
    for route in app.router.routes():
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.resource.canonical)
        if route.method.lower() in METHODS and not path.startswith(NOT_API):
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
                    assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), (method, path)


def test_admin_bodies_are_the_validation_models(doc: dict) -> None:
    for model in BODY_MODELS:
        assert doc["components"]["schemas"][model.__name__]["additionalProperties"] is False
    create = doc["paths"]["/admin/keys"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create == {"$ref": "#/components/schemas/KeyCreate"}


def test_areas_merge_and_collisions_are_refused(doc: dict, monkeypatch) -> None:
    mods = area_modules()
    assert {m.__name__.rsplit(".", 1)[-1] for m in mods} >= {"admin", "public"}
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

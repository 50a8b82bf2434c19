"""Router One's API reference: an OpenAPI 3.1 document at /openapi.json, rendered at /docs.

The document is data, one module per area in this package (public.py, admin.py, ...). An area
module defines
    PATHS    {"/path": {"get": operation(...)}}            OpenAPI `paths` entries (required)
    SCHEMAS  {"Name": {...JSON Schema...}}                  components/schemas (optional)
    TAGS     [{"name": ..., "description": ...}]           (optional)
made with the helpers of common.py. `build_document()` merges every module of this package that
has PATHS (found with pkgutil, in name order), so adding a route to the reference is a new module
here (say messages.py) or a few lines in an existing one; no shared list to edit. Two areas may
not define the same path and method or the same schema name (build_document raises).
tests/unit/http/test_openapi.py fails on any route the app serves that the document lacks.
"""
from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from aiohttp import web

from .common import ERROR_SCHEMA
from .page import render_page

__all__ = ["build_document", "add_apidoc_routes", "area_modules"]

OPENAPI_VERSION = "3.1.0"
INFO = {
    "title": "Router One",
    "summary": "A self-hostable, OpenAI-compatible LLM router",
    "description": "One OpenAI-compatible endpoint in front of many model providers, with its own API keys, "
                   "a prepaid balance, rate limits and `model: \"auto\"`. Authenticate with "
                   "`Authorization: Bearer sk-ro-...`. Every error has the shape "
                   "`{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`, except on the Anthropic-"
                   "compatible `/v1/messages` (Anthropic's `{\"type\": \"error\", \"error\": {\"type\", "
                   "\"message\"}}`) and `/readyz` (`{\"status\"}`).",
    "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
}
_SKIP = {"common", "page"}


def area_modules() -> list[Any]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _SKIP and not m.name.startswith("_"))
    mods = [importlib.import_module(f"{__name__}.{n}") for n in names]
    return [m for m in mods if hasattr(m, "PATHS")]


def build_document(version: str = "") -> dict:
    paths: dict[str, dict] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    tags: list[dict] = []
    for mod in area_modules():
        for path, ops in mod.PATHS.items():
            entry = paths.setdefault(path, {})
            for method, op in ops.items():
                if method in entry:
                    raise ValueError(f"{mod.__name__}: {method.upper()} {path} is already described")
                entry[method] = op
        for name, schema in getattr(mod, "SCHEMAS", {}).items():
            if name in schemas and schemas[name] != schema:
                raise ValueError(f"{mod.__name__}: schema {name!r} is already defined differently")
            schemas[name] = schema
        tags += [t for t in getattr(mod, "TAGS", []) if t["name"] not in {x["name"] for x in tags}]
    return {"openapi": OPENAPI_VERSION, "info": {**INFO, "version": version or _version()},
            "tags": tags, "paths": dict(sorted(paths.items())),
            "components": {"schemas": schemas,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                          "description": "a Router One key (sk-ro-...); "
                                                                         "the admin API needs an admin key"},
                                               "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key",
                                                             "description": "a Router One key, as Anthropic clients "
                                                                            "send it (/v1/messages only)"}}}}


def _version() -> str:
    try:
        return version("routerone")
    except PackageNotFoundError:
        return "0.0.0"


def add_apidoc_routes(app: web.Application) -> None:
    """GET /openapi.json and GET /docs, both built once (at the first request) and cached."""
    cache: dict[str, bytes] = {}

    def body(kind: str) -> bytes:
        if kind not in cache:
            doc = build_document()
            cache["json"] = orjson.dumps(doc)
            cache["html"] = render_page(doc).encode()
        return cache[kind]

    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(body=body("json"), content_type="application/json")

    async def docs(request: web.Request) -> web.Response:
        return web.Response(body=body("html"), content_type="text/html", charset="utf-8")

    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs)

"""The OpenAPI document rendered as one self-contained HTML page (no script, no CDN, no external CSS).

Every operation: method and path, summary, description, auth, parameters, the request body's
fields (nested, with type, constraints and description) and the responses. `$ref`s are followed.
"""
from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["render_page"]

_CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
code,pre{font:13px ui-monospace,monospace;background:#f4f4f4;padding:0 .25em}
h2{border-bottom:2px solid #ddd;margin-top:2em}
section.op{border:1px solid #ddd;border-radius:6px;padding:.4em 1em;margin:1em 0}
.m{display:inline-block;min-width:4.5em;font-weight:bold;text-transform:uppercase}
.get{color:#1a7f37}.post{color:#0969da}.patch{color:#9a6700}.delete{color:#cf222e}
table{border-collapse:collapse;width:100%;margin:.3em 0}td,th{border-bottom:1px solid #eee;padding:.2em .5em;
text-align:left;vertical-align:top}th{font-weight:600}nav a{margin-right:1em}small{color:#666}
"""
_KEYS = ("minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength", "minItems", "maxItems",
         "pattern", "format", "default")


class _Doc:
    def __init__(self, doc: dict) -> None:
        self.doc = doc

    def resolve(self, schema: dict) -> dict:
        seen = 0
        while "$ref" in schema and seen < 20:
            schema = self.doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            seen += 1
        return schema

    def type_of(self, schema: dict) -> str:
        if "$ref" in schema:
            name = escape(schema["$ref"].rsplit("/", 1)[-1])
            return f'<a href="#schema-{name}">{name}</a>'
        if schema.get("type") == "object" and "properties" in schema and len(schema["properties"]) <= 3:
            inner = ", ".join(f"{escape(k)}: {self.type_of(v)}" for k, v in schema["properties"].items())
            return "{" + inner + "}"
        if "enum" in schema:
            return " | ".join(f"<code>{escape(repr(v))}</code>" for v in schema["enum"])
        if "const" in schema:
            return f"<code>{escape(repr(schema['const']))}</code>"
        for k in ("anyOf", "oneOf"):
            if k in schema:
                return " or ".join(self.type_of(s) for s in schema[k])
        t = schema.get("type", "any")
        t = " | ".join(t) if isinstance(t, list) else t
        if t == "array" and "items" in schema:
            return f"array of {self.type_of(schema['items'])}"
        return escape(t)

    def fields(self, schema: dict, prefix: str = "", depth: int = 0) -> list[str]:
        schema = self.resolve(schema)
        rows: list[str] = []
        for part in schema.get("allOf", []):
            rows += self.fields(part, prefix, depth)
        required = set(schema.get("required", []))
        for name, sub in schema.get("properties", {}).items():
            full = f"{prefix}{name}"
            notes = ", ".join(f"{k} {escape(str(v[k]))}" for v in (sub, *sub.get("anyOf", ())) for k in _KEYS
                              if k in v and not (k == "default" and v[k] in (None, "")))
            desc = escape(sub.get("description", ""))
            rows.append(f"<tr><td><code>{escape(full)}</code>{' <small>required</small>' if full and name in required else ''}"
                        f"</td><td>{self.type_of(sub)}</td><td>{desc}{'<br><small>' + notes + '</small>' if notes else ''}"
                        "</td></tr>")
            target = self.resolve(sub)
            if depth < 3 and target.get("properties") and "$ref" not in sub:
                rows += self.fields(target, f"{full}.", depth + 1)
            items = target.get("items")
            if depth < 3 and isinstance(items, dict) and self.resolve(items).get("properties") and "$ref" not in items:
                rows += self.fields(items, f"{full}[].", depth + 1)
        return rows

    def table(self, rows: list[str], head: str = "<th>field</th><th>type</th><th>notes</th>") -> str:
        return f"<table><tr>{head}</tr>{''.join(rows)}</table>" if rows else ""


def _operation(d: _Doc, path: str, method: str, op: dict[str, Any]) -> str:
    out = [f'<section class="op" id="{escape(method + path)}"><h3><span class="m {method}">{method}</span> '
           f"<code>{escape(path)}</code></h3><p><b>{escape(op.get('summary', ''))}</b></p>"]
    if op.get("description"):
        out.append(f"<p>{escape(op['description'])}</p>")
    auth = "admin key" if op.get("x-routerone-auth") == "admin" else "API key" if op.get("security") else "none"
    out.append(f"<p><small>Authentication: {auth}</small></p>")
    params = [f"<tr><td><code>{escape(p['name'])}</code> <small>{p['in']}{', required' if p.get('required') else ''}"
              f"</small></td><td>{d.type_of(p.get('schema', {}))}</td><td>{escape(p.get('description', ''))}</td></tr>"
              for p in op.get("parameters", [])]
    if params:
        out.append("<h4>Parameters</h4>" + d.table(params))
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        schema = body["schema"]
        resolved = d.resolve(schema)
        out.append(f"<h4>Body</h4><p>{escape(resolved.get('description', ''))}</p>" + d.table(d.fields(schema)))
    rows = []
    for code, resp in op.get("responses", {}).items():
        kinds = ", ".join(f"<code>{escape(k)}</code> {d.type_of(v.get('schema', {}))}"
                          for k, v in resp.get("content", {}).items())
        rows.append(f"<tr><td>{escape(code)}</td><td>{escape(resp.get('description', ''))}</td><td>{kinds}</td></tr>")
    out.append("<h4>Responses</h4>" + d.table(rows, "<th>status</th><th>meaning</th><th>body</th>"))
    return "".join(out) + "</section>"


def render_page(doc: dict) -> str:
    d = _Doc(doc)
    info = doc["info"]
    by_tag: dict[str, list[str]] = {t["name"]: [] for t in doc.get("tags", [])}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            by_tag.setdefault((op.get("tags") or ["Other"])[0], []).append(_operation(d, path, method, op))
    tag_text = {t["name"]: t.get("description", "") for t in doc.get("tags", [])}
    nav = "".join(f'<a href="#tag-{i}">{escape(t)}</a>' for i, t in enumerate(by_tag))
    sections = "".join(f'<h2 id="tag-{i}">{escape(t)}</h2><p>{escape(tag_text.get(t, ""))}</p>{"".join(ops)}'
                       for i, (t, ops) in enumerate(by_tag.items()))
    schemas = "".join(f'<h3 id="schema-{escape(n)}">{escape(n)}</h3><p>{escape(d.resolve(s).get("description", ""))}</p>'
                      f"{d.table(d.fields(s))}" for n, s in doc["components"]["schemas"].items())
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(info['title'])} API reference"
            f"</title><meta name=viewport content='width=device-width,initial-scale=1'><style>{_CSS}</style></head>"
            f"<body><h1>{escape(info['title'])} <small>{escape(info['version'])}</small></h1>"
            f"<p>{escape(info.get('description', ''))}</p><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>"
            f" (OpenAPI {escape(doc['openapi'])})</p><nav>{nav}<a href='#schemas'>Schemas</a></nav>{sections}"
            f"<h2 id=schemas>Schemas</h2>{schemas}</body></html>")

"""Schemathesis against /openapi.json of a real running gateway: every operation of the document,
with data that fits its schemas (positive) and data that does not (negative).

Each generated request must get: no 5xx; every >= 400 answer in the seed's error shape
{"error": {"message", "type", "param", "code"}} (Anthropic's {"type": "error", "error": {"type",
"message"}, "request_id"} on /v1/messages*, as the document says); a status, content type and body the document
declares for that operation (schemathesis' conformance checks); and invalid data refused.

In the suite: a fixed seed and 12 examples per operation (~305 requests, a few seconds). The longer
run (tests/fuzz/README.md), 300 per operation = 7,505 requests:

    ROUTERONE_FUZZ_EXAMPLES=300 python3 dev.py test -q tests/fuzz -s

ROUTERONE_FUZZ_SEED changes the seed, ROUTERONE_FUZZ_DB=postgres runs it on PostgreSQL; the totals
(requests, 5xx, shape failures) are printed at the end and written to ROUTERONE_FUZZ_REPORT (a JSON
file) when it is set.
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

import httpx2
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_schema_conformance, status_code_conformance)

from routerone.http.apidoc import build_document
from routerone.settings import ProviderSettings, Settings
from routerone.testing.harness import ADMIN_KEY, Gateway

EXAMPLES = int(os.environ.get("ROUTERONE_FUZZ_EXAMPLES", "12"))
SEED = int(os.environ.get("ROUTERONE_FUZZ_SEED", "20261206"))
REPORT = os.environ.get("ROUTERONE_FUZZ_REPORT")
OPERATIONS = sorted((m.upper(), p) for p, ops in build_document()["paths"].items() for m in ops)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
NOWHERE = 10**15          # an id that exists in no table: where a case aimed at the fuzzer's own key goes
STATS: Counter = Counter()
FAILURES: list[str] = []


CHAT_MODELS = ["auto", "gpt-4o-mini", "openai/gpt-4o", "gpt-4.1"]
EMBEDDING_MODELS = ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"]
ANTHROPIC_ERROR_TYPES = {"invalid_request_error", "authentication_error", "billing_error", "permission_error",
                         "not_found_error", "request_too_large", "rate_limit_error", "api_error",
                         "overloaded_error", "timeout_error"}


class Target:
    def __init__(self, gw: Gateway, user_key: str, protected: dict[str, set[int]], response_ids: list[str]) -> None:
        self.gw, self.user_key, self.protected = gw, user_key, protected
        self.response_ids = response_ids        # stored responses of the fuzzer's account (GET/DELETE by id)
        self.schema = schemathesis.openapi.from_url(gw.url + "/openapi.json")
        self.session = requests.Session()

    def prepare(self, case) -> None:
        """Auth by path (admin key for /admin, the funded user key elsewhere), and keep the cases
        from revoking, expiring or draining the two keys the fuzzer itself uses."""
        key = ADMIN_KEY if case.path.startswith("/admin") else self.user_key
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
        params = case.path_parameters or {}
        kind = "keys" if case.path.startswith("/admin/keys/") else "accounts"
        if case.path.startswith("/admin") and case.method != "GET" and params.get("id") in self.protected[kind]:
            params["id"] = NOWHERE


@pytest.fixture(scope="module")
def database_url(tmp_path_factory) -> Iterator[str]:
    """SQLite by default; ROUTERONE_FUZZ_DB=postgres runs the same fuzz on a fresh PostgreSQL database."""
    if os.environ.get("ROUTERONE_FUZZ_DB") == "postgres":
        sys.path.insert(0, str(Path(__file__).parent.parent / "e2e"))
        from billing_procs import pg_database
        with pg_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'r1.db'}"


@pytest.fixture(scope="module")
def target(fake_upstream, database_url: str) -> Iterator[Target]:
    providers = {"openai": ProviderSettings(api_key=fake_upstream.api_key, base_url=fake_upstream.base_url)}
    with Gateway(Settings(database_url=database_url, demo="off", providers=providers,
                          usage_flush_interval_s=0.05)) as gw:
        admin = httpx2.Client(base_url=gw.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
        acc = admin.post("/admin/accounts", json={"name": "fuzz", "balance_usd": "100000"}).json()["data"]
        key = admin.post("/admin/keys", json={"account_id": acc["id"]}).json()["data"]
        admin_key_ids = {k["id"] for k in admin.get("/admin/keys").json()["data"] if k["role"] == "admin"}
        user = httpx2.Client(base_url=gw.url, headers={"Authorization": f"Bearer {key['key']}"}, timeout=30)
        stored = [user.post("/v1/responses", json={"model": "gpt-4o-mini", "input": f"turn {i}"}) for i in range(4)]
        assert all(r.status_code == 200 for r in stored), [r.text[:200] for r in stored]
        yield Target(gw, key["key"], {"keys": admin_key_ids | {key["id"]},
                                      "accounts": {acc["id"], key["account_id"], 1}},
                     [r.json()["id"] for r in stored])
        user.close()
        admin.close()


def _shape_problem(response, path: str) -> str | None:
    """None when a >= 400 answer has the error shape the document gives its path."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"not JSON: {response.text[:200]!r}"
    err = body.get("error") if isinstance(body, dict) else None
    if path.startswith("/v1/messages"):
        ok = (isinstance(body, dict) and set(body) == {"type", "error", "request_id"} and body["type"] == "error"
              and isinstance(err, dict) and set(err) == {"type", "message"} and err["type"] in ANTHROPIC_ERROR_TYPES
              and isinstance(err["message"], str) and err["message"]
              and isinstance(body["request_id"], (str, type(None))))
        return None if ok else f"not Anthropic's error shape: {body!r}"[:300]
    if not (isinstance(body, dict) and set(body) == {"error"} and isinstance(err, dict)
            and set(err) == {"message", "type", "param", "code"} and isinstance(err["message"], str) and err["message"]
            and isinstance(err["type"], str) and isinstance(err["param"], (str, type(None)))
            and isinstance(err["code"], (str, type(None)))):
        return f"not the seed's error shape: {body!r}"[:300]
    return None


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    summary = {"requests": STATS["requests"], "5xx": STATS["5xx"], "shape_failures": STATS["shape"],
               "check_failures": STATS["check"], "by_status": {k[7:]: v for k, v in sorted(STATS.items())
                                                                if k.startswith("status:")},
               "examples_per_operation": EXAMPLES, "seed": SEED, "operations": len(OPERATIONS),
               "database": os.environ.get("ROUTERONE_FUZZ_DB", "sqlite")}
    print("\nschemathesis fuzz:", json.dumps(summary))
    if os.environ.get("ROUTERONE_FUZZ_VERBOSE"):
        for k, v in sorted(STATS.items()):
            if k.startswith("op:"):
                print(f"  {k[3:]}: {v}")
    if REPORT:
        Path(REPORT).write_text(json.dumps({**summary, "failures": FAILURES[:50]}, indent=1))


def _reachable(op, path: str, target: Target) -> list:
    """Valid cases aimed at things that exist, so that the fuzz goes past "not found": small ids
    (accounts and keys the fuzz itself made), stored responses, configured model names (chat and
    embedding models; /v1/messages translates to the OpenAI fake), `model: "auto"`."""
    positive = GenerationMode.POSITIVE
    if path == "/v1/responses/{id}":      # DELETE may take the first two; GET always finds the last two
        ids = target.response_ids[:2] if op.method.upper() == "DELETE" else target.response_ids[2:]
        return [st.sampled_from(ids).flatmap(lambda i: op.as_strategy(positive, path_parameters={"id": i}))]
    if path in ("/v1/responses/{id}/input_items", "/v1/responses/{id}/cancel"):     # never deleted
        return [st.sampled_from(target.response_ids[2:]).flatmap(
            lambda i: op.as_strategy(positive, path_parameters={"id": i}))]
    if "{id}" in path:
        return [st.integers(1, 40).flatmap(lambda i: op.as_strategy(positive, path_parameters={"id": i}))]
    if path == "/v1/models/{model}":
        return [st.sampled_from(CHAT_MODELS).flatmap(
            lambda m: op.as_strategy(positive, path_parameters={"model": m}))]
    if path in ("/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens", "/v1/responses",
                "/v1/responses/input_tokens"):
        return [st.tuples(op.as_strategy(positive), st.sampled_from(CHAT_MODELS),
                          st.sampled_from([None, *target.response_ids]), st.booleans()).map(_with_model)]
    if path == "/v1/embeddings":
        return [st.tuples(op.as_strategy(positive), st.sampled_from(EMBEDDING_MODELS), st.none(),
                          st.just(False)).map(_with_model)]
    return []


def _integral(value):
    """Integral floats as ints: JSON Schema's `integer` admits 5.0, Router One (as the seed) does not."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def _with_model(args):
    """A configured model, Router One's own fields left to their defaults, a stored (or no)
    previous response, integral numbers as ints, a token budget the balance covers, and half of
    them streamed (so that the event schemas are checked often)."""
    case, model, previous, stream = args
    if isinstance(case.body, dict):
        case.body = _integral(case.body)
        case.body["model"] = model
        if stream:
            case.body["stream"] = True
        for key in ("max_tokens", "max_output_tokens", "max_completion_tokens"):
            if isinstance(case.body.get(key), int):
                case.body[key] = min(case.body[key], 256)
        for key in ("models", "route"):
            case.body.pop(key, None)
        if "previous_response_id" in case.body:
            case.body["previous_response_id"] = previous
    return case


@pytest.mark.parametrize("method,path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation(target: Target, method: str, path: str) -> None:
    op = target.schema[path][method]
    cases = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE),
                      *_reachable(op, path, target))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @seed(SEED)
    @given(case=cases)
    def run(case) -> None:
        target.prepare(case)
        response = case.call(base_url=target.gw.url, session=target.session, timeout=30)
        STATS["requests"] += 1
        STATS[f"status:{response.status_code}"] += 1
        mode = case.meta.generation.mode.value if case.meta is not None else "?"
        ctype = response.headers.get("content-type") or [""]          # schemathesis: a list per header
        sse = " sse" if str(ctype[0] if isinstance(ctype, list) else ctype).startswith("text/event-stream") else ""
        STATS[f"op:{method} {path} {mode} {response.status_code}{sse}"] += 1
        if os.environ.get("ROUTERONE_FUZZ_VERBOSE") == "2" and mode == "positive" and response.status_code == 400:
            print("positive 400:", method, path, str(case.body)[:120], response.json()["error"]["message"][:120])
        if response.status_code >= 500:
            STATS["5xx"] += 1
            FAILURES.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")
        problem = _shape_problem(response, path)
        if problem:
            STATS["shape"] += 1
            FAILURES.append(f"{case.method} {case.formatted_path}: {problem}")
        assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:300])
        assert problem is None, (case.method, case.formatted_path, case.body, problem)
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception:
            STATS["check"] += 1
            FAILURES.append(f"{case.method} {case.formatted_path} {case.body!r:.200}: check failed")
            raise

    run()

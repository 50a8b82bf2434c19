"""The request schemas of /openapi.json for /v1/messages, /v1/responses and /v1/embeddings say no
more than the parsers enforce: a body the document forbids is a 400 from the parser (what the
fuzz's negative cases rely on), and the vendors' example bodies fit the document."""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from routerone.errors import InvalidRequest, UnsupportedParameter
from routerone.http.apidoc import build_document
from routerone.wire.embeddings import parse_embeddings_request
from routerone.wire.messages import messages_to_chat, parse_messages_request
from routerone.wire.responses import parse_body, responses_to_chat

FIXTURES = Path(__file__).parent / "fixtures"
DOC = build_document()
JUNK = [None, False, True, 0, -1, 1.5, "", "x", [], [None], [1, "a"], {}, {"type": None}, {"type": "text"},
        {"type": "function"}, [{"type": "text"}], [{}], [[]], {"role": "user"}, {"type": "image", "source": {}}]


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({**DOC["components"]["schemas"][name], "components": DOC["components"]})


def _paths(node, prefix=()):
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield from _paths(v, (*prefix, k))


def _replace(doc, path, value):
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for depth, p in enumerate(path, 1):
        fits = (isinstance(node, dict) and p in node) or (isinstance(node, list) and isinstance(p, int) and p < len(node))
        if not fits:
            return doc      # the path went away with an earlier change
        if depth == len(path):
            node[p] = value
        else:
            node = node[p]
    return doc


def _mutants(doc, rng: random.Random, n_random: int = 400):
    paths = list(_paths(doc))
    for path in paths:
        for junk in JUNK:
            yield _replace(doc, path, junk)
    for _ in range(n_random):        # two changes at once
        yield _replace(_replace(doc, rng.choice(paths), rng.choice(JUNK)), rng.choice(paths), rng.choice(JUNK))


def _messages(body):
    parse_messages_request(orjson.dumps(body))


def _count_tokens(body):
    if not isinstance(body, dict):
        raise InvalidRequest("not an object")
    messages_to_chat({"max_tokens": 1, **body})


def _responses(body):
    responses_to_chat(parse_body(orjson.dumps(body)), [])


def _input_tokens(body):
    """As services/responses.py `count_input_tokens` checks a body: without a model, as `auto`."""
    parsed = parse_body(orjson.dumps(body))
    if parsed.get("model") is None:
        parsed["model"] = "auto"
    responses_to_chat(parsed, [])


def _embeddings(body):
    parse_embeddings_request(orjson.dumps(body))


def _fixture(*parts: str) -> dict:
    *path, key = parts
    return json.loads((FIXTURES.joinpath(*path)).read_text())[key]


CASES = [
    ("CreateMessageRequest", _messages, _fixture("messages", "tool_round_trip_request.json", "messages")),
    ("CreateMessageRequest", _messages, _fixture("messages", "images_documents_request.json", "messages")),
    ("CountTokensRequest", _count_tokens, _fixture("messages", "tool_round_trip_request.json", "messages")),
    ("CreateResponseRequest", _responses, _fixture("responses", "items_request.json", "responses")),
    ("CountResponseTokensRequest", _input_tokens, _fixture("responses", "items_request.json", "responses")),
    ("CreateEmbeddingRequest", _embeddings, _fixture("embeddings", "openai_batch.json", "request")),
]


@pytest.mark.parametrize("schema,parse,doc", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_what_the_document_forbids_the_parser_refuses(schema, parse, doc):
    v = _validator(schema)
    assert v.is_valid(doc), list(v.iter_errors(doc))[:1]
    parse(doc)
    forbidden = 0
    for body in _mutants(doc, random.Random(11)):
        if v.is_valid(body):
            continue
        forbidden += 1
        try:
            parse(body)
        except InvalidRequest:
            continue
        why = min(v.iter_errors(body), key=lambda e: -len(e.absolute_path))
        pytest.fail(f"documented as invalid but accepted: at {list(why.absolute_path)}: {why.message[:300]}")
    assert forbidden > 20


@pytest.mark.parametrize("parse,body", [
    # falsy values that were silently taken as "absent"
    (_responses, {"model": "m", "input": "hi", "tools": ""}),
    (_responses, {"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f", "parameters": ""}]}),
    (_responses, {"model": "m", "input": "hi", "tool_choice": "sometimes"}),
    (_responses, {"model": "m", "input": "hi", "store": "no"}),
    (_messages, {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tool_choice": 3}),
    (_embeddings, {"model": "m", "input": "x", "encoding_format": ""}),
    (_embeddings, {"model": "m", "input": "x", "encoding_format": 0}),
])
def test_values_the_document_forbids_are_400s(parse, body):
    with pytest.raises(InvalidRequest):
        parse(body)


def test_a_function_output_part_without_string_text_is_no_crash():
    """It was a TypeError (a 500): a part without a string `text` is a 400 naming it (it was
    skipped, which also dropped a tool's image results unnoticed); text parts are joined."""
    def output(parts: list) -> dict:
        return {"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                                        {"type": "function_call_output", "call_id": "c", "output": parts}]}
    with pytest.raises(UnsupportedParameter) as info:
        responses_to_chat(parse_body(orjson.dumps(output([{"type": "input_text", "text": 5}, {"text": "ok"}]))), [])
    assert info.value.param == "input[1].output[0]"
    req = responses_to_chat(parse_body(orjson.dumps(output([{"type": "input_text", "text": "o"}, {"text": "k"}]))), [])
    assert req.messages[-1] == {"role": "tool", "tool_call_id": "c", "content": "ok"}

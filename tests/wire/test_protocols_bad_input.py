"""Bad input never escapes as anything but InvalidRequest: mutated bodies (every field replaced in
turn by values of the wrong type, and random nested junk) go through the three translations."""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import orjson
import pytest

from routerone.errors import InvalidRequest
from routerone.wire.embeddings import parse_embeddings_request
from routerone.wire.messages import parse_messages_request
from routerone.wire.responses import parse_body, responses_to_chat

FIXTURES = Path(__file__).parent / "fixtures"
JUNK = [None, True, 0, -1, 1.5, "", "x", [], [None], [1, "a"], {}, {"type": None}, {"type": "text"},
        [{"type": "text"}], [{}], [[]], {"role": "user"}]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _replace(doc, path, value):
    doc = copy.deepcopy(doc)
    if not path:
        return value
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def _mutants(doc, rng: random.Random, n_random: int = 300):
    paths = list(_paths(doc))
    for path in paths:
        for junk in (None, 7, "s", [], {}, [{}]):
            yield _replace(doc, path, junk)
    for _ in range(n_random):
        yield _replace(doc, rng.choice(paths), rng.choice(JUNK))


def _messages(body):
    parse_messages_request(orjson.dumps(body))


def _responses(body):
    b = parse_body(orjson.dumps(body))
    responses_to_chat(b, [])


def _embeddings(body):
    parse_embeddings_request(orjson.dumps(body))


CASES = [
    (_messages, json.loads((FIXTURES / "messages" / "tool_round_trip_request.json").read_text())["messages"]),
    (_messages, json.loads((FIXTURES / "messages" / "images_documents_request.json").read_text())["messages"]),
    (_responses, json.loads((FIXTURES / "responses" / "items_request.json").read_text())["responses"]),
    (_embeddings, json.loads((FIXTURES / "embeddings" / "openai_batch.json").read_text())["request"]),
]


@pytest.mark.parametrize("fn,doc", CASES, ids=["messages-tools", "messages-media", "responses", "embeddings"])
def test_mutated_bodies_fail_cleanly(fn, doc):
    rng = random.Random(14)
    ok = refused = 0
    for body in _mutants(doc, rng):
        try:
            fn(body)
            ok += 1
        except InvalidRequest as exc:
            assert exc.status == 400 and exc.message
            refused += 1
    assert refused > 10 and ok > 0      # both outcomes were exercised

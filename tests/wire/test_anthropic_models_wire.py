"""wire/anthropic_models.py: Anthropic's cursor pages over the model list (limit, after_id, before_id)."""
from __future__ import annotations

import pytest

from routerone.errors import InvalidRequest
from routerone.wire.anthropic_models import model_info, models_page

INFOS = [model_info(f"m{i}", 1000, 100) for i in range(5)]


def ids(page: dict) -> list[str]:
    return [m["id"] for m in page["data"]]


@pytest.mark.parametrize("query, want, has_more", [
    ({}, ["m0", "m1", "m2", "m3", "m4"], False),
    ({"limit": "2"}, ["m0", "m1"], True),
    ({"limit": "2", "after_id": "m1"}, ["m2", "m3"], True),
    ({"limit": "2", "after_id": "m2"}, ["m3", "m4"], False),
    ({"after_id": "m4"}, [], False),
    ({"after_id": "gone"}, [], False),
    ({"limit": "2", "before_id": "m4"}, ["m2", "m3"], True),
    ({"limit": "2", "before_id": "m2"}, ["m0", "m1"], False),
    ({"before_id": "m0"}, [], False),
    ({"before_id": "gone"}, [], False),
])
def test_pages(query, want, has_more):
    page = models_page(INFOS, query)
    assert ids(page) == want and page["has_more"] is has_more
    assert (page["first_id"], page["last_id"]) == ((want[0], want[-1]) if want else (None, None))


@pytest.mark.parametrize("query, param", [({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
                                          ({"limit": "two"}, "limit"),
                                          ({"after_id": "m1", "before_id": "m3"}, "before_id")])
def test_bad_queries_are_400s_naming_the_parameter(query, param):
    with pytest.raises(InvalidRequest) as info:
        models_page(INFOS, query)
    assert info.value.param == param and info.value.status == 400

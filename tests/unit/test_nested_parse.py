"""The one parse-and-refuse for JSON and TOML files an operator gives (catalog, model priors, a
router artefact's meta, `eval-routing --prices`): json and tomllib recurse, so a text nested ~1,000
deep raised RecursionError, caught separately in each of the four. nested_parse raises one
NestedTooDeep (a ValueError saying "nested too deep") that each consumer words as before."""
from __future__ import annotations

import pytest

from routerone.nested_parse import NestedTooDeep, parse_json, parse_toml
from routerone.settings_readers import unique_keys

DEEP = 100_000


@pytest.mark.parametrize("parse, text", [(parse_json, "[" * DEEP + "]" * DEEP),
                                         (parse_json, '{"a":' * DEEP + "1" + "}" * DEEP),
                                         (parse_toml, "x = " + "[" * DEEP + "]" * DEEP),
                                         (parse_toml, "x = " + "{a = " * DEEP + "1" + "}" * DEEP)])
def test_nested_too_deep_is_one_value_error(parse, text):
    with pytest.raises(NestedTooDeep) as exc:
        parse(text)
    assert isinstance(exc.value, ValueError) and str(exc.value) == "nested too deep"
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_what_is_not_too_deep_parses_as_the_library_does():
    assert parse_json('{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    assert parse_toml("a = [1, {b = 2}]") == {"a": [1, {"b": 2}]}
    assert parse_json("[" * 200 + "]" * 200)
    with pytest.raises(ValueError, match="given twice"):
        parse_json('{"a": 1, "a": 2}', object_pairs_hook=unique_keys)
    for parse, bad in ((parse_json, "{"), (parse_toml, "a = ")):
        with pytest.raises(ValueError) as exc:
            parse(bad)
        assert not isinstance(exc.value, NestedTooDeep)

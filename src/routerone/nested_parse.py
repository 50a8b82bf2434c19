"""JSON and TOML text parsed with one refusal of what is nested too deep.

json and tomllib recurse: arrays or tables nested ~1,000 deep raised RecursionError, which each
reader of an operator's file (the catalog, the model priors, a router artefact's meta, the prices of
`eval-routing --prices`) caught on its own. Here it is one NestedTooDeep, a ValueError saying
"nested too deep", so a reader that words a ValueError ("not valid TOML (...)") words this one too.
"""
from __future__ import annotations

import json
import tomllib
from typing import Any

__all__ = ["NestedTooDeep", "parse_json", "parse_toml"]


class NestedTooDeep(ValueError):
    """A JSON or TOML text nested deeper than its parser can recurse."""

    def __init__(self) -> None:
        super().__init__("nested too deep")


def parse_json(text: str | bytes, **kwargs: Any) -> Any:
    """json.loads(text, **kwargs); NestedTooDeep instead of a RecursionError."""
    try:
        return json.loads(text, **kwargs)
    except RecursionError:
        raise NestedTooDeep() from None


def parse_toml(text: str) -> dict[str, Any]:
    """tomllib.loads(text); NestedTooDeep instead of a RecursionError."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise NestedTooDeep() from None

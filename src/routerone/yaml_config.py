"""A YAML config file read as settings.py reads it: yaml.safe_load, but a key given twice is an
error, and aliases may not stand for a "billion laughs"."""
from __future__ import annotations

from typing import Any

__all__ = ["yaml_without_repeats", "MAX_YAML_ALIAS_VALUES"]


def yaml_without_repeats(text: str) -> Any:
    """yaml.safe_load, but a mapping key given twice (a second `providers: gpubox:`, a second `port:`)
    is an error: PyYAML kept the last one silently."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":     # `<<: *defaults`, whose keys may be overridden
                continue
            key = loader.construct_object(key_node)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:           # an unhashable key: construct_mapping refuses it
                continue
            if repeated:
                raise ValueError(f"key {key!r} is given twice (line {key_node.start_mark.line + 1})")
        return loader.construct_mapping(node)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_alias_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_children(node: Any) -> list:
    import yaml
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


MAX_YAML_ALIAS_VALUES = 100_000     # values aliases may add to those written (`<<: *defaults` adds a few)


def _check_alias_expansion(root: Any) -> None:
    """A YAML "billion laughs" (9 lists of 9 aliases to the list before) is 300 bytes that stand for
    9**9 values: shared when loaded, but any walk or repr of them (an error message) took minutes and
    GBs. The composed node graph is measured as expanded, without expanding it."""
    expanded: dict[int, int] = {}       # id(node) -> values it stands for, itself included
    started: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        kids = _yaml_children(node)
        if done:
            expanded[id(node)] = 1 + sum(expanded[id(k)] for k in kids)
            continue
        if id(node) in expanded:
            continue
        if id(node) in started:
            raise ValueError(f"a YAML alias refers to a value that holds it (line {node.start_mark.line + 1})")
        started.add(id(node))
        stack.append((node, True))
        stack.extend((k, False) for k in reversed(kids) if id(k) not in expanded)
    if expanded[id(root)] - len(expanded) > MAX_YAML_ALIAS_VALUES:
        raise ValueError(f"its aliases stand for {expanded[id(root)]:,} values, more than {MAX_YAML_ALIAS_VALUES:,} "
                         "beyond the ones written (a YAML \"billion laughs\"?)")

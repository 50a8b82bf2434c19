"""The client's routing headers (`x-routerone-strategy`, `x-routerone-willingness-to-pay`) as the
three client endpoints read them: one value each. A header sent more than once with different values
is a 400 invalid_request_error naming it (before, the first was used, silently); the same value
repeated is that value."""
from __future__ import annotations

from typing import NamedTuple

from multidict import CIMultiDictProxy

from ..errors import InvalidRequest
from ..routing.planner import STRATEGY_HEADER
from ..routing.wtp import HEADER as WTP_HEADER

__all__ = ["RoutingHeaders", "routing_headers", "STRATEGY_HEADER"]



class RoutingHeaders(NamedTuple):
    strategy: str | None
    wtp: str | None


def _one(headers: CIMultiDictProxy[str], name: str) -> str | None:
    values = headers.getall(name, ())
    if not values:
        return None
    if len({v.strip() for v in values}) > 1:
        raise InvalidRequest(f"header '{name}' was sent {len(values)} times with different values; send it once",
                             param=name)
    return values[0]


def routing_headers(headers: CIMultiDictProxy[str]) -> RoutingHeaders:
    return RoutingHeaders(_one(headers, STRATEGY_HEADER), _one(headers, WTP_HEADER))

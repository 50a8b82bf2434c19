"""x-routerone-overhead-ms for the non-chat protocols: the chat pipeline's figure plus the time the
protocol spent rendering its reply (and, for Responses, storing it)."""
from __future__ import annotations

import time

__all__ = ["add_overhead"]


def add_overhead(headers: dict[str, str], since: float) -> None:
    """Add the time since `since` (a perf_counter reading) to x-routerone-overhead-ms."""
    spent_ms = (time.perf_counter() - since) * 1000
    try:
        headers["x-routerone-overhead-ms"] = f"{float(headers['x-routerone-overhead-ms']) + spent_ms:.3f}"
    except (KeyError, ValueError):
        pass

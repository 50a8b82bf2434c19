"""usage_to_bill (services/billing.py): the one place where an upstream's reported usage meets
Router One's own count, for replies and streams alike (Usage.implausible_zeros was applied at each
path's call site: a third path could forget it and bill a server that counts nothing $0)."""
from __future__ import annotations

import asyncio

from routerone.services.billing import usage_to_bill
from routerone.wire.types import Usage

OWN = Usage(12, 34, estimated=True)


def _billed(reported: Usage | None, *, prompt_tokens: int = 12, has_output: bool = True) -> tuple[Usage, int]:
    counts: list[int] = []

    async def count() -> Usage:
        counts.append(1)
        return OWN
    usage = asyncio.run(usage_to_bill(reported, prompt_tokens=prompt_tokens, has_output=lambda: has_output,
                                      count=count))
    return usage, len(counts)


def test_zero_and_zero_with_a_prompt_and_output_is_router_ones_count():
    usage, counts = _billed(Usage(0, 0))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated, counts) == (12, 34, True, 1)
    assert usage.unreadable == ("prompt_tokens", "completion_tokens")     # flagged by check_usage


def test_zero_output_without_output_relayed_is_the_upstreams():
    usage, counts = _billed(Usage(5, 0), has_output=False)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated, counts) == (5, 0, False, 0)


def test_plausible_counts_are_the_upstreams_and_nothing_is_counted():
    usage, counts = _billed(Usage(5, 7))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated, counts) == (5, 7, False, 0)


def test_no_usage_is_the_estimate():
    assert _billed(None) == (OWN, 1)


def test_an_unreadable_count_is_router_ones():
    usage, counts = _billed(Usage(5, 0, unreadable=("completion_tokens",)))
    assert (usage.prompt_tokens, usage.completion_tokens, counts) == (5, 34, 1)

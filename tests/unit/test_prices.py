"""Exact money: USD strings -> integer micro-dollars, and costs rounded up once per request."""
from __future__ import annotations

import itertools

import pytest

from routerone.billing.prices import Price, usd_to_micros
from routerone.wire.types import Usage

GPT_4O = Price(input_micros_per_mtok=2_500_000, output_micros_per_mtok=10_000_000, cached_input_micros_per_mtok=1_250_000)
SONNET = Price(3_000_000, 15_000_000, cached_input_micros_per_mtok=300_000, cache_write_micros_per_mtok=3_750_000)


@pytest.mark.parametrize("value, micros", [("2.50", 2_500_000), ("0.075", 75_000), ("0", 0), ("15", 15_000_000),
                                           ("0.000001", 1), (0.1, 100_000), (3, 3_000_000), ("1e-6", 1)])
def test_usd_to_micros_is_exact(value, micros):
    assert usd_to_micros(value) == micros


@pytest.mark.parametrize("value", ["0.0000001", "-1", "abc", "", None, "1.2345678",
                                   # decimal.Overflow, and 29 significant digits rounded by Decimal's context
                                   "1e999999999", "1.0000000000000000000000000001", "-1e999999999"])
def test_usd_to_micros_rejects_what_it_cannot_represent(value):
    with pytest.raises(ValueError, match="price"):
        usd_to_micros(value)


def test_error_names_what_was_being_converted():
    with pytest.raises(ValueError, match="model\\[x\\].input"):
        usd_to_micros("x", what="model[x].input")


def test_cost_of_a_plain_request():
    # 1000 * 2.5 + 500 * 10 = 7500 micro-dollars exactly
    assert GPT_4O.cost_micros(Usage(prompt_tokens=1000, completion_tokens=500)) == 7_500


def test_cost_rounds_up_once_to_a_whole_micro():
    assert GPT_4O.cost_micros(Usage(prompt_tokens=1, completion_tokens=12)) == 123      # 122.5 -> 123
    assert GPT_4O.cost_micros(Usage(prompt_tokens=1, completion_tokens=0)) == 3         # 2.5 -> 3
    assert Price(1, 1).cost_micros(Usage(1, 1)) == 1                                     # 2e-6 -> 1
    assert GPT_4O.cost_micros(Usage()) == 0


def test_cached_and_cache_write_tokens_are_priced_separately():
    u = Usage(prompt_tokens=10_000, completion_tokens=0, cached_tokens=4_000, cache_write_tokens=2_000)
    # 4000 plain * 3 + 4000 cached * 0.3 + 2000 written * 3.75 = 12000 + 1200 + 7500
    assert SONNET.cost_micros(u) == 20_700
    # unknown cached / cache-write prices default to the input price
    assert Price(3_000_000, 0).cost_micros(u) == 30_000


def test_cache_counts_never_exceed_the_prompt():
    u = Usage(prompt_tokens=100, completion_tokens=0, cached_tokens=500, cache_write_tokens=500)
    assert SONNET.cost_micros(u) == 30       # all 100 tokens cached at 0.3
    u = Usage(prompt_tokens=100, completion_tokens=0, cached_tokens=60, cache_write_tokens=500)
    assert SONNET.cost_micros(u) == -(-(60 * 300_000 + 40 * 3_750_000) // 1_000_000)


@pytest.mark.parametrize("markup_bps, expected", [(0, 7_500), (100, 7_575), (2_500, 9_375), (1, 7_501)])
def test_markup_in_basis_points(markup_bps, expected):
    assert GPT_4O.cost_micros(Usage(1000, 500), markup_bps) == expected


def test_worst_case_bounds_every_real_cost():
    for price, markup in itertools.product((GPT_4O, SONNET, Price(1, 7)), (0, 150)):
        for prompt, out in itertools.product((0, 1, 7, 1000), (0, 1, 13, 4096)):
            worst = price.worst_case_micros(prompt, out, markup)
            for cached, written, used in itertools.product((0, prompt // 2, prompt), (0, prompt // 3), (0, out // 2, out)):
                assert price.cost_micros(Usage(prompt, used, cached, written), markup) <= worst


def test_blended_price_weights_input_three_to_one():
    assert GPT_4O.blended_micros_per_mtok == (3 * 2_500_000 + 10_000_000) // 4

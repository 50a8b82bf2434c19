"""Prices in integer micro-dollars per 1M tokens, and exact cost arithmetic."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation

from ..wire.types import Usage

__all__ = ["Price", "usd_to_micros", "price_to_micros", "MAX_PRICE_USD_PER_MTOK"]

MICROS_PER_USD = 1_000_000
TOKENS_PER_MTOK = 1_000_000
# $1 per token: far above any model's list price, and low enough that a request's worst case (a
# context of millions of tokens) stays a small fraction of the 64-bit micro-dollar amounts the
# database holds
MAX_PRICE_USD_PER_MTOK = 1_000_000


_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def usd_to_micros(value: object, *, what: str = "price") -> int:
    """'2.50' (USD) -> 2_500_000 micro-dollars, exactly. Sub-micro precision is rejected."""
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a number") from None
    if not d.is_finite():                       # "inf" (int() of it raised OverflowError), "nan"
        raise ValueError(f"{what}: {value!r} is not a finite number")
    if d.adjusted() > 30:                       # "1e999999999": * 10**6 raised decimal.Overflow
        raise ValueError(f"{what}: {value!r} is too large")
    d = d.scaleb(6, _EXACT)                     # exact: the default context rounds to 28 digits
    if d != d.to_integral_value() or d < 0:
        raise ValueError(f"{what}: {value!r} is negative or finer than one micro-dollar")
    return int(d)


def price_to_micros(value: object, *, what: str = "price") -> int:
    """A price in USD per 1M tokens ('2.50') -> micro-dollars, exactly; above
    MAX_PRICE_USD_PER_MTOK it is refused (a typo such as "1e30" would make every request's hold
    too large to store: a 500 on each)."""
    micros = usd_to_micros(value, what=what)
    if micros > MAX_PRICE_USD_PER_MTOK * MICROS_PER_USD:
        raise ValueError(f"{what}: {value!r} is above the highest price accepted "
                         f"({MAX_PRICE_USD_PER_MTOK:,} USD per 1M tokens)")
    return micros


@dataclass(frozen=True, slots=True)
class Price:
    """Micro-dollars per 1M tokens. Cached/cache-write default to the input price when unknown.

    `long_context` (with `long_context_from_tokens`): the whole request is charged at those prices
    once its prompt is longer than that many tokens (the providers' "cliff" tiers, e.g. Gemini Pro
    above 200k tokens).
    """
    input_micros_per_mtok: int = 0
    output_micros_per_mtok: int = 0
    cached_input_micros_per_mtok: int | None = None
    cache_write_micros_per_mtok: int | None = None
    long_context_from_tokens: int | None = None
    long_context: "Price | None" = None

    def cost_micros(self, usage: Usage, markup_bps: int = 0) -> int:
        """Exact cost, rounded up once to a whole micro-dollar. markup in basis points (100 = 1%)."""
        if self.long_context is not None and usage.prompt_tokens > (self.long_context_from_tokens or 0):
            return self.long_context.cost_micros(usage, markup_bps)
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        plain = usage.prompt_tokens - cached - written
        c_in = self.cached_input_micros_per_mtok
        c_wr = self.cache_write_micros_per_mtok
        total = (plain * self.input_micros_per_mtok
                 + cached * (self.input_micros_per_mtok if c_in is None else c_in)
                 + written * (self.input_micros_per_mtok if c_wr is None else c_wr)
                 + usage.completion_tokens * self.output_micros_per_mtok)
        total = total * (10_000 + markup_bps)
        return -(-total // (TOKENS_PER_MTOK * 10_000))

    def worst_case_micros(self, prompt_tokens: int, max_output_tokens: int, markup_bps: int = 0) -> int:
        """Upper bound for reservation: no cache discount, every output token generated."""
        if self.long_context is not None and prompt_tokens > (self.long_context_from_tokens or 0):
            return self.long_context.worst_case_micros(prompt_tokens, max_output_tokens, markup_bps)
        highest_in = max(self.input_micros_per_mtok, self.cache_write_micros_per_mtok or 0)
        total = (prompt_tokens * highest_in + max_output_tokens * self.output_micros_per_mtok)
        total = total * (10_000 + markup_bps)
        return -(-total // (TOKENS_PER_MTOK * 10_000))

    @property
    def blended_micros_per_mtok(self) -> int:
        """One number for ranking models by price: 3 input tokens per output token."""
        return (3 * self.input_micros_per_mtok + self.output_micros_per_mtok) // 4

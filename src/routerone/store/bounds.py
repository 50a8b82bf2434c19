"""Bounds on money, checked by both stores (and before them by the admin service and API).

Money is integer micro-dollars in BIGINT (int64) columns. One credit or debit moves at most
MAX_AMOUNT_MICROS ($1e9) and a balance never exceeds MAX_BALANCE_MICROS ($1e9), so a balance, a
hold, and every running SUM over an account's ledger (whose partial sums, in id order, are the
balances it went through) stay far below 2**63 micros (~$9.2e12) on SQLite (whose integer addition
silently turns into a REAL past int64) and PostgreSQL (which raises). Both bounds are also below
2**53, so every amount is exact in a JSON client that reads numbers as doubles.
"""
from __future__ import annotations

__all__ = ["MAX_AMOUNT_MICROS", "MAX_BALANCE_MICROS", "MAX_SPEND_CAP_MICROS", "AmountOutOfRange",
           "check_adjustment", "unspent_grant_micros", "withdrawal_note", "withdrew_all"]

MAX_AMOUNT_MICROS = 10**15        # $1,000,000,000 per credit or debit
MAX_BALANCE_MICROS = 10**15       # $1,000,000,000 per account balance
MAX_SPEND_CAP_MICROS = 10**15     # a key's spend cap (a larger cap would never bind)


class AmountOutOfRange(ValueError):
    """A credit or debit that is not an integer, is zero, or is out of the bounds above."""


def check_adjustment(balance_micros: int, amount_micros: int) -> None:
    """Raise AmountOutOfRange unless `amount_micros` may be added to `balance_micros`."""
    if type(amount_micros) is not int:     # noqa: E721 - bool and float are refused too
        raise AmountOutOfRange(f"amount must be an integer number of micro-dollars, got {type(amount_micros).__name__}")
    if amount_micros == 0 or abs(amount_micros) > MAX_AMOUNT_MICROS:
        raise AmountOutOfRange(f"amount must be between 1 and {MAX_AMOUNT_MICROS} micro-dollars in absolute value")
    if balance_micros + amount_micros > MAX_BALANCE_MICROS:
        raise AmountOutOfRange(f"the balance would exceed the maximum of {MAX_BALANCE_MICROS} micro-dollars "
                               f"(${MAX_BALANCE_MICROS // 10**6:,})")


PARTIAL_WITHDRAWAL = " (in part: the rest was held by requests in flight)"


def withdrew_all(grant_micros: int, used_micros: int, amount_micros: int) -> bool:
    """Whether a withdrawal took all that was left of the grant: marked so (grant_withdrawals), later
    starts find it and read no further; else a later start sums again and takes the rest."""
    return amount_micros >= grant_micros - used_micros


def withdrawal_note(note: str, grant_micros: int, used_micros: int, amount_micros: int) -> str:
    """The withdrawal's ledger note (for people: `withdrew_all` is what later starts go by): `note`,
    or marked partial when it did not take all that was left."""
    return note if withdrew_all(grant_micros, used_micros, amount_micros) else note + PARTIAL_WITHDRAWAL


def unspent_grant_micros(grant_micros: int, used_micros: int, available_micros: int) -> int:
    """What is left of a credit grant (the demo's) to withdraw: everything taken from the account
    since the grant (charges, debits, earlier withdrawals: `used_micros`, >= 0) used the grant first;
    never more than the available balance (a request in flight keeps its hold)."""
    return max(0, min(grant_micros - used_micros, available_micros))

"""A number written as text in a header or query string: plain ASCII decimal only.

float() also reads other scripts' digits ("٠.5" is 0.5, "０.5" too), underscores ("0_5" is 5.0),
"nan", "inf" and surrounding Unicode whitespace; none of that is a number a client or an upstream
means to send, so `ascii_decimal` reads `[+-]digits[.digits][e[+-]digits]` and nothing else."""
from __future__ import annotations

import math
import re

__all__ = ["ascii_decimal", "shown"]

_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
MAX_SHOWN_CHARS = 40     # of a bad value, echoed in an error message


def ascii_decimal(text: str) -> float | None:
    """The finite number `text` spells (spaces and tabs around it allowed), else None."""
    text = text.strip(" \t")
    if len(text) > 400 or not _DECIMAL.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def shown(text: str) -> str:
    """`text` as an error message quotes it: repr'd, cut to MAX_SHOWN_CHARS."""
    return repr(text[:MAX_SHOWN_CHARS]) + ("..." if len(text) > MAX_SHOWN_CHARS else "")

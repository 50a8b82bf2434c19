"""Validation of a willingness to pay (request body, request header, key settings): a number 0..1."""
from __future__ import annotations

import math

from ..errors import InvalidRequest
from ..wire.decimal_text import ascii_decimal, shown

HEADER = "x-routerone-willingness-to-pay"


def parse_willingness_to_pay(value: object, param: str) -> float | None:
    """None stays None; a number in [0, 1] (JSON number, or a header's decimal text) is returned
    as a float; anything else is a 400 naming `param`."""
    if value is None:
        return None
    if isinstance(value, str):     # a header's text: a plain ASCII decimal (not "٠.5", "0_5", "nan")
        number = ascii_decimal(value)
        if number is None or not 0.0 <= number <= 1.0:
            raise InvalidRequest(f"'{param}' must be a number between 0 and 1, got {shown(value)}", param=param)
        return number + 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"'{param}' must be a number between 0 and 1, got {type(value).__name__}",
                             param=param)
    v = float(value)
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise InvalidRequest(f"'{param}' must be a number between 0 and 1, got {value}", param=param)
    return v

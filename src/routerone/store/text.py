"""Text PostgreSQL cannot hold: a NUL character (asyncpg raises CharacterNotInRepertoireError, a 500
wherever it reached the database). PostgresStore's lookups by such a string find nothing (no stored
text holds one); its writes of one are a ValueError naming the field, which the client-facing
callers map to a 400 (they refuse NUL before the store is reached; this is the store's own guard)."""
from __future__ import annotations

from typing import Iterable

__all__ = ["has_nul", "refuse_nul"]


def has_nul(*values: object) -> bool:
    """Whether any of `values` is a string (or a list of strings) with a NUL in it."""
    for v in values:
        if isinstance(v, str) and "\x00" in v:
            return True
        if isinstance(v, (list, tuple)) and has_nul(*v):
            return True
    return False


def refuse_nul(fields: Iterable[tuple[str, object]]) -> None:
    """A ValueError naming the first field whose text holds a NUL."""
    for name, value in fields:
        if has_nul(value):
            raise ValueError(f"{name} may not contain a NUL character")

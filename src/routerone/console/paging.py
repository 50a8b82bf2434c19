"""Pages of a list for console tables: no page renders more than `per_page` rows, whatever the
store holds (1,000 keys, 1,000 accounts). `paginate` cuts a page out of a list read whole (accounts,
users, models: the rendering was where the time and the bytes went, a 1,000-key Keys page was 830 KiB
of HTML); `keyset` reads only the page (ledger, audit, and keys: a tenant makes as many as it likes)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Generic, Protocol, Sequence, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from . import forms
from .web import reveal, without_invisible

__all__ = ["Pager", "paginate", "PER_PAGE", "top_rows", "search_text", "Keyset", "keyset", "name_matches"]

T = TypeVar("T")
PER_PAGE = 50
MAX_PAGE = 100_000


@dataclass(frozen=True, slots=True)
class Pager(Generic[T]):
    rows: Sequence[T]
    page: int
    pages: int
    total: int
    base_query: str              # the request's query string without `page`

    def href(self, page: int) -> str:
        return "?" + (self.base_query + "&" if self.base_query else "") + f"page={page}"

    @property
    def first_row(self) -> int:          # 1-based, for "rows 51-100 of 1,000"
        return (self.page - 1) * PER_PAGE + 1 if self.total else 0


def paginate(request: web.Request, items: Sequence[T], per_page: int = PER_PAGE) -> Pager[T]:
    """The page named by `?page=` (1 by default; past the last page, the last page)."""
    requested = forms.opt_int(dict(request.query), "page", maximum=MAX_PAGE) or 1
    pages = max(1, -(-len(items) // per_page))
    page = min(requested, pages)
    rest = urlencode([(k, v) for k, v in request.query.items() if k != "page" and v])
    return Pager(items[(page - 1) * per_page:page * per_page], page, pages, len(items), rest)


class _HasId(Protocol):
    id: int


R = TypeVar("R", bound=_HasId)


@dataclass(frozen=True, slots=True)
class Keyset(Generic[R]):
    """One page of a list read newest first by id (`?<param>=ID`: entries older than ID), so rows
    written meanwhile do not shift the pages; links keep the rest of the query string."""
    rows: Sequence[R]
    newest_href: str | None          # None on the first page
    older_href: str | None           # None on the last page


async def keyset(request: web.Request, param: str, fetch: Callable[[int, int | None], Awaitable[Sequence[R]]],
                 *, per_page: int = PER_PAGE, anchor: str = "") -> Keyset[R]:
    """`fetch(limit, before_id)` reads the store; one row more than a page tells whether there is
    an older page. A `param` that is not a row id is a 400."""
    before = forms.opt_int(dict(request.query), param, maximum=2**63 - 1)
    rows = await fetch(per_page + 1, before)
    older = rows[per_page - 1].id if len(rows) > per_page else None
    rest = [(k, v) for k, v in request.query.items() if k not in (param, "notice", "sig") and v]

    def href(before_id: int | None) -> str:
        query = urlencode(rest + ([(param, str(before_id))] if before_id is not None else []))
        return (f"?{query}" if query else request.path) + (f"#{anchor}" if anchor else "")
    return Keyset(rows[:per_page], href(None) if before is not None else None,
                  href(older) if older is not None else None)


def name_matches(q: str, name: str) -> bool:
    """A list's name filter: `q` anywhere in the name, any case, also ignoring the name's invisible
    characters (so "admin" finds "ad\u200bmin", the lookalike an operator is looking for) or as
    shown with them revealed (copied from a list: "ad⟨U+200B⟩min")."""
    needle = q.casefold()
    return any(needle in form.casefold() for form in (name, without_invisible(name), reveal(name)))


def search_text(request: web.Request) -> str:
    """A list page's `?q=` filter as typed (stripped, at most 200 characters; a NUL is a 400)."""
    return forms.text({"q": request.query.get("q", "")[:200]}, "q")


def top_rows(rows: Sequence[T], limit: int = PER_PAGE) -> tuple[Sequence[T], int]:
    """The first `limit` rows (already sorted, biggest first) and how many were left out."""
    return rows[:limit], max(0, len(rows) - limit)

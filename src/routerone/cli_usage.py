"""`routerone usage`: requests, tokens and cost grouped by key, account, model and/or day (UTC),
as a table or CSV, with date filters. Reads the usage table page by page (bounded memory)."""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import re
import sys
from dataclasses import dataclass
from typing import AsyncIterator, Iterable

from .cli_errors import row_id, text
from .store.base import Store, UsageQuery, UsageRecord
from .wire.admin import MAX_EXPIRES_AT
from .wire.csv_cells import safe_row

__all__ = ["add_usage_parser", "usage_rows", "GROUPS"]

GROUPS = ("key", "account", "model", "day")
UNROUTED = "(not routed)"      # the table's label for requests with no routed model (CSV: empty)
PAGE = 5000


def _date(value: str) -> float:
    """YYYY-MM-DD, an ISO date-time (UTC unless it says otherwise) or unix seconds (as GET
    /admin/usage takes them) -> unix time."""
    if re.fullmatch(r"[0-9]{1,15}(\.[0-9]{1,9})?", value):
        ts = float(value)
    else:
        try:
            d = dt.datetime.fromisoformat(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM] "
                                             "or unix seconds)") from None
        ts = (d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)).timestamp()
    if not 0 <= ts <= MAX_EXPIRES_AT:      # the bounds GET /admin/usage takes (wire/admin.py)
        raise argparse.ArgumentTypeError(f"{value!r} is outside 1970-01-01 .. 9999-12-31T23:59:59Z "
                                         f"(unix seconds 0 .. {MAX_EXPIRES_AT:.0f})")
    return ts


def _groups(value: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in value.split(",") if p.strip())
    bad = [p for p in parts if p not in GROUPS]
    if bad or not parts:
        raise argparse.ArgumentTypeError(f"{value!r}: group by one or more of {', '.join(GROUPS)}")
    if len(set(parts)) < len(parts):       # `day,day` printed the same column twice
        raise argparse.ArgumentTypeError(f"{value!r}: name each group once")
    return parts


def add_usage_parser(sub: argparse._SubParsersAction, func) -> None:
    u = sub.add_parser("usage", help="requests, tokens and cost by key, account, model or day")
    u.add_argument("--by", type=_groups, default=("day", "model"),
                   help="comma-separated: key, account, model, day (default: day,model)")
    u.add_argument("--since", type=_date, help="from this UTC date/time (inclusive)")
    u.add_argument("--until", type=_date, help="before this UTC date/time (exclusive)")
    u.add_argument("--account", type=row_id, help="only this account id")
    u.add_argument("--key", type=row_id, help="only this key id")
    u.add_argument("--model", type=text, help="routed model name")
    u.add_argument("--format", choices=("table", "csv"), default="table", help="default: table")
    u.set_defaults(func=func)


async def _records(store: Store, q: UsageQuery) -> AsyncIterator[UsageRecord]:
    """Every matching record, newest first, PAGE at a time. A page boundary never splits rows with
    the same timestamp: the boundary timestamp's rows are re-read with the next page."""
    until, n = q.until, PAGE
    while True:
        page = await store.query_usage(UsageQuery(q.account_id, q.key_id, q.model, q.since, until, n))
        recs = page.records
        if len(recs) < n:
            for r in recs:
                yield r
            return
        t = recs[-1].created_at
        keep = [r for r in recs if r.created_at > t]
        if not keep:          # a whole page with one timestamp: read bigger pages
            n *= 2
            continue
        for r in keep:
            yield r
        until = math.nextafter(t, math.inf)


@dataclass
class _Sum:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0


def _key(r: UsageRecord, by: Iterable[str]) -> tuple:
    vals = {"key": r.key_id, "account": r.account_id, "model": r.routed_model,
            "day": dt.datetime.fromtimestamp(r.created_at, dt.timezone.utc).date().isoformat()}
    return tuple(vals[b] for b in by)


async def usage_rows(store: Store, q: UsageQuery, by: tuple[str, ...]) -> list[list]:
    sums: dict[tuple, _Sum] = {}
    async for r in _records(store, q):
        s = sums.setdefault(_key(r, by), _Sum())
        s.requests += 1
        s.prompt_tokens += r.prompt_tokens
        s.completion_tokens += r.completion_tokens
        s.cost_micros += r.cost_micros
    return [[*k, s.requests, s.prompt_tokens, s.completion_tokens, s.cost_micros]
            for k, s in sorted(sums.items(), key=lambda kv: tuple(str(x) for x in kv[0]))]


def print_usage(rows: list[list], by: tuple[str, ...], fmt: str) -> None:
    header = [*by, "requests", "prompt_tokens", "completion_tokens", "cost_usd"]
    out = [[*r[:-1], f"{r[-1] / 1e6:.6f}"] for r in rows]
    if fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(header)
        w.writerows(safe_row(r) for r in out)
        return
    total = sum(r[-1] for r in rows)
    if "model" in by:     # refused before a model was chosen (every provider down, an unknown model)
        i = by.index("model")
        out = [[*r[:i], r[i] or UNROUTED, *r[i + 1:]] for r in out]
    body = [header, *([str(c) for c in r] for r in out)]
    widths = [max(len(row[i]) for row in body) for i in range(len(header))]
    for row in body:
        print("  ".join(c.ljust(w) if i < len(by) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    print(f"total: {sum(r[len(by)] for r in rows)} requests, ${total / 1e6:.6f}")

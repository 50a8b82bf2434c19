"""Activity: usage rolled up per hour or day into chart series, per-model and per-key tables and
totals. Pure functions over the store's `usage_summary` rows (summed per bucket and model, and per
key, in the database)."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..store.base import UsageBucket, UsageQuery, UsageSummary

__all__ = ["RANGES", "Activity", "build_activity", "pick_range", "RollupCache"]

HOUR_S, DAY_S = 3_600, 86_400
# name -> (span, default bucket)
RANGES: dict[str, tuple[int, int]] = {"24h": (DAY_S, HOUR_S), "7d": (7 * DAY_S, HOUR_S),
                                      "30d": (30 * DAY_S, DAY_S), "90d": (90 * DAY_S, DAY_S)}


@dataclass(slots=True)
class Row:
    name: str
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0

    def add(self, b: UsageBucket) -> None:
        self.requests += b.requests
        self.errors += b.errors
        self.prompt_tokens += b.prompt_tokens
        self.completion_tokens += b.completion_tokens
        self.cost_micros += b.cost_micros

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Activity:
    bucket_s: int
    times: list[float] = field(default_factory=list)       # bucket starts (unix s, UTC)
    cost_usd: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    by_model: list[Row] = field(default_factory=list)
    by_key: list[Row] = field(default_factory=list)
    totals: Row = field(default_factory=lambda: Row("total"))

    def chart_data(self) -> dict:
        return {"bucket_s": self.bucket_s, "times": self.times, "cost_usd": self.cost_usd,
                "requests": self.requests, "tokens": self.tokens}


def pick_range(name: str | None, by: str | None, now: float) -> tuple[str, float, float, int]:
    """(range name, since, until, bucket_s) from the query string; unknown values -> defaults."""
    name = name if name in RANGES else "7d"
    span, bucket_s = RANGES[name]
    if by == "hour" and span <= 7 * DAY_S:     # hourly points only up to a week (168 per series)
        bucket_s = HOUR_S
    elif by == "day":
        bucket_s = DAY_S
    until = (now // bucket_s + 1) * bucket_s          # the end of the current bucket
    return name, until - span - (bucket_s if span % bucket_s else 0), until, bucket_s


def build_activity(buckets: Iterable[UsageBucket], *, since: float, until: float, bucket_s: int,
                   key_names: Mapping[int, str], key_buckets: Iterable[UsageBucket] | None = None) -> Activity:
    """Series, by-model rows and totals from `buckets`; by-key rows from `key_buckets` when given
    (usage_summary's per-key sums), else from `buckets` (usage_rollup's rows)."""
    act = Activity(bucket_s)
    first = since // bucket_s * bucket_s
    slots = int((until - first) // bucket_s)
    act.times = [first + i * bucket_s for i in range(slots)]
    cost, reqs, toks = [0] * slots, [0] * slots, [0] * slots
    models: dict[str, Row] = {}
    keys: dict[int, Row] = {}
    for b in buckets:
        i = int((b.bucket_start - first) // bucket_s)
        if 0 <= i < slots:
            cost[i] += b.cost_micros
            reqs[i] += b.requests
            toks[i] += b.prompt_tokens + b.completion_tokens
        models.setdefault(b.routed_model, Row(b.routed_model)).add(b)
        if key_buckets is None:
            keys.setdefault(b.key_id, Row(key_names.get(b.key_id) or f"key {b.key_id}")).add(b)
        act.totals.add(b)
    for b in key_buckets or ():
        keys.setdefault(b.key_id, Row(key_names.get(b.key_id) or f"key {b.key_id}")).add(b)
    act.cost_usd = [c / 1e6 for c in cost]
    act.requests, act.tokens = reqs, toks
    act.by_model = sorted(models.values(), key=lambda r: (-r.cost_micros, -r.requests, r.name))
    act.by_key = sorted(keys.values(), key=lambda r: (-r.cost_micros, -r.requests, r.name))
    return act


class RollupCache:
    """The Activity page's sums (Store.usage_summary), with its closed part remembered.

    A range [since, until) splits at `closed_until` (a bucket boundary at least `lag_s` in the past):
    the open part is always read live; the closed part's roll-up is kept (in a small LRU, in this
    process) together with the number of usage rows it covered, and reused only while
    `store.usage_count` over the same range still says that number. Usage rows are only ever
    inserted, so an equal count means the same rows: a late row (written after its range closed)
    changes the count and the part is read again. Cost when it hits: an index-only COUNT over the
    closed range plus the open part's roll-up, instead of aggregating every row."""

    def __init__(self, store, *, lag_s: float = 300.0, max_entries: int = 16, max_rows: int = 10_000) -> None:
        self.store = store
        self.lag_s = lag_s
        self.max_entries = max_entries
        self.max_rows = max_rows
        self._entries: "OrderedDict[tuple, tuple[int, UsageSummary]]" = OrderedDict()
        self.hits = self.misses = 0

    async def rollup(self, account_id: int | None, since: float, until: float, bucket_s: int,
                     now: float) -> UsageSummary:
        closed_until = max(since, min(until, (now - self.lag_s) // bucket_s * bucket_s))
        out = UsageSummary()
        if closed_until > since:
            closed = UsageQuery(account_id=account_id, since=since, until=closed_until)
            key = (account_id, bucket_s, since, closed_until)
            count = await self.store.usage_count(closed)
            hit = self._entries.get(key)
            if hit is not None and hit[0] == count:
                self.hits += 1
                self._entries.move_to_end(key)
                out.extend(hit[1])
            else:
                self.misses += 1
                rows = await self.store.usage_summary(closed, bucket_s)
                if rows.rows <= self.max_rows:
                    self._entries[key] = (count, rows)
                    while len(self._entries) > self.max_entries:
                        self._entries.popitem(last=False)
                out.extend(rows)
        if until > closed_until:
            out.extend(await self.store.usage_summary(
                UsageQuery(account_id=account_id, since=closed_until, until=until), bucket_s))
        return out

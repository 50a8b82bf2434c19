"""`routerone usage`: grouped by key, account, model, day; table or CSV; date filters; paging that
never loses or double-counts rows sharing a timestamp."""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

from routerone import cli_usage
from routerone.store.base import UsageQuery, UsageRecord
from routerone.store.sqlite import SQLiteStore

SRC = str(Path(__file__).resolve().parents[2] / "src")
DAY1 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc).timestamp()
DAY2 = dt.datetime(2026, 3, 2, 9, tzinfo=dt.timezone.utc).timestamp()


def rec(i: int, key: int, account: int, model: str, t: float, cost: int) -> UsageRecord:
    return UsageRecord(f"r{i}", key, account, model, model, "p", prompt_tokens=10, completion_tokens=5,
                       cost_micros=cost, created_at=t)


RECORDS = [rec(1, 1, 1, "gpt-4o", DAY1, 100), rec(2, 1, 1, "gpt-4o", DAY1 + 1, 200),
           rec(3, 2, 1, "llama-3-8b", DAY1 + 2, 0), rec(4, 3, 2, "gpt-4o", DAY2, 1_500_000)]


def seed(path: Path, records) -> None:
    async def go():
        s = SQLiteStore(str(path))
        await s.migrate()
        await s.insert_usage(records)
        await s.close()
    asyncio.run(go())


def run(db: Path, *args: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("ROUTERONE_")}
    e["PYTHONPATH"] = SRC
    return subprocess.run([sys.executable, "-m", "routerone", "usage", "--database-url", f"sqlite:///{db}", *args],
                          capture_output=True, text=True, env=e, timeout=60)


def test_usage_csv_by_day_and_model_with_date_filters(tmp_path):
    db = tmp_path / "r.db"
    seed(db, RECORDS)
    out = run(db, "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows == [["day", "model", "requests", "prompt_tokens", "completion_tokens", "cost_usd"],
                    ["2026-03-01", "gpt-4o", "2", "20", "10", "0.000300"],
                    ["2026-03-01", "llama-3-8b", "1", "10", "5", "0.000000"],
                    ["2026-03-02", "gpt-4o", "1", "10", "5", "1.500000"]]
    out = run(db, "--by", "account", "--since", "2026-03-02", "--format", "csv")
    assert list(csv.reader(io.StringIO(out.stdout)))[1:] == [["2", "1", "10", "5", "1.500000"]]
    out = run(db, "--by", "key", "--until", "2026-03-02", "--format", "csv")
    assert list(csv.reader(io.StringIO(out.stdout)))[1:] == [["1", "2", "20", "10", "0.000300"],
                                                             ["2", "1", "10", "5", "0.000000"]]


def test_usage_table_has_a_total(tmp_path):
    db = tmp_path / "r.db"
    seed(db, RECORDS)
    out = run(db, "--by", "model", "--account", "1")
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["model", "requests", "prompt_tokens", "completion_tokens", "cost_usd"]
    assert lines[1].split() == ["gpt-4o", "2", "20", "10", "0.000300"]
    assert lines[-1] == "total: 3 requests, $0.000300"


def test_paging_keeps_rows_that_share_a_timestamp(tmp_path, monkeypatch):
    monkeypatch.setattr(cli_usage, "PAGE", 3)
    many = [rec(i, 1, 1, "m", DAY1 + (i // 4), 1) for i in range(23)]     # runs of 4 rows per timestamp
    seed(tmp_path / "r.db", many)

    async def go():
        s = SQLiteStore(str(tmp_path / "r.db"))
        await s.migrate()
        try:
            return await cli_usage.usage_rows(s, UsageQuery(), ("model",))
        finally:
            await s.close()
    assert asyncio.run(go()) == [["m", 23, 230, 115, 23]]


def test_requests_never_routed_have_a_label_in_the_table(tmp_path):
    """Requests refused before any model was chosen (every provider down, an unknown model) have no
    routed model: the table showed a blank first column, read as a misaligned row; CSV keeps it empty."""
    db = tmp_path / "r.db"
    unrouted = UsageRecord("r9", 1, 1, "auto", "", "", created_at=DAY1 + 3)
    seed(db, [*RECORDS, unrouted])
    lines = run(db, "--by", "model", "--account", "1").stdout.splitlines()
    assert lines[1].split() == ["(not", "routed)", "1", "0", "0", "0.000000"], lines
    assert lines[-1] == "total: 4 requests, $0.000300"
    out = run(db, "--by", "model", "--account", "1", "--format", "csv")
    assert list(csv.reader(io.StringIO(out.stdout)))[1] == ["", "1", "0", "0", "0.000000"]

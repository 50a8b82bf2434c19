"""Issue 11, items 1 and 2 (and 10's database part, see test_money_db_down.py): long prompts are
counted, not a 500; a prompt larger than the model's context is a 400 before any upstream call; a
stream that relayed >= 1M characters is still settled with its usage row; a bad upstream reply
(NUL in an error code, absurd or negative usage) never stops usage recording, on SQLite and on
PostgreSQL. Real gateway on a real socket, the official `openai` SDK, a misbehaving fake upstream.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx2
import openai
import orjson
import pytest
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import pg_database  # noqa: E402
from money_procs import BIG, OUT_MICROS, SMALL, MisbehavingUpstream, write_money_catalog  # noqa: E402

from routerone.settings import ProviderSettings, Settings  # noqa: E402
from routerone.store.base import UsageQuery  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402

LONG_PROMPT = "hello world " * 90_000          # 1.08 MB, ~180k tokens: above bpe-openai's 1M-char limit


@pytest.fixture(scope="module")
def upstream():
    with MisbehavingUpstream() as up:
        yield up


def _gateway(tmp_path: Path, upstream: MisbehavingUpstream, database_url: str, **kw) -> Gateway:
    return Gateway(Settings(database_url=database_url, demo="off",
                            catalog_path=str(write_money_catalog(tmp_path / "catalog.toml")),
                            providers={"openai": ProviderSettings(api_key="sk-up", base_url=upstream.base_url)},
                            usage_flush_interval_s=0.05, **kw))


def _books(gw: Gateway, account_id: int) -> tuple[dict[str, int], dict[str, object]]:
    """(charge per request id from the ledger, usage row per request id); no duplicate rows."""
    store = gw.runtime.chat.d.billing.store
    charges = {e.request_id: -e.amount_micros for e in gw.call(store.ledger(account_id, 10_000)) if e.kind == "charge"}
    rows = gw.call(store.query_usage(UsageQuery(account_id=account_id, limit=10_000))).records
    ids = [r.request_id for r in rows]
    assert len(ids) == len(set(ids)), "a request has two usage rows"
    return charges, {r.request_id: r for r in rows}


def _assert_books_agree(gw: Gateway, account_id: int, expected_rows: int) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while len(_books(gw, account_id)[1]) < expected_rows and time.monotonic() < deadline:
        time.sleep(0.05)
    charges, rows = _books(gw, account_id)      # read again: every settle of the test is done by now
    assert len(rows) == expected_rows, f"{len(rows)} usage rows for {expected_rows} requests"
    for rid, charge in charges.items():
        assert rid in rows, f"charged request {rid} has no usage row"
        assert rows[rid].cost_micros == charge
    assert all(r.cost_micros == charges.get(rid, 0) for rid, r in rows.items())
    acc = gw.account(account_id)
    assert acc["reserved_micros"] == 0
    return rows


# -- item 1: any size ------------------------------------------------------------------------------
def test_long_prompts_are_counted_and_too_long_is_a_400_before_any_upstream_call(tmp_path: Path, upstream) -> None:
    with _gateway(tmp_path, upstream, f"sqlite:///{tmp_path / 'r1.db'}") as gw:
        key, account_id = gw.new_key()
        client = OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=60)
        calls = upstream.calls
        with pytest.raises(openai.BadRequestError) as ei:
            client.chat.completions.create(model=SMALL, messages=[{"role": "user", "content": LONG_PROMPT}],
                                           max_tokens=5)
        assert ei.value.status_code == 400
        assert ei.value.body["code"] == "context_length_exceeded" and ei.value.body["param"] == "messages"
        assert ei.value.body["type"] == "invalid_request_error"
        assert upstream.calls == calls, "the upstream was called for a prompt that cannot fit"

        r = client.chat.completions.create(model=BIG, messages=[{"role": "user", "content": LONG_PROMPT}], max_tokens=5)
        assert r.model == BIG and r.choices[0].message.content
        # auto: the models too small are not candidates
        r = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": LONG_PROMPT}],
                                           max_tokens=5)
        assert gw.runtime.catalog.resolve(r.model).context_window >= 180_000, r.model
        # a few MB without a single space is bounded by its bytes (a 400 here, never a 500)
        with pytest.raises(openai.BadRequestError) as ei:
            client.chat.completions.create(model=BIG, messages=[{"role": "user", "content": "x" * 3_000_000}],
                                           max_tokens=5)
        assert ei.value.body["code"] == "context_length_exceeded"
        _assert_books_agree(gw, account_id, 2)


def _sse_events(resp: httpx2.Response) -> list[bytes]:
    return [ev[6:].encode() for ev in resp.text.split("\n\n") if ev.startswith("data: ")]


def test_a_stream_of_over_a_million_characters_that_breaks_is_settled_with_its_row(tmp_path: Path, upstream) -> None:
    with _gateway(tmp_path, upstream, f"sqlite:///{tmp_path / 'r1.db'}") as gw:
        key, account_id = gw.new_key()
        with httpx2.Client(timeout=120) as http:
            resp = http.post(gw.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                             json={"model": SMALL, "stream": True, "max_tokens": 100,
                                   "messages": [{"role": "user", "content": "long [[big:1100000]] [[cut:1]]"}]})
        events = _sse_events(resp)
        text = "".join((orjson.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                       for e in events if e != b"[DONE]" and b'"choices"' in e)
        assert len(text) >= 1_100_000
        assert orjson.loads(events[-1])["error"]["code"] == "upstream_unavailable"
        rows = _assert_books_agree(gw, account_id, 1)
        [row] = rows.values()
        # ~183k tokens relayed: the charge is the whole hold (100 tokens), the rest is uncharged
        assert row.completion_tokens > 150_000 and row.cost_micros == 100 * OUT_MICROS

        # the same when the client goes away: the upstream is drained, then settled
        with httpx2.Client(timeout=60) as http:
            with http.stream("POST", gw.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                             json={"model": SMALL, "stream": True, "max_tokens": 100,
                                   "messages": [{"role": "user", "content": "long [[big:1500000]] [[cut:1]]"}]}) as r:
                next(r.iter_bytes())
        rows = _assert_books_agree(gw, account_id, 2)
        assert sorted(r.completion_tokens > 240_000 for r in rows.values()) == [False, True]
        assert [r.cost_micros for r in rows.values()] == [100 * OUT_MICROS] * 2


# -- item 2: bad upstream values never stop usage recording -----------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'r1.db'}"
    else:
        with pg_database() as url:
            yield url


def test_bad_upstream_replies_never_stop_usage_recording(tmp_path: Path, upstream, database_url: str) -> None:
    with _gateway(tmp_path, upstream, database_url) as gw:
        key, account_id = gw.new_key()
        client = OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=60)

        def ask(content: str, **kw):
            return client.chat.completions.create(model=SMALL, messages=[{"role": "user", "content": content}],
                                                  max_tokens=5, **kw)
        with pytest.raises(openai.BadRequestError):
            ask("[[errnul:400]]")                          # an error code with NUL and escapes
        with pytest.raises(openai.APIStatusError) as ei:
            ask("[[errnul:500]]")                          # retried, then failed; fallbacks name the code
        assert ei.value.status_code >= 500
        # Implausible counts (3e9, -5, 1e300, "lots") are replaced by Router One's own count of what
        # was relayed ("ok " * 5), and flagged. Session 7 changed this on purpose: a negative count
        # billed 0 for text relayed, an absurd one the whole hold (both clamped).
        huge = ask("[[usage:3000000000]]")                 # 3e9 completion tokens reported
        own = huge.usage.completion_tokens
        assert 0 < own < 100
        negative = ask("[[usage:5]] [[neg:1]]")            # -5 completion tokens reported
        assert negative.usage.completion_tokens == own
        stream = list(ask("[[usage:3000000000]]", stream=True, stream_options={"include_usage": True}))
        assert 0 < stream[-1].usage.completion_tokens < 100
        garbage = ask("[[badusage:1]]")                    # "lots", 1e300, a details string
        assert garbage.usage.completion_tokens == own and 0 < garbage.usage.prompt_tokens < 100
        for i in range(20):
            ask(f"normal {i}")
        rows = _assert_books_agree(gw, account_id, 26)
        by_status = sorted(r.status for r in rows.values())
        assert by_status[:24] == [200] * 24 and by_status[24] == 400 and by_status[25] >= 500
        # charged for Router One's count, at most the hold (5 tokens): never 0, never more
        counted = [r for r in rows.values() if r.status == 200 and (r.prompt_tokens, r.completion_tokens) != (7, 5)]
        assert len(counted) == 4, counted                  # the upstream says (7, 5) for the 20 normal ones
        assert all(0 < r.cost_micros == min(r.completion_tokens * OUT_MICROS, 5 * OUT_MICROS) for r in counted)
        assert all("\x00" not in (r.error_type or "") + (r.fallbacks or "") for r in rows.values())
        billing = gw.runtime.chat.d.billing
        assert billing.usage_flagged >= 3 and billing.uncharged_micros > 0
        metrics = httpx2.get(gw.url + "/metrics").text
        assert "routerone_billing_usage_flagged" in metrics and "routerone_usage_rejects" in metrics

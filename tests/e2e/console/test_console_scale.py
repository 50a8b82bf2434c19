"""The console at scale, in a real browser: 1,000 accounts, 1,000 keys in one account, 2,000 models
from a self-hosted box and 100,000
usage rows over 30 days (made through the admin API and the store's bulk `insert_usage`, the
path the usage sink writes by). Every operator and user page loads in bounded time and renders a
bounded number of rows (paged), and paging, filters and sorting still work. Prints each page's load
time and size (`-s` to see them)."""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import pytest

from routerone.console.security import hash_password
from routerone.console.web import CONSOLE
from routerone.store.base import UsageRecord
from routerone.testing.fake_box import FakeBox

from conftest import LAPTOP, OPERATOR_EMAIL, OPERATOR_PASSWORD, PHONE, ConsoleGateway, sign_in

N_ACCOUNTS, N_KEYS, N_ROWS, N_MODELS, N_USERS, N_LEDGER = 1_000, 1_000, 100_000, 2_000, 1_000, 260
MODELS = ["gpt-4o", "gpt-4o-mini", "o3-mini", "gpt-4.1", "gpt-4.1-mini"]
USER_EMAIL, PASSWORD = "big@scale.test", "scale-password-1"
MAX_LOAD_S = 3.0            # per page, on a busy 2-core machine (measured well under 1 s when idle)
MAX_ROWS = 100              # no table on any page renders more rows than this


@pytest.fixture
def box():
    """A self-hosted box listing as many models as discovery keeps (2,000)."""
    b = FakeBox([f"box-model-{i:04d}" for i in range(N_MODELS)]).start()
    yield b
    b.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def big_gateway(request, gateway, fake_upstream, box):
    """A gateway with an operator, on SQLite or on a fresh PostgreSQL database. The database is made
    and dropped from another thread: Playwright's sync API keeps an event loop running in this one."""
    providers = {"openai": (fake_upstream.base_url, fake_upstream.api_key), "box": (box.base_url, None)}
    if request.param == "sqlite":
        yield gateway(providers=providers)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))      # tests/e2e, for its PostgreSQL helper
    from billing_procs import pg_database
    with ThreadPoolExecutor(1) as pool:
        db = pg_database()
        url = pool.submit(db.__enter__).result()
        try:
            yield gateway(database_url=url, providers=providers)      # dropped WITH (FORCE) before the gateway stops
        finally:
            pool.submit(db.__exit__, None, None, None).result()


@pytest.fixture
def big(big_gateway):
    gw = big_gateway
    cg = ConsoleGateway(gw)
    admin_account = gw.admin("GET", "/admin/accounts")["data"][0]["id"]
    cg.create_user(OPERATOR_EMAIL, OPERATOR_PASSWORD, account_id=admin_account, role="operator")
    started = time.monotonic()
    accounts = [gw.admin("POST", "/admin/accounts", {"name": f"customer {i:04d}"})["data"]["id"]
                for i in range(N_ACCOUNTS - 1)]
    acc = gw.admin("POST", "/admin/accounts", {"name": "big", "balance_micros": 50_000_000})["data"]["id"]
    keys = [gw.admin("POST", "/admin/keys", {"account_id": acc, "name": f"key {i:04d}"})["data"]["id"]
            for i in range(N_KEYS)]
    cg.create_user(USER_EMAIL, PASSWORD, account_id=acc)
    store = gw.app[CONSOLE].store                                        # type: ignore[index]
    for i in range(N_LEDGER):                   # a ledger longer than a page
        gw.call(store.adjust_balance(acc, 1, kind="credit", note=f"top-up {i:04d}", actor="test"))
    # 1,000 console users (one password hash for all: argon2id per user would be minutes)
    one_hash = gw.call(hash_password("scale-users-password"))
    for i in range(N_USERS):
        gw.call(store.create_console_user(f"user{i:04d}@scale.test", one_hash, account_id=acc))
    rnd = random.Random(7)
    now = time.time()
    batch: list[UsageRecord] = []
    for i in range(N_ROWS):
        status = 200 if i % 20 else 429
        batch.append(UsageRecord(
            request_id=f"scale-{i}", key_id=keys[i % N_KEYS], account_id=acc, requested_model="auto",
            routed_model=MODELS[i % len(MODELS)], provider="openai", prompt_tokens=rnd.randrange(10, 2000),
            completion_tokens=rnd.randrange(1, 500), cost_micros=rnd.randrange(1, 5000), latency_ms=123.0,
            status=status, error_type=None if status == 200 else "rate_limit_exceeded",
            created_at=now - 60 - (N_ROWS - i) * (30 * 86_400 / N_ROWS), route_reason="balanced: cheapest good"))
        if len(batch) == 5_000:
            gw.call(store.insert_usage(batch), timeout=120)
            batch = []
    print(f"\n{gw.settings.database_url.split(':')[0]}: seeded {N_ACCOUNTS} accounts, {N_KEYS} keys, "
          f"{N_ROWS} usage rows in {time.monotonic() - started:.1f} s")
    return cg, acc, accounts, keys


def _load(page, url: str, timings: dict, problems: list[str]) -> str:
    t0 = time.perf_counter()
    resp = page.goto(url)
    page.wait_for_load_state("load")
    elapsed = time.perf_counter() - t0
    html = page.content()
    timings[url.split("/console", 1)[1]] = (elapsed, len(html))
    assert resp is not None and resp.status == 200, (url, resp and resp.status)
    for what in ("main tbody", "main select", "main ul"):
        for el in page.locator(what).all():
            n = el.locator("tr, option, li").count()
            if n > MAX_ROWS:
                problems.append(f"{url.split('/console', 1)[1]}: {n} rows in one {what}: not paged")
    return "\n".join(page.locator("main table").all_inner_texts())


def test_every_page_is_paged_and_fast_with_100k_rows_and_1000_keys_and_accounts(big, new_context) -> None:
    cg, acc, accounts, keys = big
    timings: dict[str, tuple[float, int]] = {}
    problems: list[str] = []
    user = new_context().new_page()
    sign_in(user, cg, USER_EMAIL, PASSWORD)
    user.wait_for_url(cg.url + "/")
    for path in ["/", "/keys", f"/keys?before={keys[20]}", "/credits", "/logs", "/logs?page=2000", f"/logs?key={keys[3]}",
                 "/logs?model=gpt-4o&status=429", "/activity", "/activity?range=7d&by=hour",
                 "/activity?range=90d&by=day", "/models",
                 "/models?page=40", "/playground"]:
        _load(user, cg.url + path, timings, problems)
    # paging and filters still find the right rows
    _load(user, f"{cg.url}/logs?key={keys[3]}&page=2", timings, problems)
    assert set(user.locator("table.logs td[data-label=Key]").all_inner_texts()) == {"key 0003"}
    _load(user, cg.url + "/logs?model=gpt-4o&status=429", timings, problems)
    routed = user.locator("table.logs td.routed").all_inner_texts()
    statuses = user.locator("table.logs td[data-label=Status] span.status").all_inner_texts()
    assert len(routed) == 50 and set(routed) == {"gpt-4o"} and set(statuses) == {"429"}, (set(routed), set(statuses))
    text = _load(user, f"{cg.url}/keys?before={keys[950]}", timings, problems)    # newest first, 50 a page
    assert "key 0949" in text and "key 0950" not in text and "key 0900" in text and "key 0899" not in text
    _load(user, cg.url + "/models?q=box-model-1234", timings, problems)                   # the filter finds one
    assert user.locator("main tbody tr").all_inner_texts()[0].startswith("box-model-1234")
    assert user.locator("main tbody tr").count() == 1
    _load(user, cg.url + "/credits", timings, problems)          # the whole ledger, page by page
    notes: list[str] = []
    for _ in range(10):
        notes += user.locator("main tbody td.note").all_inner_texts()
        older = user.locator("a[rel=next]")
        if not older.count():
            break
        older.click()
        user.wait_for_load_state("load")
    assert notes[0] == f"top-up {N_LEDGER - 1:04d}" and "top-up 0000" in notes, notes[-3:]
    assert notes.count("top-up 0000") == 1 and len([n for n in notes if n.startswith("top-up")]) == N_LEDGER
    user.goto(cg.url + "/playground")             # 2,000 models: a name with suggestions, not a select
    user.fill("input[name=model]", "box-model-1999")
    user.fill("textarea[name=prompt]", "hello")
    user.click("text=Send")
    user.wait_for_selector("#answer-latency:not(:empty)")
    assert user.inner_text("#answer-model") == "box-model-1999", user.inner_text("#answer-text")
    t0 = time.perf_counter()
    csv_text = user.request.get(cg.url + "/logs.csv").text()
    timings["/logs.csv"] = (time.perf_counter() - t0, len(csv_text))

    op = new_context().new_page()
    sign_in(op, cg, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    op.wait_for_url(cg.url + "/")
    for path in ["/operator/accounts", "/operator/accounts?page=20", "/operator/users", "/operator/users?page=21",
                 "/operator/providers",
                 "/operator/routing", "/operator/activity", "/operator/activity?range=90d&by=day",
                 f"/operator/accounts/{acc}"]:
        _load(op, cg.url + path, timings, problems)
    text = _load(op, cg.url + "/operator/accounts?page=2", timings, problems)     # by id, 50 a page
    assert "customer 0048" not in text and "customer 0049" in text and "customer 0098" in text
    assert "customer 0099" not in text
    _load(op, cg.url + "/operator/accounts?sort=balance", timings, problems)
    assert op.locator("main tbody tr").first.locator("td").nth(1).inner_text() == "big"    # the only funded one
    text = _load(op, cg.url + "/operator/accounts?q=customer+0777", timings, problems)
    assert "customer 0777" in text and "customer 0778" not in text

    for bad in ("/operator/accounts?q=%00", "/operator/accounts?page=0", "/models?page=x", "/keys?before=%C2%B2"):
        assert op.request.get(cg.url + bad).status == 400, bad        # a clear 400 page, never a 500
    assert op.request.get(cg.url + "/operator/accounts?page=99999").ok  # past the end: the last page

    for who, path in ((user, f"/keys?before={keys[950]}"), (user, "/credits?before=100"), (op, "/operator/accounts?page=2"),
                      (op, "/operator/users?page=2"), (op, "/models?page=2"), (op, "/operator/providers?page=2")):
        who.set_viewport_size(PHONE)                              # a pager fits a phone
        who.goto(cg.url + path)
        assert who.locator("nav.pager").count() == 1, path
        wide = who.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= PHONE["width"], f"{path} is {wide}px wide on a phone"
        who.set_viewport_size(LAPTOP)

    print(f"\npage load times (Chromium, {cg.gw.settings.database_url.split(':')[0]}, 100k usage rows, "
          "1,000 keys, 1,000 accounts, 1,000 users, 2,000 models; "
          "/activity?range=7d&by=hour is /activity again, its closed part from the roll-up cache):")
    for path, (s, size) in timings.items():
        print(f"  {s * 1000:7.0f} ms  {size / 1024:7.1f} KiB  {path}")
    assert not problems, problems
    slow = {p: round(s, 2) for p, (s, _) in timings.items() if s > MAX_LOAD_S}
    assert not slow, f"pages slower than {MAX_LOAD_S} s: {slow}"

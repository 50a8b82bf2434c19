"""The offline demo provider: in process (no /demo HTTP surface), bounded replies, and off as soon as
any provider is configured, saying so at start (issue 11 item 6, issue 12 item 3)."""
from __future__ import annotations

import logging
import re
import urllib.error
import urllib.request

import openai
import pytest

from routerone.providers.demo import DEMO_MAX_REPLY_TOKENS, DEMO_NOTICE
from routerone.settings import ProviderSettings, Settings
from routerone.testing.harness import Gateway

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def demo_gw(tmp_path):
    with Gateway(Settings(database_url=f"sqlite:///{tmp_path / 'demo.sqlite'}", demo="auto")) as gw:
        yield gw


def _status(url: str, method: str = "GET", body: bytes | None = None) -> int:
    req = urllib.request.Request(url, method=method, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_quickstart_works_offline_plain_and_streamed(demo_gw, make_openai_client):
    client = make_openai_client(demo_gw)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    reply = raw.parse()
    assert raw.headers["x-routerone-provider"] == "demo"
    assert reply.model in ("demo-small", "demo-large")
    assert reply.choices[0].message.content.startswith(" " + DEMO_NOTICE)
    assert reply.usage.model_extra["cost"] > 0
    chunks = list(client.chat.completions.create(model="demo-small", stream=True, messages=HELLO,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert DEMO_NOTICE in text
    assert chunks[-1].usage.completion_tokens > 0 and chunks[-1].usage.model_extra["cost"] > 0


def test_no_demo_http_surface(demo_gw):
    """Before: the test fake was mounted at /demo/v1 with no auth, fault injection included."""
    body = b'{"model": "x", "messages": [{"role": "user", "content": "hi"}]}'
    assert _status(demo_gw.url + "/demo/v1/chat/completions", "POST", body) == 404
    assert _status(demo_gw.url + "/demo/v1/_control/faults", "POST", b'{"faults": [{"status": 500}]}') == 404
    assert _status(demo_gw.url + "/demo/v1/models") == 404


def test_demo_reply_is_bounded_whatever_max_tokens(demo_gw, make_openai_client):
    client = make_openai_client(demo_gw)
    reply = client.chat.completions.create(model="demo-large", messages=HELLO, max_tokens=8000)
    assert reply.usage.completion_tokens <= DEMO_MAX_REPLY_TOKENS
    assert len(reply.choices[0].message.content) < 2000
    chunks = list(client.chat.completions.create(model="demo-large", messages=HELLO, max_tokens=8000, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens <= DEMO_MAX_REPLY_TOKENS
    short = client.chat.completions.create(model="demo-small", messages=HELLO, max_tokens=3)
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"


def test_demo_tools_and_json(demo_gw, make_openai_client):
    client = make_openai_client(demo_gw)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    r = client.chat.completions.create(model="demo-small", messages=HELLO, tools=tools)
    assert r.choices[0].finish_reason == "tool_calls"
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    r = client.chat.completions.create(model="demo-small", messages=HELLO, response_format={"type": "json_object"})
    assert r.choices[0].message.content == '{"answer": "demo"}'


def test_demo_off_once_a_keyless_provider_is_configured(tmp_path, fake_upstream, make_openai_client, caplog):
    caplog.set_level(logging.INFO, logger="routerone")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'vllm.sqlite'}", demo="auto",
                        providers={"vllm": ProviderSettings(base_url=fake_upstream.base_url)})
    with Gateway(settings) as gw:
        client = make_openai_client(gw)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="demo-small", messages=HELLO)
        ids = [m.id for m in client.models.list().data]
        assert not any(i.startswith("demo-") for i in ids)
        try:
            raw = client.chat.completions.with_raw_response.create(model="auto", messages=HELLO)
            assert raw.headers["x-routerone-provider"] != "demo"
        except openai.BadRequestError as exc:    # no model of the keyless box is in the catalog: not the demo
            assert exc.body["code"] == "model_capability_mismatch"
        except openai.InternalServerError as exc:  # routed to the box (the test fake wants a key): not the demo
            assert exc.body["code"] == "upstream_auth_failed"     # which provider: the operator's log says
            assert any("vllm" in r.getMessage() and "credentials" in r.getMessage() for r in caplog.records)
    said = [r.getMessage() for r in caplog.records if "demo provider" in r.getMessage()]
    assert said and "off" in said[0] and "vllm" in said[0]


def test_demo_on_says_so_at_start(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="routerone")
    with Gateway(Settings(database_url=f"sqlite:///{tmp_path / 'd.sqlite'}", demo="auto")):
        pass
    said = [r.getMessage() for r in caplog.records if "demo provider" in r.getMessage()]
    assert said and said[0].startswith("demo provider on")


def test_demo_forced_on_next_to_a_provider_is_never_chosen_by_auto(gateway, make_openai_client):
    gw = gateway(demo="on")           # the fake upstream as "openai", and the demo forced on
    client = make_openai_client(gw)
    for _ in range(5):
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=HELLO)
        assert raw.headers["x-routerone-provider"] == "openai"
    named = client.chat.completions.create(model="demo-small", messages=HELLO)   # still there when named
    assert DEMO_NOTICE in named.choices[0].message.content


def test_readme_quickstart_on_a_real_serve_process(tmp_path):
    """`routerone serve` with nothing configured: the printed key, then the README's curl and SDK calls."""
    import os
    import re
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx2
    from openai import OpenAI

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"), ROUTERONE_PORT=str(port),
               ROUTERONE_DATABASE_URL=f"sqlite:///{tmp_path / 'r.db'}")
    proc = subprocess.Popen([sys.executable, "-m", "routerone", "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        lines = []
        while not any("listening" in ln for ln in lines):
            lines.append(proc.stdout.readline())
        key = re.search(r"(sk-ro-\S+)", "".join(lines)).group(1)
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx2.post(base + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                json={"model": "auto", "messages": HELLO}, timeout=10)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["cost"] > 0 and r.headers["x-routerone-provider"] == "demo"
        client = OpenAI(base_url=base, api_key=key, max_retries=0)
        chunks = list(client.chat.completions.create(model="demo-small", stream=True, messages=HELLO,
                                                     stream_options={"include_usage": True}))
        assert chunks[-1].usage.model_extra["cost"] > 0
        assert httpx2.post(f"http://127.0.0.1:{port}/demo/v1/chat/completions", json={}).status_code == 404
    finally:
        proc.terminate()
        proc.wait(30)


def test_auto_shows_the_demo_models_quality_on_the_0_to_1_scale(demo_gw, make_openai_client):
    """demo-large's made-up arena score was mapped like a real model's: predicted quality 1.022 on
    "Hello" in the reason header. The demo models now have their catalog quality on every prompt."""
    client = make_openai_client(demo_gw)
    for prompt in ("Hello", "Prove that there are infinitely many primes."):
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": prompt}])
        why = raw.headers["x-routerone-reason"]
        shown = sorted(float(q) for q in re.findall(r"predicted quality (\d+\.\d+)", why))
        assert shown == [0.4, 0.8], why

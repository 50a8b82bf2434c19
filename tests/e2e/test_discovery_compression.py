"""Model discovery's `GET /v1/models` with a gzip or deflate body: one that ends before its compressed
stream does (cut after the whole list, at a flush point, so what arrived decodes and parses; or cut
mid-stream), one that does not decode, or one over MAX_LIST_BYTES once decoded, is a failed refresh:
the provider's last list is kept, the failure is reported (discover_once, `routerone models`, the
gateway's log line). Before, discovery's own aiohttp session decoded the body, and aiohttp takes a
gzip or deflate body that ends early as complete: a list cut before its end was served as the list.

Over a real socket from a raw scripted upstream (raw_upstream.py); only the upstream is faked."""
from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import openai
import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from raw_upstream import RawUpstream  # noqa: E402

from routerone.catalog import load_catalog  # noqa: E402
from routerone.providers.discovery import MAX_LIST_BYTES, discover_once  # noqa: E402
from routerone.settings import ProviderSettings, Settings  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")
KEY = "sk-box-DISCOVERY-0123456789"
BEFORE = ["llama-3-8b", "qwen2.5-7b", "phi-4"]     # the last good list
CUT = ["llama-3-8b"]                                # what a cut body lists (models "vanished")
_WBITS = {"gzip": 31, "deflate": 15, "rawdeflate": -15}


def model_list(ids: list[str], pad: int = 0) -> bytes:
    return orjson.dumps({"object": "list", "data": [{"id": i, "object": "model", "max_model_len": 8192}
                                                    for i in ids]}) + b" " * pad


def compressed(doc: bytes, coding: str) -> bytes:
    z = zlib.compressobj(6, zlib.DEFLATED, _WBITS[coding])
    return z.compress(doc) + z.flush()


def flushed_not_finished(doc: bytes, coding: str) -> bytes:
    """The whole document compressed and sync-flushed, but the compressed stream's end (final block,
    gzip trailer) never sent: it decodes to the whole document."""
    z = zlib.compressobj(6, zlib.DEFLATED, _WBITS[coding])
    return z.compress(doc) + z.flush(zlib.Z_SYNC_FLUSH)


def reply(body: bytes, coding: str | None, framing: str = "length") -> list[bytes]:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    if coding:
        head += b"Content-Encoding: " + (b"deflate" if "deflate" in coding else coding.encode()) + b"\r\n"
    if framing == "close":                       # close-delimited: the server closes (up.mode = "close")
        return [head + b"Connection: close\r\n\r\n", body]
    return [head + b"Content-Length: %d\r\n\r\n" % len(body), body]


class Box:
    """The raw upstream, answering every request with `pieces`, and what it was asked."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.requests: list[dict] = []
        self.raw = RawUpstream(self._answer)

    def _answer(self, request: dict) -> list[bytes]:
        self.requests.append(request)
        return self.pieces

    def serve(self, pieces: list[bytes], framing: str = "length") -> None:
        self.raw.mode = "close" if framing == "close" else "keep"
        self.pieces = pieces


@pytest.fixture(scope="module")
def box():
    b = Box()
    yield b
    b.raw.stop()


def provider(box: Box, **kw) -> dict:
    return {"box": ProviderSettings(api_key=KEY, base_url=box.raw.base_url, input_usd_per_mtok="1",
                                    output_usd_per_mtok="1", **kw)}


def discovered(catalog) -> list[str]:
    return [m.id for m in catalog.discovered.get("box", ())]


BAD = {   # name -> (body, coding, framing, what the failure says)
    "cut-gzip": (flushed_not_finished(model_list(CUT), "gzip"), "gzip", "length", "compressed"),
    "cut-gzip-close": (flushed_not_finished(model_list(CUT), "gzip"), "gzip", "close", "compressed"),
    "cut-deflate": (flushed_not_finished(model_list(CUT), "deflate"), "deflate", "length", "compressed"),
    "cut-rawdeflate": (flushed_not_finished(model_list(CUT), "rawdeflate"), "rawdeflate", "close", "compressed"),
    "cut-gzip-midway": (compressed(model_list(BEFORE), "gzip")[:40], "gzip", "length", "compressed"),
    "garbage-gzip": (b"this is not a gzip stream at all, just text", "gzip", "length", "does not decode"),
    "garbage-deflate": (b"\x78\x9c not deflate either", "deflate", "length", "does not decode"),
    "brotli": (b"\x0b\x02\x80{}\x03", "br", "length", "unsupported Content-Encoding"),   # not asked for
    "gzip-over-the-limit": (compressed(model_list(CUT, pad=MAX_LIST_BYTES), "gzip"), "gzip", "length",
                            f"larger than {MAX_LIST_BYTES} bytes"),
}


@pytest.mark.parametrize("bad", list(BAD))
def test_a_bad_compressed_list_is_a_failed_refresh_and_the_last_list_is_kept(box, bad, tmp_path):
    catalog = load_catalog(Settings(database_url=f"sqlite:///{tmp_path / 'r1.db'}", demo="off", providers=provider(box)))
    box.serve(reply(compressed(model_list(BEFORE), "gzip"), "gzip"))
    assert asyncio.run(discover_once(catalog)) == {}
    assert discovered(catalog) == BEFORE

    body, coding, framing, says = BAD[bad]
    box.serve(reply(body, coding, framing), framing)
    failures = asyncio.run(discover_once(catalog))
    assert set(failures) == {"box"}, f"a bad body was taken as a list: {discovered(catalog)}"
    assert says in failures["box"] and box.raw.base_url + "/models" in failures["box"], failures
    assert KEY not in failures["box"] and "\n" not in failures["box"]
    assert discovered(catalog) == BEFORE                         # the last good list is kept


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "rawdeflate", None])
@pytest.mark.parametrize("framing", ["length", "close"])
def test_a_complete_list_is_read_compressed_or_not(box, coding, framing, tmp_path):
    catalog = load_catalog(Settings(database_url=f"sqlite:///{tmp_path / 'r1.db'}", demo="off", providers=provider(box)))
    doc = model_list(BEFORE)
    body = doc if coding is None else compressed(doc, "gzip" if coding == "x-gzip" else coding)
    box.serve(reply(body, coding, framing), framing)
    box.requests.clear()
    assert asyncio.run(discover_once(catalog)) == {}
    assert discovered(catalog) == BEFORE
    assert [m.context_window for m in catalog.discovered["box"]] == [8192] * 3
    [req] = box.requests
    assert req["method"] == "GET" and req["path"] == "/v1/models"
    assert req["headers"]["accept-encoding"] == "gzip, deflate"      # what decode.py decodes
    assert req["headers"]["authorization"] == f"Bearer {KEY}"


def test_a_gzip_list_just_under_the_limit_is_read_whole(box, tmp_path):
    """1,900 long ids and padding, ~100 KB under MAX_LIST_BYTES decoded: decoded in slices, all of it kept."""
    catalog = load_catalog(Settings(database_url=f"sqlite:///{tmp_path / 'r1.db'}", demo="off", providers=provider(box)))
    long_ids = [f"org/{'m' * 230}-{i:05d}" for i in range(1900)]
    box.serve(reply(compressed(model_list(long_ids, pad=MAX_LIST_BYTES - 700_000), "gzip"), "gzip"))
    assert asyncio.run(discover_once(catalog)) == {}
    assert discovered(catalog) == long_ids


def test_the_gateway_keeps_serving_the_last_list_and_logs_one_line(box, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="routerone.discovery")
    box.serve(reply(compressed(model_list(BEFORE), "gzip"), "gzip"))
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r1.db'}", demo="off", usage_flush_interval_s=0.05,
                        providers=provider(box, discovery_interval_s=0.1))
    with Gateway(settings) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key=gw.new_key()[0], max_retries=0, timeout=30)
        assert {m.id for m in client.models.list()} == {"auto", *BEFORE}
        box.serve(reply(flushed_not_finished(model_list(CUT), "gzip"), "gzip"))
        seen = len(box.requests)
        deadline = time.monotonic() + 10
        while len(box.requests) < seen + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(box.requests) >= seen + 3                          # refreshes came, and failed
        assert {m.id for m in client.models.list()} == {"auto", *BEFORE}
    failed = [r for r in caplog.records if r.name == "routerone.discovery" and "failed" in r.getMessage()]
    assert failed, [r.getMessage() for r in caplog.records]
    for r in failed:
        msg = r.getMessage()
        assert r.levelno == logging.WARNING and r.exc_info is None and "\n" not in msg
        assert "keeping the last 3 models" in msg and "compressed" in msg and KEY not in msg


def test_routerone_models_reports_a_cut_list(box, tmp_path):
    box.serve(reply(flushed_not_finished(model_list(CUT), "gzip"), "gzip"))
    cfg = tmp_path / "r1.toml"
    cfg.write_text(f'[providers.box]\nbase_url = "{box.raw.base_url}"\n'
                   'input_usd_per_mtok = "1"\noutput_usd_per_mtok = "1"\n')
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    env["PYTHONPATH"] = SRC
    out = subprocess.run([sys.executable, "-m", "routerone", "models", "--config", str(cfg),
                          "--database-url", f"sqlite:///{tmp_path / 'cli.db'}"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert "provider box: model discovery failed" in out.stderr and "compressed" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert "llama-3-8b" not in out.stdout, out.stdout             # the cut list is not served

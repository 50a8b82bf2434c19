"""A systematic, bounded fuzz of what a provider can send (upstream_mutations.py: mutations of
spec-valid OpenAI-compatible, Anthropic and Gemini replies, streamed and not, down to the bytes),
through the real gateway on a real socket, reached by the official SDKs on every client surface
(`openai` on /v1/chat/completions and /v1/responses, `anthropic` on /v1/messages).

Per case, the invariants:
- the client gets a valid reply (the vendor's spec, checked on the wire) or a documented error:
  a status among UPSTREAM_STATUSES with the error shape of its surface, or a stream that ends with
  the surface's error event; never a 500, a traceback, a stream cut without its last event, an
  exception the SDK did not expect, nor a wait beyond the configured upstream timeouts;
- one usage row, its hold closed, the ledger's charge = its cost = what left the balance, an integer
  of micro-dollars in [0, hold] (the hold: MAX_TOKENS output tokens and the short prompt), token
  counts within MAX_REPORTED_TOKENS, and on a reply with usage, that usage is what was billed;
- the process still serves (a valid request on each surface, after all cases);
- no provider key in any response (headers or body) or log line.

Two gateways, one per upstream client (the lean HTTP/1.1 one, aiohttp's: the framing and HTTP cases
alternate), and a third with the router's retries on for the Retry-After cases. ~100 s.

Fixed seed, every case once on one surface (the quick SSE framing cases on all three);
ROUTERONE_UPFUZZ_SEED picks another seed,
ROUTERONE_UPFUZZ_JSON_CASES how many JSON mutations per protocol and mode (default 24), and
ROUTERONE_UPFUZZ_REPORT=/path writes each protocol's failures to /path.PROTOCOL."""
from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import anthropic
import openai
import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import SMALL  # noqa: E402
from protocol_helpers import make_protocol_wire, sse_events  # noqa: E402
from raw_upstream import RawUpstream, gateway_over_protocols, usage_rows  # noqa: E402
from upstream_mutations import (ANT_MODEL, GEM_MODEL, UPSTREAM_KEYS, Case, cases, valid_pieces,  # noqa: E402
                                whole)

from routerone.http.render import OVERLOADED_STATUS  # noqa: E402
from routerone.observability.logs import JSONFormatter  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402
from routerone.wire.types import MAX_REPORTED_TOKENS  # noqa: E402

SEED = int(os.environ.get("ROUTERONE_UPFUZZ_SEED", "20261207"))
MODELS = {"openai": SMALL, "anthropic": ANT_MODEL, "gemini": GEM_MODEL}
MAX_TOKENS = 50
HOLD_BOUND_MICROS = 2_000          # the worst case of MAX_TOKENS output and a ~20-token prompt, on any of MODELS
FIRST_BYTE_S, IDLE_S = 2.0, 1.5
CASE_BOUND_S = 15.0                # a case's reply within the timeouts (and the slow bodies' reading)
UPSTREAM_STATUSES = {400, 413, 429, 502, 503, 504}    # what an upstream failure becomes (errors.py);
# /v1/messages keeps Anthropic's own 529 for an overloaded upstream (http/render.py)
FINAL_EVENTS = {"chat": {"[DONE]"}, "messages": {"message_stop", "error"},
                "responses": {"response.completed", "response.failed", "response.incomplete", "error"}}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JSONFormatter())
        self.lines: list[str] = []
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        self.lines.append(line)
        if record.exc_info and record.levelno >= logging.ERROR:
            self.tracebacks.append(line[:2000])


@contextmanager
def _fuzz_env(tmp: Path, **overrides):
    """(gateway, upstream, state, log lines): the gateway's three providers are one RawUpstream that
    answers every request with `state["case"]`'s bytes; deployments never cool down (each case
    reaches the upstream), short upstream timeouts."""
    state: dict = {"case": None}

    def answer(request: dict) -> list:
        case: Case | None = state["case"]
        if case is None or "method" in request:      # not a case's request (a GET)
            return whole(b'{"error": {"message": "no case"}}', 404)
        return case.pieces

    up = RawUpstream(answer)
    lines = _Lines()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(lines)
    root.setLevel(logging.INFO)
    try:
        with gateway_over_protocols(up, tmp, UPSTREAM_KEYS, cooldown_failures=10**9, cooldown_s=0,
                                    first_byte_timeout_s=FIRST_BYTE_S, idle_timeout_s=IDLE_S, connect_timeout_s=2.0,
                                    log_requests=True, **overrides) as gw:
            yield gw, up, state, lines
    finally:
        root.removeHandler(lines)
        root.setLevel(old_level)
        up.stop()


@pytest.fixture(scope="module")
def envs(tmp_path_factory):
    """A gateway per upstream client: {"http1": env, "aiohttp": env} (each case names its own)."""
    with _fuzz_env(tmp_path_factory.mktemp("upfuzz")) as http1, \
            _fuzz_env(tmp_path_factory.mktemp("upfuzz-aiohttp"), upstream_http1=False) as aio:
        yield {"http1": http1, "aiohttp": aio}


@pytest.fixture(scope="module")
def env_retries(tmp_path_factory):
    """The same with the router's retries on (the default 2): Retry-After and the retry path."""
    with _fuzz_env(tmp_path_factory.mktemp("upfuzz-retries"), max_retries=2) as e:
        yield e


def _call(gw: Gateway, surface: str, model: str, key: str, stream: bool, wire) -> None:
    """One request through the official SDK; a stream read to its end."""
    prompt = "Say hello"
    if surface == "messages":
        with anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30,
                                 http_client=wire.client()) as client:
            out = client.messages.create(model=model, max_tokens=MAX_TOKENS, stream=stream,
                                         messages=[{"role": "user", "content": prompt}])
            if stream:
                list(out)
        return
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30,
                       http_client=wire.client()) as client:
        if surface == "chat":
            extra = {"stream_options": {"include_usage": True}} if stream else {}
            out = client.chat.completions.create(model=model, max_tokens=MAX_TOKENS, stream=stream,
                                                 messages=[{"role": "user", "content": prompt}], **extra)
        else:
            out = client.responses.create(model=model, max_output_tokens=MAX_TOKENS, stream=stream, input=prompt)
        if stream:
            list(out)


def _usage_seen(surface: str, rec) -> tuple[int, int] | None:
    """(prompt, completion) tokens the client was told, when it was told any."""
    body = bytes(rec.body)
    if rec.status != 200:
        return None
    if rec.content_type.startswith("text/event-stream"):
        events = sse_events(body)
        if surface == "chat":
            found = [d["usage"] for _, d in events if isinstance(d, dict) and d.get("usage")]
            return (found[-1]["prompt_tokens"], found[-1]["completion_tokens"]) if found else None
        if surface == "responses":
            done = [d["response"].get("usage") for _, d in events
                    if isinstance(d, dict) and d.get("type") == "response.completed"]
            return (done[-1]["input_tokens"], done[-1]["output_tokens"]) if done and done[-1] else None
        start = [d["message"]["usage"] for n, d in events if n == "message_start"]
        final = [d["usage"] for n, d in events if n == "message_delta"]
        if not start or not final:
            return None
        u = {**start[0], **final[-1]}
        return (u["input_tokens"] + (u.get("cache_read_input_tokens") or 0)
                + (u.get("cache_creation_input_tokens") or 0), u["output_tokens"])
    obj = orjson.loads(body)
    u = obj.get("usage")
    if not u:
        return None
    if surface == "chat":
        return u["prompt_tokens"], u["completion_tokens"]
    if surface == "messages":
        return (u["input_tokens"] + (u.get("cache_read_input_tokens") or 0)
                + (u.get("cache_creation_input_tokens") or 0), u["output_tokens"])
    return u["input_tokens"], u["output_tokens"]


def _stream_end_problem(surface: str, rec) -> str | None:
    if rec.status != 200 or not rec.content_type.startswith("text/event-stream"):
        return None
    events = sse_events(bytes(rec.body))
    if not events:
        return "an empty 200 stream"
    name, data = events[-1]
    last = data if data == "[DONE]" else name if surface == "messages" else data.get("type")
    if surface == "chat" and isinstance(data, dict) and data.get("error"):
        return None
    return None if last in FINAL_EVENTS[surface] else f"stream ended without its last event (last: {str(last)[:80]})"


def _money_problems(gw: Gateway, account_id: int, seen, stream: bool) -> list[str]:
    rows = usage_rows(gw, account_id, expected=1)
    if len(rows) != 1:
        return [f"{len(rows)} usage rows"]
    [row] = rows
    out = []
    acc = gw.account(account_id)
    store = gw.runtime.chat.d.billing.store
    charged = sum(-e.amount_micros for e in gw.call(store.ledger(account_id, 100)) if e.kind == "charge")
    if acc["reserved_micros"] != 0:
        out.append(f"hold left open: {acc['reserved_micros']}")
    if not (charged == row.cost_micros == 10_000_000 - acc["balance_micros"]):
        out.append(f"books disagree: charged {charged}, row {row.cost_micros}, spent {10_000_000 - acc['balance_micros']}")
    if type(row.cost_micros) is not int or not 0 <= row.cost_micros <= HOLD_BOUND_MICROS:
        out.append(f"cost {row.cost_micros!r} outside [0, {HOLD_BOUND_MICROS}]")
    for name in ("prompt_tokens", "completion_tokens"):
        v = getattr(row, name)
        if type(v) is not int or not 0 <= v <= MAX_REPORTED_TOKENS:
            out.append(f"{name}={v!r}")
    if seen is not None and seen != (row.prompt_tokens, row.completion_tokens):
        out.append(f"client told usage {seen}, billed ({row.prompt_tokens}, {row.completion_tokens})")
    return out


def run_case(gw: Gateway, up: RawUpstream, state: dict, case: Case, surface: str, outcomes: list) -> list[str]:
    """The invariants' failures for `case` on `surface` (empty: all held); its outcome (200, the
    error status, "stream-error") is appended to `outcomes`."""
    state["case"], up.mode, up.pause_s = case, "close" if case.close else "keep", case.pause_s
    key, account_id = gw.new_key()
    wire = make_protocol_wire(_wire_base())
    t0 = time.monotonic()
    problems = []
    outcome = 200
    try:
        _call(gw, surface, MODELS[case.protocol], key, case.stream, wire)
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        outcome = exc.status_code if exc.status_code != 200 else "stream-error"
        allowed = UPSTREAM_STATUSES | ({OVERLOADED_STATUS} if surface == "messages" else set())
        if exc.status_code != 200 and exc.status_code not in allowed:
            problems.append(f"status {exc.status_code}: {exc.message[:200]}")
    except (openai.APIConnectionError, anthropic.APIConnectionError) as exc:
        outcome = "broken"
        problems.append(f"connection failed: {exc!r} ({exc.__cause__!r})"[:300])
    except (openai.APIError, anthropic.APIError):
        outcome = "stream-error"     # an error event inside a stream: the stream's documented failure
    except Exception as exc:      # noqa: BLE001 - what the SDK did not expect is the finding
        outcome = "broken"
        problems.append(f"SDK raised {type(exc).__name__}: {exc}"[:300])
    elapsed_s = time.monotonic() - t0
    outcomes.append(outcome)
    _SLOWEST[:] = sorted(_SLOWEST + [(round(elapsed_s, 2), case.name, surface)], reverse=True)[:3]
    state["case"] = None
    if elapsed_s > CASE_BOUND_S:
        problems.append(f"took {elapsed_s:.1f} s")
    # Anthropic's streams may gain event types, which clients must ignore (its versioning policy)
    problems += [p for p in wire.problems() if "unknown stream event" not in p][:3]
    seen = None
    for rec in wire.responses:
        body = bytes(rec.body)
        if b"Traceback" in body:
            problems.append("a traceback in the response")
        for secret in UPSTREAM_KEYS.values():
            if secret.encode() in body or any(secret in v for v in rec.headers.values()):
                problems.append(f"provider key {secret[:12]}... in the response")
        end = _stream_end_problem(surface, rec)
        if end:
            problems.append(end)
        try:
            seen = _usage_seen(surface, rec)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(f"usage unreadable on the wire: {exc!r}")
    problems += _money_problems(gw, account_id, seen, case.stream)
    return problems


_WIRE_BASE: list = []
_SLOWEST: list = []     # the 3 slowest cases so far: (seconds, name, surface)


def _wire_base():
    return _WIRE_BASE[0]


@pytest.fixture(autouse=True)
def _wire_class(openai_wire):
    """protocol_helpers' recorder is built on conftest's OpenAIWire (by its type: conftest is not importable)."""
    _WIRE_BASE[:] = [type(openai_wire)]
    yield


# Cases whose replies pass on, as the upstream sent them, fields Router One does not read (their
# other invariants are checked): an Anthropic upstream's message relayed to /v1/messages keeps its
# citations, caller, container, stop_details, stop_sequence, stop_reason (Anthropic adds values), a
# tool id's characters, output_tokens_details, server_tool_use and service_tier text (of the right
# types: billed_usage); an OpenAI-compatible call id's characters pass on to /v1/messages.
LEFT_ALONE = [re.compile(p) for p in (
    r"^anthropic/(json|sse)/.*(citations|caller|container|stop_details|stop_sequence|stop_reason|"
    r"output_tokens_details|server_tool_use|service_tier|content_block\.id|content\.0\.id)",
    r"^openai/sse/tools/ev0\.choices\.0\.delta\.tool_calls\.0\.id=",
    r"^openai/json/tools/choices\.0\.message\.tool_calls\.0\.id=")]
# A tool call whose name the upstream lost (no function, an empty name, its first delta dropped) is a
# tool_use block with an empty name on /v1/messages: what else could it be called.
NAMELESS_TOOL_USE = re.compile(r"'type': 'tool_use', 'id': '[^']*', 'name': '', ")
ALL = cases(SEED, int(os.environ.get("ROUTERONE_UPFUZZ_JSON_CASES", "24")))


def _run_all(envs: dict, selected: list[Case], label: str, protocol: str) -> None:
    """Every case of `selected` (its invariants) on the gateway of its client, then a valid reply
    of `protocol` on each surface of each gateway."""
    failures, outcomes = [], []
    for case in selected:
        gw, up, state, lines = envs.get(case.client, envs["http1"])
        for surface in case.surfaces:
            problems = run_case(gw, up, state, case, surface, outcomes)
            if any(rx.search(case.name) for rx in LEFT_ALONE):
                problems = [p for p in problems if " -> 200" not in p]    # their shape as sent: see LEFT_ALONE
            problems = [p for p in problems if not NAMELESS_TOOL_USE.search(p)]
            failures += [f"{case.name} @{surface}{'/stream' if case.stream else ''}: {p}" for p in problems]
    # the process still serves
    for client, (gw, up, state, lines) in envs.items():
        for surface in ("chat", "messages", "responses"):
            for stream in (False, True):
                ok = Case("valid", protocol, stream, valid_pieces(protocol, stream))
                failures += [f"valid after the fuzz @{surface} ({client}): {p}"
                             for p in run_case(gw, up, state, ok, surface, [])]
    lines = next(iter(envs.values()))[3]     # each gateway's handler sees every record of the process
    leaked = [line[:300] for line in lines.lines if any(k in line for k in UPSTREAM_KEYS.values())]
    failures += [f"provider key in a log line: {line}" for line in leaked[:5]]
    failures += [f"traceback logged: {t[:600]}" for t in lines.tracebacks[:5]]
    for env in envs.values():
        env[3].tracebacks.clear()
    print(f"\nupfuzz {label}: {len(selected)} cases, outcomes {dict(Counter(outcomes))}, "
          f"{len(lines.lines)} log lines scanned, slowest {_SLOWEST}, {len(failures)} failures")
    if os.environ.get("ROUTERONE_UPFUZZ_REPORT"):
        Path(os.environ["ROUTERONE_UPFUZZ_REPORT"] + f".{label}").write_text("\n".join(failures))
    assert not failures, f"{len(failures)} invariant failures:\n  " + "\n  ".join(failures[:60])


@pytest.mark.parametrize("protocol", ["openai", "anthropic", "gemini"])
def test_hostile_upstream_replies_keep_every_invariant(envs, protocol):
    _run_all(envs, [c for c in ALL if c.protocol == protocol], protocol, protocol)


def test_failed_statuses_and_retry_after_with_router_retries(env_retries):
    """Every protocol's Retry-After values and retryable statuses, with the router retrying (2 more
    attempts): never a wait beyond the router's own bound (MAX_RETRY_WAIT_S between rounds)."""
    selected = [c for c in ALL if re.search(r"/\d+-retry-after", c.name)]
    _run_all({"http1": env_retries}, selected, "retries", "gemini")

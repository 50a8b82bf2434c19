"""Model discovery: an OpenAI-compatible provider's `GET {base_url}/models`, at start and every
`discovery_interval_s`, merged into the catalog (`Catalog.set_discovered`).

- Start-up waits at most `first_wait_s` for the first round; slower providers join when they answer.
- A failed refresh (unreachable, non-200, not JSON, wrong shape) is logged and the last good list
  is kept; the next one comes sooner, RETRY_FIRST_S then doubling up to `discovery_interval_s` (a
  vLLM box still loading its weights when the gateway starts is served seconds after it is up).
  All I/O is aiohttp on the event loop; parsing a list is a few microseconds per model.
- A redirect is not followed (the request carries the provider's key): a failure naming where it pointed.
- The list is read whole (up to MAX_LIST_BYTES, sent and decoded); at most MAX_DISCOVERED_MODELS of it
  are served. A gzip/deflate body is decoded by decode.py, not aiohttp (whose decoder takes a body
  that ends before its compressed stream does as complete): a cut or undecodable list is a failed refresh.
- vLLM's `max_model_len` becomes the context window; other fields are ignored.
- An id no client could send (over MAX_ID_CHARS characters, unprintable, with a space or a comma) is
  left out: one warning per provider per refresh says how many, with the first escaped and clipped.
- A model with no known price on a provider with an API key and no `input/output_usd_per_mtok` is
  left out (logged), never served free.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
import orjson

from ..catalog import Catalog, discovered_model
from ..errors import UpstreamUnavailable
from ..offload import run_heavy
from .base import Deployment
from .decode import ACCEPT_ENCODING, BodyDecoder, codings_of
from .openai_compat import auth_headers
from .transport import redirect_target
from .vendors import ProviderEntry

__all__ = ["Discovery", "DiscoveryError", "discover_once"]

log = logging.getLogger("routerone.discovery")
MAX_LIST_BYTES = 8 * 1024 * 1024
# per provider, after its `models` filter: `auto` weighs every candidate on every request (60,000
# discovered models made each `auto` request take 0.3-0.65 s of the event loop; 2,000 add some 10-30 ms)
MAX_DISCOVERED_MODELS = 2000
RETRY_FIRST_S = 2.0        # after a failed refresh; doubled after each further one, up to the interval
MAX_ID_CHARS = 256         # a discovered model id's length, at most
PREVIEW_CHARS = 80         # of the first refused id, in the log line


class DiscoveryError(Exception):
    pass


def _models_url(entry: ProviderEntry) -> str:
    return entry.vendor.base_url.rstrip("/") + "/models"


@dataclass(slots=True)
class Listing:
    """An upstream's model list as read: the usable ids (with vLLM's max_model_len), and how many
    ids no client could send were left out, with the first of them (as listed: see `preview`)."""
    models: list[tuple[str, int | None]]
    refused: int = 0
    first_refused: str = ""


def _parse(body: bytes, url: str) -> Listing:
    try:
        doc = orjson.loads(body)
        rows = doc["data"] if isinstance(doc, dict) else None
        if not isinstance(rows, list):
            raise TypeError
        listing, seen = Listing([]), set()
        for row in rows:
            mid = row.get("id") if isinstance(row, dict) else None
            if not isinstance(mid, str) or not mid or mid in seen:
                continue        # no id, or listed once already (a second listing would hide the bare name as ambiguous)
            # a usable id: text a client can send and a key allowlist can hold (no NUL, no spaces)
            if len(mid) <= MAX_ID_CHARS and mid.isprintable() and " " not in mid and "," not in mid:
                seen.add(mid)
                ctx = row.get("max_model_len")
                listing.models.append((mid, ctx if isinstance(ctx, int) and not isinstance(ctx, bool) and ctx > 0
                                       else None))
            else:
                listing.refused += 1
                listing.first_refused = listing.first_refused or mid
        return listing
    except (orjson.JSONDecodeError, TypeError, KeyError):
        raise DiscoveryError(f"{url}: not an OpenAI model list") from None


def preview(text: str, secret: str | None) -> str:
    """An id from an upstream as a log line may show it: the provider's key (`secret`) taken out,
    unprintable characters escaped (no forged lines, no terminal escapes), at most PREVIEW_CHARS
    characters of it, and its length when clipped."""
    if secret:
        text = text.replace(secret, "<key>")
    shown = repr(text[:PREVIEW_CHARS])
    return shown if len(text) <= PREVIEW_CHARS else f"{shown}... ({len(text)} characters)"


async def fetch_models(session: aiohttp.ClientSession, entry: ProviderEntry, timeout_s: float) -> Listing:
    url = _models_url(entry)
    headers = auth_headers(Deployment("", entry.vendor, ""))
    headers.pop("Content-Type", None)
    try:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s),
                               allow_redirects=False) as resp:   # never the key to another host
            if 300 <= resp.status < 400:
                where = redirect_target(resp.headers, headers)
                raise DiscoveryError(f"{url}: HTTP {resp.status}, a redirect to {where} "
                                     "(not followed: set base_url to the final URL)")
            if resp.status != 200:
                raise DiscoveryError(f"{url}: HTTP {resp.status}")
            body = await _read_list(resp, url)
    except UpstreamUnavailable as exc:     # decode.py: cut, undecodable, or an unknown Content-Encoding
        raise DiscoveryError(f"{url}: {exc.message}") from None
    except aiohttp.ClientConnectorError as exc:
        raise DiscoveryError(f"{url}: cannot connect ({exc.os_error.strerror or exc.os_error})") from None
    except asyncio.TimeoutError:
        raise DiscoveryError(f"{url}: no answer within {timeout_s:g} s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise DiscoveryError(f"{url}: {type(exc).__name__} {exc}".rstrip()) from None
    return await run_heavy(len(body), _parse, body, url)      # a long list (MAX_LIST_BYTES): off the event loop


async def _read_list(resp: aiohttp.ClientResponse, url: str) -> bytes:
    """The whole body, decoded (decode.py): at most MAX_LIST_BYTES received and as many decoded.
    Read by pieces: read(n) returns what has arrived, not n bytes (a list over ~128 KiB was cut)."""
    decoder = BodyDecoder.for_coding(codings_of(resp.headers))
    body, received, done = bytearray(), 0, False
    while not done:
        if decoder is not None and decoder.pending:
            body += decoder.decode(b"")
        elif data := await resp.content.readany():
            received += len(data)
            body += data if decoder is None else decoder.decode(data)
        else:                       # a compressed stream must have ended too (else UpstreamUnavailable)
            body += decoder.end() if decoder is not None else b""
            done = True
        if len(body) > MAX_LIST_BYTES or received > MAX_LIST_BYTES:
            raise DiscoveryError(f"{url}: model list larger than {MAX_LIST_BYTES} bytes")
    return bytes(body)


def _session() -> aiohttp.ClientSession:
    """Discovery's client: bodies decoded by _read_list (decode.py), not by aiohttp."""
    return aiohttp.ClientSession(auto_decompress=False, headers={"Accept-Encoding": ACCEPT_ENCODING})


def _to_models(catalog: Catalog, entry: ProviderEntry, listed: list[tuple[str, int | None]]) -> list:
    static_upstreams = {d.upstream_model for m in (*catalog.static.values(), *catalog.named.get(entry.name, ()))
                        for d in m.deployments if d.vendor.name == entry.name}
    out, refused, more = [], [], False
    for mid, ctx in listed:
        if not entry.wants(mid) or mid in static_upstreams:
            continue
        if len(out) == MAX_DISCOVERED_MODELS:    # the rest are not served: not priced and profiled either
            more = True
            break
        m = discovered_model(entry, mid, context_window=ctx)
        (out.append(m) if m is not None else refused.append(mid))
    if entry.patterns and listed and not any(entry.wants(mid) for mid, _ in listed):
        # it served nothing and said nothing: `auto` then answered "No configured model can serve this request"
        log.warning("provider %s: its models filter %s matches none of the %d model(s) it lists (%s): a name or "
                    "wildcard must match a whole listed name, case included (e.g. \"*llama*\")", entry.name,
                    list(entry.patterns), len(listed), ", ".join(mid for mid, _ in listed[:5])
                    + (", ..." if len(listed) > 5 else ""))
    if refused:
        log.warning("provider %s: %d model(s) without a known price left out (set providers.%s."
                    "input_usd_per_mtok / output_usd_per_mtok to serve them): %s", entry.name, len(refused),
                    entry.name, ", ".join(refused[:10]))
    if more:
        log.warning("provider %s lists %d models: serving the first %d (name the ones you want with "
                    "providers.%s.models = [...])", entry.name, len(listed), MAX_DISCOVERED_MODELS, entry.name)
    return out


class Discovery:
    """Keeps the catalog's discovered models fresh while the gateway runs."""

    def __init__(self, catalog: Catalog, *, timeout_s: float = 5.0, first_wait_s: float = 3.0,
                 quiet: bool = False) -> None:
        self.catalog = catalog
        self.quiet = quiet                      # the CLI reports failures itself
        self.timeout_s = timeout_s
        self.first_wait_s = first_wait_s
        self.failures: dict[str, str] = {}      # provider -> last error, while it lasts
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task] = []

    def entries(self) -> list[ProviderEntry]:
        return [e for e in self.catalog.providers.values() if e.discover and e.vendor.configured]

    async def refresh(self, entry: ProviderEntry) -> bool:
        assert self._session is not None
        try:
            listing = await fetch_models(self._session, entry, self.timeout_s)
        except DiscoveryError as exc:
            self.failures[entry.name] = str(exc)
            self.catalog.discovery_failing = self.catalog.discovery_failing | {entry.name}
            kept = len(self.catalog.discovered.get(entry.name, ()))
            (log.debug if self.quiet else log.warning)("model discovery for provider %s failed (keeping the last %d models): %s",
                        entry.name, kept, exc)
            return False
        self.failures.pop(entry.name, None)
        self.catalog.discovery_failing = self.catalog.discovery_failing - {entry.name}
        if listing.refused:
            (log.debug if self.quiet else log.warning)(
                "provider %s lists %d model id(s) no client could send (over %d characters, unprintable "
                "characters, spaces or commas): left out; the first: %s; rename the model on the server "
                "(llama-server: --alias NAME)", entry.name, listing.refused,
                MAX_ID_CHARS, preview(listing.first_refused, entry.vendor.api_key))
        listed = listing.models
        models = await run_heavy(len(listed) * 64, _to_models, self.catalog, entry, listed)   # a long list: off the loop
        before = {m.id for m in self.catalog.discovered.get(entry.name, ())}
        self.catalog.set_discovered(entry.name, models)
        if {m.id for m in models} != before and not self.quiet:
            log.info("provider %s serves %d discovered model(s): %s", entry.name, len(models),
                     ", ".join(m.id for m in models[:20]) + (" ..." if len(models) > 20 else ""))
        return True

    async def _loop(self, entry: ProviderEntry, first: asyncio.Event) -> None:
        try:
            ok = await self.refresh(entry)
        finally:
            first.set()
        retry_s = RETRY_FIRST_S
        while True:
            if ok:
                retry_s = RETRY_FIRST_S
                await asyncio.sleep(entry.discovery_interval_s)
            else:
                await asyncio.sleep(min(retry_s, entry.discovery_interval_s))
                retry_s *= 2
            ok = await self.refresh(entry)

    async def start(self) -> None:
        entries = self.entries()
        if not entries:
            return
        self._session = _session()
        firsts = []
        for e in entries:
            ev = asyncio.Event()
            firsts.append(ev)
            self._tasks.append(asyncio.create_task(self._loop(e, ev), name=f"discovery-{e.name}"))
        waiters = [asyncio.create_task(ev.wait()) for ev in firsts]
        _, pending = await asyncio.wait(waiters, timeout=self.first_wait_s)
        for w in pending:
            w.cancel()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None


async def discover_once(catalog: Catalog, timeout_s: float = 5.0) -> dict[str, str]:
    """One round for the CLI: every discovering provider in parallel; returns provider -> error."""
    d = Discovery(catalog, timeout_s=timeout_s, quiet=True)
    entries = d.entries()
    if not entries:
        return {}
    d._session = _session()
    try:
        await asyncio.gather(*(d.refresh(e) for e in entries))
    finally:
        await d._session.close()
    return d.failures

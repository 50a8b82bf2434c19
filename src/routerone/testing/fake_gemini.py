"""A fake Google Gemini upstream (aiohttp, real socket) speaking REST v1beta.

    with FakeGeminiServer(api_key="k", parallel_calls=2) as fake:   # background thread, 127.0.0.1
        vendor base_url = fake.base_url                             # ".../v1beta"
        fake.requests[-1]["body"]                                   # what the fake received
        fake.fail_next({"error": 429, "retry_delay_s": 2}, {"cut": 1})

Endpoints: `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` (data-only
SSE, each event a `GenerateContentResponse`; without `alt=sse` a JSON array), `GET /v1beta/models`,
`POST /_control/faults` (`{"faults": [...]}` queued for the next requests), `GET /_control/requests`.

Behaviour (all outputs follow the discovery document's shapes):
- auth: no `x-goog-api-key` (or `?key=`) -> 403 PERMISSION_DENIED; with `api_key` set, another key ->
  400 INVALID_ARGUMENT / ErrorInfo `API_KEY_INVALID`. With `validate`, unknown request fields and
  malformed contents -> 400 INVALID_ARGUMENT, as Google answers.
- text: `reply_words` pieces (one piece = one candidates token, one SSE event); `stopSequences` cut the
  text before the first match (finish STOP); `maxOutputTokens` caps the pieces (finish MAX_TOKENS);
  `candidateCount` candidates; `responseMimeType: application/json` answers JSON text matching
  `responseSchema`/`responseJsonSchema` (or `{"answer": "fake"}`).
- tools: with `functionDeclarations` and mode != NONE, answers `parallel_calls` functionCall parts
  (names from `allowedFunctionNames` or the declarations, args sampled from the schema); once the
  last turn carries a `functionResponse`, answers text that quotes the first response.
- usage: promptTokenCount = words in the prompt; `cached_tokens`, `thoughts_tokens` reported as
  cachedContentTokenCount / thoughtsTokenCount (none with `thinkingBudget: 0`, as Google); with
  `includeThoughts` the thought text too, before the answer: one `thought: true` part, or (streamed)
  one per event over several events (`FAKE_THOUGHT_PIECES`).
- directives in the last user text (or queued faults, same keys): `[[error:429|500|503|504|400|404]]`,
  `[[cut:N]]` (drop the connection after N events), `[[stream_error:N]]`, `[[tools:N]]`,
  `[[words:N]]`, `[[sleep:MS]]`, `[[block:1]]` (prompt blocked), `[[safety:1]]`, `[[thoughts:N]]`,
  `[[cached:N]]`.
"""
from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass

import orjson
from aiohttp import web

from .fake_embeddings import gemini_batch_embed

from .fake_gemini_content import (check_request, google_error, last_user_text, reply_plan,
                                  response_events)
from .threaded import ThreadedServer

__all__ = ["FakeGeminiOptions", "make_app", "FakeGeminiServer"]

_DIRECTIVE = re.compile(r"\[\[(\w+):(\d+)\]\]")


@dataclass
class FakeGeminiOptions:
    api_key: str | None = None          # set: this exact key is required; unset: any non-empty key
    reply_words: int = 12               # text reply length in pieces (= candidates tokens)
    parallel_calls: int = 1             # functionCall parts per answer when tools are offered
    call_ids: bool = False              # send functionCall.id (newer models do)
    thought_signatures: bool = False    # attach thoughtSignature to function calls (Gemini 3)
    thoughts_tokens: int = 0            # thoughtsTokenCount to report
    cached_tokens: int = 0              # cachedContentTokenCount to report (capped at the prompt)
    retry_delay_s: float = 1.0          # RetryInfo.retryDelay on 429s
    latency_ms: float = 0.0             # before the response starts
    chunk_interval_ms: float = 0.0      # between SSE events
    model_version: str | None = None    # modelVersion (default: the model in the URL)
    known_models: tuple[str, ...] = ()  # non-empty: other models answer 404 NOT_FOUND
    validate: bool = True               # reject unknown fields / malformed contents like Google


class _Fake:
    def __init__(self, opts: FakeGeminiOptions) -> None:
        self.opts = opts
        self.faults: list[dict] = []
        self.requests: list[dict] = []

    def directives(self, body: dict) -> dict:
        found = {k: int(v) for k, v in _DIRECTIVE.findall(last_user_text(body))}
        if self.faults:
            found.update(self.faults.pop(0))
        return found

    def auth_error(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return google_error(403, "Method doesn't allow unregistered callers (callers without established "
                                     "identity). Please use API Key or other form of API consumer identity "
                                     "to call this API.")
        if self.opts.api_key is not None and key != self.opts.api_key:
            return google_error(400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID")
        return None


FAKE = web.AppKey("fake_gemini", _Fake)


async def _generate(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE]
    model, _, method = request.match_info["target"].partition(":")
    if method not in ("generateContent", "streamGenerateContent", "batchEmbedContents"):
        return google_error(404, f"Method not found: {method}")
    denied = fake.auth_error(request)
    if denied is not None:
        return denied
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return google_error(400, "Invalid JSON payload received. Unexpected token.")
    if method == "batchEmbedContents":
        fake.requests.append({"model": model, "stream": False, "body": body, "api_key": request.headers.get("x-goog-api-key")})
        return gemini_batch_embed(model, body)
    stream = method == "streamGenerateContent"
    fake.requests.append({"model": model, "stream": stream, "body": body,
                          "api_key": request.headers.get("x-goog-api-key")})
    if fake.opts.known_models and model not in fake.opts.known_models:
        return google_error(404, f"models/{model} is not found for API version v1beta, or is not supported "
                                 f"for {method}. Call ListModels to see the list of available models.")
    problem = check_request(body) if fake.opts.validate else None
    if problem:
        return google_error(400, problem)
    d = fake.directives(body)
    delay_ms = d.get("sleep", 0) + fake.opts.latency_ms
    if delay_ms:
        await asyncio.sleep(delay_ms / 1000)
    if "error" in d:
        return google_error(int(d["error"]), retry_delay_s=float(d.get("retry_delay_s", fake.opts.retry_delay_s)))
    plan = reply_plan(body, d, fake.opts)
    events = response_events(plan, model_version=fake.opts.model_version or model,
                             response_id=uuid.uuid4().hex[:22], stream=stream)
    if not stream:
        return web.json_response(events[0], dumps=lambda o: orjson.dumps(o).decode())
    if request.query.get("alt") != "sse":
        return web.json_response(events, dumps=lambda o: orjson.dumps(o).decode())
    return await _sse(request, fake, d, events)


async def _sse(request: web.Request, fake: _Fake, d: dict, events: list[dict]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    pace_s = fake.opts.chunk_interval_ms / 1000
    for i, event in enumerate(events):
        if "cut" in d and i == d["cut"]:
            request.transport.close()   # no finishReason ever arrives
            return resp
        if "stream_error" in d and i == d["stream_error"]:
            err = {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                             "status": "UNAVAILABLE"}}
            await resp.write(b"data: " + orjson.dumps(err) + b"\r\n\r\n")
            return resp
        if pace_s and i:
            await asyncio.sleep(pace_s)
        await resp.write(b"data: " + orjson.dumps(event) + b"\r\n\r\n")
    await resp.write_eof()
    return resp


async def _models(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    names = fake.opts.known_models or ("gemini-2.5-flash", "gemini-2.5-pro")
    return web.json_response({"models": [
        {"name": f"models/{m}", "displayName": m, "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
         "supportedGenerationMethods": ["generateContent", "countTokens"]} for m in names]})


async def _faults(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    fake.faults.extend((await request.json()).get("faults", []))
    return web.json_response({"queued": len(fake.faults)})


async def _requests(request: web.Request) -> web.Response:
    return web.json_response({"requests": request.app[FAKE].requests},
                             dumps=lambda o: orjson.dumps(o).decode())


def make_app(**options) -> web.Application:
    """The fake as an aiohttp app; `options` are `FakeGeminiOptions` fields."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[FAKE] = _Fake(FakeGeminiOptions(**options))
    app.router.add_post("/v1beta/models/{target}", _generate)
    app.router.add_get("/v1beta/models", _models)
    app.router.add_post("/_control/faults", _faults)
    app.router.add_get("/_control/requests", _requests)
    return app


class FakeGeminiServer:
    """The fake on 127.0.0.1 (ephemeral port) in a background thread; `base_url` ends in `/v1beta`."""

    def __init__(self, **options) -> None:
        self._server = ThreadedServer(lambda: make_app(**options))

    @property
    def base_url(self) -> str:
        return self._server.url + "/v1beta"

    @property
    def requests(self) -> list[dict]:
        return self._server.app[FAKE].requests if self._server.app is not None else []

    def fail_next(self, *faults: dict) -> None:
        """Queue faults (`{"error": 429}`, `{"cut": 2}`, ...) for the next requests, in order."""
        self._server.app[FAKE].faults.extend(faults)

    def start(self) -> "FakeGeminiServer":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> "FakeGeminiServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

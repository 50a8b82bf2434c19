"""A fake self-hosted inference server (Ollama, llama.cpp's llama-server, LM Studio, TGI, SGLang,
LocalAI), answering as that server's OpenAI-compatible endpoints do: its model list, its error
bodies, its stream's quirks (local_flavors.py says what each sends and where that was read).

    with LocalServer("tgi") as srv:
        srv.base_url            # http://127.0.0.1:PORT/v1
        srv.requests            # the chat bodies received
        srv.last_usage          # the usage it counted for the last chat answer

Directives in the last user message, as fake_openai's: `[[error:400]]` (the server's own error
body; a 400 is TGI's 422), `[[stream_error:2]]` (an error event after 2 content chunks),
`[[refuse_in_stream:400]]` (the refusal as the stream's first event, as TGI sends its validation
errors), `[[words:N]]`, `[[tools:N]]`. Token counts: one content chunk per completion token; prompt tokens
counted with o200k. A `max_completion_tokens` the server ignores (Ollama) leaves the answer at its
natural length (`[[words:N]]`, default 12).
"""
from __future__ import annotations

import dataclasses
import time
import uuid

import orjson
from aiohttp import web

from . import fake_embeddings
from .fake_openai import FakeOptions, _Fake, _prompt_tokens
from .local_flavors import FLAVORS, Flavor, error_body, stream_error
from .threaded import ThreadedServer

__all__ = ["LocalServer", "FLAVORS"]

ERROR_TEXT = "the prompt is 9000 tokens, more than this model's context of 4096"


def _json(body: dict, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


class LocalServer(ThreadedServer):
    def __init__(self, flavor: str, *, models: tuple[str, ...] | None = None) -> None:
        self.flavor: Flavor = FLAVORS[flavor]
        if models is not None:       # e.g. llama-server started with -m "/models/My Model.gguf"
            self.flavor = dataclasses.replace(self.flavor, models=models)
        self.fake = _Fake(FakeOptions(natural_length=not self.flavor.max_completion_tokens))
        self.last_usage: dict | None = None
        super().__init__(self._app)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def requests(self) -> list[dict]:
        return self.fake.requests

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app["fake"] = self.fake
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        if self.flavor.embeddings:
            app.router.add_post("/v1/embeddings", fake_embeddings.openai_embeddings)
        return app

    async def _models(self, request: web.Request) -> web.Response:
        owner = {"ollama": "library", "llamacpp": "llamacpp", "tgi": self.flavor.models[0]}
        rows = [{"id": m, "object": "model", "created": 0, "owned_by": owner.get(self.flavor.error_shape, "local")}
                for m in self.flavor.models]
        return _json({"object": "list", "data": rows})

    def _error(self, status: int) -> web.Response:
        if status == 400:
            status = self.flavor.validation_status
        return _json(error_body(self.flavor, status, ERROR_TEXT), status)

    def _words(self, body: dict, d: dict) -> tuple[list[str], str]:
        if not self.flavor.max_completion_tokens:      # the server reads max_tokens only
            body = {k: v for k, v in body.items() if k != "max_completion_tokens"}
        return self.fake.tokens(body, d)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.fake.requests.append(body)
        d = self.fake.plan(body)
        if "error" in d:
            return self._error(d["error"])
        calls = self.fake.tool_calls(body, d)
        words, finish = self._words(body, d)
        if calls:
            words, finish = [], "tool_calls"
        prompt = _prompt_tokens(body.get("messages") or [])
        completion = len(words) if not calls else 5 * len(calls)
        self.last_usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
        cid = "" if self.flavor.empty_id else f"chatcmpl-{uuid.uuid4().hex[:24]}"
        head = {"id": cid, "created": int(time.time()), "model": body.get("model") or "tgi",
                "system_fingerprint": self.flavor.fingerprint}
        if body.get("stream"):
            return await self._stream(request, body, d, words, calls, finish, head)
        msg: dict = {"role": "assistant", "content": None if calls else "".join(words)}
        if calls:
            msg["tool_calls"] = calls
        reply = {**head, "object": "chat.completion",
                 "choices": [{"index": 0, "message": msg, "finish_reason": finish}], "usage": self.last_usage}
        if self.flavor.timings:
            reply["timings"] = _timings(self.last_usage)
        return _json(reply)

    async def _stream(self, request, body, d, words, calls, finish, head) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        f, usage = self.flavor, self.last_usage
        sent = 0

        def chunk(delta: dict, finish_reason=None, **extra) -> bytes:
            if f.role_every_chunk:
                delta = {"role": "assistant", **delta}
            c = {**head, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}
            if f.usage_mode == "every_chunk" and "usage" not in extra:
                c["usage"] = {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": sent,
                              "total_tokens": usage["prompt_tokens"] + sent}
            elif f.null_usage_chunks and "usage" not in extra:
                c["usage"] = None
            return b"data: " + orjson.dumps(c) + b"\n\n"

        if "refuse_in_stream" in d:        # a refusal sent as the stream's first event (TGI's validation errors)
            await resp.write(b"data: " + orjson.dumps(stream_error(f, ERROR_TEXT, d["refuse_in_stream"])) + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            return resp
        await resp.write(chunk({"role": "assistant", "content": ""}))
        for i, w in enumerate(words):
            if "stream_error" in d and i == d["stream_error"]:
                await resp.write(b"data: " + orjson.dumps(stream_error(f, ERROR_TEXT)) + b"\n\n")
                await resp.write(b"data: [DONE]\n\n")
                return resp
            sent += 1
            await resp.write(chunk({"content": w}))
        await self._stream_tools(resp, chunk, calls)
        sent = usage["completion_tokens"]
        last: dict = {}
        if f.usage_mode in ("finish_chunk", "every_chunk"):
            last["usage"] = usage
        if f.timings and f.usage_mode == "finish_chunk":
            last["timings"] = _timings(usage)
        wants_usage = (body.get("stream_options") or {}).get("include_usage")
        if f.timings and f.usage_mode == "trailer" and not wants_usage:
            last["timings"] = _timings(usage)
        await resp.write(chunk({}, finish, **last))
        if f.usage_mode == "trailer" and wants_usage:
            trailer = {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            if f.timings:
                trailer["timings"] = _timings(usage)
            await resp.write(b"data: " + orjson.dumps(trailer) + b"\n\n")
        if f.done:
            await resp.write(b"data: [DONE]\n\n")
        return resp

    async def _stream_tools(self, resp, chunk, calls) -> None:
        for k, call in enumerate(calls):
            if self.flavor.whole_tool_calls:     # Ollama: the whole call, arguments and all, in one chunk
                await resp.write(chunk({"content": "", "tool_calls": [{"index": k, **call}]}))
                continue
            fn = call["function"]
            await resp.write(chunk({"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                                    "function": {"name": fn["name"], "arguments": ""}}]}))
            half = len(fn["arguments"]) // 2
            for part in (fn["arguments"][:half], fn["arguments"][half:]):
                await resp.write(chunk({"tool_calls": [{"index": k, "function": {"arguments": part}}]}))


def _timings(usage: dict) -> dict:
    return {"cache_n": 0, "prompt_n": usage["prompt_tokens"], "prompt_ms": 12.5, "prompt_per_token_ms": 0.4,
            "prompt_per_second": 2500.0, "predicted_n": usage["completion_tokens"], "predicted_ms": 80.0,
            "predicted_per_token_ms": 8.0, "predicted_per_second": 125.0}

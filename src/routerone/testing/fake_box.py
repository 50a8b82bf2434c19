"""A fake self-hosted OpenAI-compatible box (vLLM / Ollama / LM Studio style) for the
bring-your-own-models tests: the fake OpenAI upstream's chat endpoint plus its own `GET /v1/models`
list, which a test can change or make fail while the gateway runs.

    with FakeBox(["llama-3-8b", "qwen2.5-7b"]) as box:
        box.base_url          # http://127.0.0.1:PORT/v1
        box.models = [...]    # the next listing returns these
        box.models_status = 500
        box.models_requests   # how many times /v1/models was asked
"""
from __future__ import annotations

from typing import Sequence

import orjson
from aiohttp import web

from . import fake_openai
from .threaded import ThreadedServer

__all__ = ["FakeBox"]


class FakeBox(ThreadedServer):
    def __init__(self, models: Sequence[str], *, api_key: str | None = None,
                 max_model_len: int | None = None) -> None:
        self.models = list(models)
        self.models_status = 200
        self.models_requests = 0
        self.max_model_len = max_model_len
        self.api_key = api_key
        super().__init__(self._app)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def chat_requests(self) -> list[dict]:
        return self.app["fake"].requests   # type: ignore[index]

    def _app(self) -> web.Application:
        app = fake_openai.make_app(api_key=self.api_key)

        @web.middleware
        async def models_list(request: web.Request, handler):
            if request.method != "GET" or request.path != "/v1/models":
                return await handler(request)
            self.models_requests += 1
            if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return web.json_response({"error": {"message": "bad key", "type": "invalid_request_error",
                                                     "param": None, "code": "invalid_api_key"}}, status=401)
            if self.models_status != 200:
                return web.Response(status=self.models_status, text="box is down")
            rows = [{"id": m, "object": "model", "created": 0, "owned_by": "box",
                     **({"max_model_len": self.max_model_len} if self.max_model_len else {})} for m in self.models]
            return web.Response(body=orjson.dumps({"object": "list", "data": rows}), content_type="application/json")

        app.middlewares.append(models_list)
        return app

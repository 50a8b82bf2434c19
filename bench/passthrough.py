"""The bare pass-through reference: aiohttp server + one pooled aiohttp client on uvloop, nothing else.

No auth, no limits, no billing, no logging, no parsing: the request body goes to the upstream as is,
and the response (JSON, or SSE relayed chunk by chunk as it arrives) comes back. This is the floor
that any aiohttp-based gateway pays, so Router One's cost above it is the cost of its features.

    python bench/passthrough.py --port 9102 --upstream http://127.0.0.1:9101/v1
"""
from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    session = request.app[SESSION]
    async with session.post(request.app[UPSTREAM] + "/chat/completions", data=body,
                            headers={"Content-Type": "application/json",
                                     "Authorization": "Bearer sk-bench-upstream"}) as up:
        ctype = up.headers.get("Content-Type", "application/json")
        if not ctype.startswith("text/event-stream"):
            return web.Response(status=up.status, body=await up.read(), headers={"Content-Type": ctype})
        resp = web.StreamResponse(status=up.status, headers={"Content-Type": ctype, "Cache-Control": "no-cache"})
        await resp.prepare(request)
        async for data in up.content.iter_any():
            await resp.write(data)
        await resp.write_eof()
        return resp


def make_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=20 * 1024 * 1024)
    app[UPSTREAM] = upstream.rstrip("/")

    async def start(app: web.Application) -> None:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
                                             skip_auto_headers=("User-Agent",))

    async def stop(app: web.Application) -> None:
        await app[SESSION].close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/healthz", lambda request: web.json_response({"status": "ok"}))
    return app


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9102)
    ap.add_argument("--upstream", default="http://127.0.0.1:9101/v1")
    a = ap.parse_args()
    if uvloop is not None:
        uvloop.install()
    web.run_app(make_app(a.upstream), host=a.host, port=a.port, access_log=None, print=None)

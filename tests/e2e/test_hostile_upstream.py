"""An OpenAI-compatible upstream (a self-hosted box, say) that answers with readable JSON of the wrong
shape: stream chunks whose content or tool-call arguments are not text, tool_calls that are not a
list, a message that is not an object, a reply without usage, a 5 MB error message. Through the
real gateway on a real socket, with the official `openai` and `anthropic` SDKs: every outcome is a
documented error (or a correct reply), never a 500, and the books stay exact (the hold closed, one
usage row per request, the charge on it).

Directive in the last user message: [[reply:NAME]], NAME a key of REPLIES or STREAMS below."""
from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import anthropic
import httpx2
import openai
import orjson
import pytest
from aiohttp import web
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import OUT_MICROS, SMALL, settled_rows, write_money_catalog  # noqa: E402

from routerone.settings import ProviderSettings, Settings  # noqa: E402
from routerone.tokens import count_message_tokens, count_text_tokens  # noqa: E402
from routerone.testing.harness import Gateway  # noqa: E402
from routerone.testing.threaded import ThreadedServer  # noqa: E402

_REPLY = re.compile(r"\[\[reply:(\w+)\]\]")
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
UPSTREAM_KEY = "sk-upstream-SECRET-0123456789"
BOX_TOKEN = "box-proxy-token-SECRET-987654"     # a provider's own header (a proxy's token): as secret as its key


DEEP = "@@deep@@"    # sent as arrays nested 300 deep (`_wire`)


DEEPER = "@@deeper@@"    # 1000 deep: Python's repr of it (str()) raises RecursionError


def _wire(obj) -> bytes:
    return orjson.dumps(obj).replace(b'"' + DEEP.encode() + b'"', b"[" * 300 + b"]" * 300) \
        .replace(b'"' + DEEPER.encode() + b'"', b"[" * 1000 + b"]" * 1000)


def _message(message, usage=USAGE, finish="stop") -> dict:
    out = {"id": "chatcmpl-h", "object": "chat.completion", "created": 1, "model": "fake-small",
           "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]}
    if usage is not None:
        out["usage"] = usage
    return out


REPLIES = {   # non-streamed: (status, body)
    "content_number": (200, _message({"role": "assistant", "content": 12345})),
    "content_object": (200, _message({"role": "assistant", "content": {"a": 1}})),
    "message_string": (200, _message("hello")),
    "choice_number": (200, {**_message(None), "choices": [5]}),
    "tool_calls_string": (200, _message({"role": "assistant", "content": None, "tool_calls": "nope"}, finish="tool_calls")),
    "tool_call_number": (200, _message({"role": "assistant", "content": None, "tool_calls": [7]}, finish="tool_calls")),
    "tool_function_string": (200, _message({"role": "assistant", "content": None,
                                            "tool_calls": [{"id": "c", "type": "function", "function": "f"}]},
                                           finish="tool_calls")),
    "tool_name_number": (200, _message({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": 5, "arguments": "{}"}}]}, finish="tool_calls")),
    "tool_id_number": (200, _message({"role": "assistant", "content": None, "tool_calls": [
        {"id": 5, "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, finish="tool_calls")),
    "finish_object": (200, _message({"role": "assistant", "content": "hi"}, finish={"why": "stop"})),
    # a refusal that is not text became an Anthropic text block holding 5, and a Response whose
    # output_text raised TypeError in the openai SDK (after the charge)
    # no choice at all, usage billed: a 200 with nothing in it (/v1/messages: empty content, end_turn;
    # /v1/responses: completed, no output), where the stream's equivalent is a 502 the router fails over from
    "no_choices": (200, {**_message(None), "choices": []}),
    "refusal_number": (200, _message({"role": "assistant", "content": None, "refusal": 5})),
    "refusal_object": (200, _message({"role": "assistant", "content": None, "refusal": {"a": [1]}})),
    "tool_arguments_object": (200, _message({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}, finish="tool_calls")),
    "content_parts": (200, _message({"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "hello "}, 5, {"type": "text", "text": "there"}]})),
    "no_usage": (200, _message({"role": "assistant", "content": "word " * 40}, usage=None)),
    "no_usage_tools": (200, _message({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"city": "' + "Paris " * 30 + '"}'}}]},
        usage=None, finish="tool_calls")),
    "usage_strings": (200, _message({"role": "assistant", "content": "word " * 40},
                                    usage={"prompt_tokens": "lots", "completion_tokens": None, "total_tokens": "x"})),
    "usage_fractions": (200, _message({"role": "assistant", "content": "word " * 40},
                                      usage={"prompt_tokens": 7.5, "completion_tokens": 2.5})),
    # implausible counts with 40 words relayed: -30 billed 0 (3e9: the whole hold) before session 7
    "usage_negative": (200, _message({"role": "assistant", "content": "word " * 40},
                                     usage={"prompt_tokens": -7, "completion_tokens": -30, "total_tokens": -37})),
    "usage_absurd": (200, _message({"role": "assistant", "content": "word " * 40},
                                   usage={"prompt_tokens": 3_000_000_000, "completion_tokens": 3_000_000_000})),
    # 0 for a prompt and for 40 words relayed (a self-hosted server that counts nothing): billed $0
    "usage_zero": (200, _message({"role": "assistant", "content": "word " * 40},
                                 usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})),
    "huge_error": (400, {"error": {"message": "m" * 5_000_000, "type": "invalid_request_error", "code": "bad"}}),
    # a field nested 300 deep: JSON orjson reads (to 1024 levels) but cannot write (255): a 500 after the charge
    "deep_extra": (200, {**_message({"role": "assistant", "content": "ok"}), "x": DEEP}),
    # Router One's own key for an Anthropic upstream's message (pass-through), sent by an OpenAI-compatible
    # one: /v1/messages answered with it instead of the reply, unchecked
    "native_injected": (200, {**_message({"role": "assistant", "content": "ok"}),
                              "_native": {"type": "message", "content": [{"type": "text", "text": "SPOOFED"}]}}),
    # the envelope's fields of the wrong types, passed on as sent (a typed client, Go's say, cannot decode them)
    "odd_envelope": (200, {**_message({"role": "assistant", "content": "ok"}), "id": 5, "object": ["x"],
                           "created": "yesterday"}),
    "odd_envelope_2": (200, {**_message({"role": "assistant", "content": "ok"}), "id": {"a": 1}, "created": 1.5e300}),
    # an error message nested 1000 deep: str() of it raised RecursionError, a 500 with a traceback
    "deep_error": (400, {"error": {"message": DEEPER, "type": "invalid_request_error", "code": "bad"}}),
}


def _chunk(delta, finish=None) -> dict:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "fake-small",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


GOOD = _chunk({"role": "assistant", "content": "hello "})
STREAMS = {   # streamed: the chunk sent after a good first content chunk
    "s_content_number": _chunk({"content": 5}),
    "s_content_object": _chunk({"content": {"a": 1}}),
    "s_tool_calls_string": _chunk({"tool_calls": "x"}),
    "s_tool_call_number": _chunk({"tool_calls": [5]}),
    "s_tool_arguments_number": _chunk({"tool_calls": [{"index": 0, "id": "c", "type": "function",
                                                       "function": {"name": "f", "arguments": 5}}]}),
    "s_choices_string": {"id": "c", "choices": "abc"},
    "s_choice_number": {"id": "c", "choices": [5]},
    "s_delta_string": {"id": "c", "choices": [{"index": 0, "delta": "x"}]},
    "s_finish_object": _chunk({}, {"why": "stop"}),
    # a tool call index that is not an integer was a 500 inside /v1/messages and /v1/responses streams
    "s_tool_index_object": _chunk({"tool_calls": [{"index": {"i": 0}, "id": "c", "type": "function",
                                                   "function": {"name": "f", "arguments": "{}"}}]}),
    "s_tool_id_number": _chunk({"tool_calls": [{"index": 0, "id": 5, "type": "function",
                                                "function": {"name": "f", "arguments": "{}"}}]}),
    "s_tool_name_number": _chunk({"tool_calls": [{"index": 0, "id": "c", "type": "function",
                                                  "function": {"name": 5, "arguments": "{}"}}]}),
    "s_deep_extra": {**_chunk({"content": "there"}), "x": DEEP},
    "s_deep_error": {"error": DEEPER},
}
def _call(index, call_id, name, args) -> dict:
    out = {"type": "function", "function": {"name": name, "arguments": args}}
    out.update({k: v for k, v in (("index", index), ("id", call_id)) if v is not None})
    return out


CALLS = {   # streamed tool calls: the chunks' tool_calls, as OpenAI-compatible servers number (or not) and name them
    "s_calls_no_id": [[_call(0, None, "get", "")], [{"index": 0, "function": {"arguments": '{"a": 1}'}}]],
    "s_calls_same_index": [[_call(0, "call_1", "get", '{"a": 1}')], [_call(0, "call_2", "put", '{"b": 2}')]],
    "s_calls_no_index": [[_call(None, "call_1", "get", '{"a": 1}'), _call(None, "call_2", "put", '{"b": 2}')]],
    # a bare first delta (index and type only), the id and name in the next: one call, named
    "s_calls_bare_first": [[{"index": 0, "type": "function"}], [_call(0, "call_1", "get", "")],
                           [{"index": 0, "function": {"arguments": '{"a": 1}'}}]],
    # an id on every delta, a new one each time (no name after the first): still one call
    "s_calls_id_per_delta": [[_call(0, "call_1", "get", "")], [{"index": 0, "id": "call_x", "function": {"arguments": '{"a"'}}],
                             [{"index": 0, "id": "call_y", "function": {"arguments": ': 1}'}}]],
    # numbered from 10**9, then -1 (OpenAI numbers a choice's calls 0, 1, 2...): relayed as sent, the
    # openai SDK's stream helper raised IndexError (it files call `index` at tool_calls[index])
    "s_calls_odd_index": [[_call(10**9, "call_1", "get", '{"a"')], [{"index": 10**9, "function": {"arguments": ': 1}'}}],
                          [_call(-1, "call_2", "put", '{"b": 2}')]],
}
WHOLE_STREAMS = {   # streamed: every event but [DONE]
    # `"error": null` on every chunk (no error: the openai SDK reads it so) failed every stream with a 502
    "s_error_null": [{**_chunk({"role": "assistant", "content": "hello "}), "error": None},
                     {**_chunk({"content": "there"}), "error": None}, {**_chunk({}, "stop"), "error": None},
                     {"id": "c", "choices": [], "usage": USAGE, "error": None}],
    # an answer the upstream ended with finish_reason "error" (no error object): a clean end on every API
    "s_finish_error": [_chunk({"role": "assistant", "content": "hello "}), _chunk({"content": "there"}), "pause",
                       _chunk({}, "error"), {"id": "c", "choices": [], "usage": USAGE}],
    # text, a tool call, more text (Gemini does this): /v1/responses sent the second text as deltas of the
    # first message after its output_text.done and output_item.done
    "s_text_tool_text": [_chunk({"role": "assistant", "content": "Before. "}),
                         _chunk({"tool_calls": [_call(0, "call_1", "get", '{"a": 1}')]}), _chunk({"content": "After."}),
                         _chunk({}, "tool_calls"), {"id": "c", "choices": [], "usage": USAGE}],
    # ... and in a stream: relayed as an Anthropic event as it came (`type` 5: a 500 written into the stream)
    "s_native_injected": [{**_chunk({"role": "assistant", "content": "hello "}), "_native": {"type": 5}},
                          {**_chunk({"content": "there"}), "_native": {"type": "content_block_delta", "index": 0,
                                                                     "delta": {"type": "text_delta", "text": "SPOOF"}}},
                          _chunk({}, "stop"), {"id": "c", "choices": [], "usage": USAGE}],
    # 20,000 tool calls: /v1/responses looked each item's output_index up by list.index (quadratic: ~30 s
    # of the event loop for these 3.6 MB, every other request of the worker stalled meanwhile)
    "s_many_calls": [_chunk({"role": "assistant", "content": None, "tool_calls": [_call(i, f"call_{i}", "f", "{}")]})
                     for i in range(20_000)] + [_chunk({}, "tool_calls"), {"id": "c", "choices": [], "usage": USAGE}],
    # parallel calls whose arguments come interleaved (call 0's, call 1's, call 0's again): /v1/messages
    # had closed call 0's block when call 1's opened, and sent call 0's late arguments to the closed block
    "s_calls_interleaved": [_chunk({"role": "assistant", "content": None, "tool_calls": [_call(0, "call_1", "get", '{"a"')]}),
                            _chunk({"tool_calls": [_call(1, "call_2", "put", '{"b": 2')]}),
                            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': 1}'}}]}),
                            _chunk({"tool_calls": [{"index": 1, "function": {"arguments": '}'}}]}),
                            _chunk({}, "tool_calls"), {"id": "c", "choices": [], "usage": USAGE}],
    # the answer's one choice numbered 5, or -1: relayed as sent, the openai SDK's stream helper raised
    # IndexError (5), or gave a completion whose one choice is number -1
    **{f"s_choice_index_{name}": [{**_chunk({"role": "assistant", "content": "hello "}), "choices": [
        {"index": i, "delta": {"role": "assistant", "content": "hello "}, "finish_reason": None}]},
        {**_chunk({}), "choices": [{"index": i, "delta": {"content": "there"}, "finish_reason": "stop"}]},
        {"id": "c", "choices": [], "usage": USAGE}] for name, i in (("5", 5), ("minus_1", -1))},
    # a valid usage, then a later chunk whose usage is not an object: it replaced the valid one (with
    # nothing), and the stream was billed on Router One's estimate
    **{f"s_usage_then_{kind}": [_chunk({"role": "assistant", "content": "hello there"}), _chunk({}, "stop"),
                                {"id": "c", "choices": [], "usage": USAGE},
                                {**_chunk({}), "choices": [], "usage": bad}]
       for kind, bad in (("number", 5), ("list", [1, 2]), ("string", "lots"))},
    "s_usage_only_number": [_chunk({"role": "assistant", "content": "hello there"}), _chunk({}, "stop"),
                            {"id": "c", "choices": [], "usage": 5}],
    # a chunk after [DONE] in the same read: relayed (and counted) as if the upstream had not said it was done
    "s_after_done": [_chunk({"role": "assistant", "content": "hello"}), "pause", _chunk({}, "stop"),
                     {"id": "c", "choices": [], "usage": USAGE},
                     b"[DONE]\n\ndata: " + orjson.dumps(_chunk({"content": " SMUGGLED"}))],
    "s_after_done_held": [_chunk({"role": "assistant", "content": "hello"}), _chunk({}, "stop"),
                          {"id": "c", "choices": [], "usage": USAGE},
                          b"[DONE]\n\ndata: " + orjson.dumps(_chunk({"content": " SMUGGLED"}))],
    # a byte that is not UTF-8 in a chunk's text: replaced (U+FFFD) when the chunk came in the read that
    # ended the hold, a failed stream when it came alone in a later read (so: by how TCP cut the bytes)
    "s_bad_utf8": [_chunk({"role": "assistant", "content": "hello "}), "pause",
                   orjson.dumps(_chunk({"content": "th@re"})).replace(b"@", b"\xff"), _chunk({}, "stop"),
                   {"id": "c", "choices": [], "usage": USAGE}],
    # usage on the first chunk only (0 output tokens so far), then 40 words: billed 0 output tokens
    "s_usage_first": [{**_chunk({"role": "assistant", "content": "hello "}),
                       "usage": {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7}},
                      _chunk({"content": "word " * 40}), _chunk({}, "stop")],
}
PARTS = {"s_content_parts": _chunk({"content": [{"type": "text", "text": "there"}, {"type": "thinking", "thinking": "x"}]})}
STREAM_USAGE = {"s_usage_strings": {"prompt_tokens": "lots", "completion_tokens": None},
                "s_usage_negative": {"prompt_tokens": -7, "completion_tokens": -3},
                "s_usage_absurd": {"prompt_tokens": 3_000_000_000, "completion_tokens": 3_000_000_000},
                "s_usage_zero": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


class HostileUpstream(ThreadedServer):
    def __init__(self) -> None:
        super().__init__(self._app)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/v1beta/models/{action}", self._gemini)
        return app

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        """Anthropic-shaped, usage counts that are not numbers: "12", null."""
        body = orjson.loads(await request.read())
        text = "word " * 40
        if not body.get("stream"):
            return web.json_response({"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                                      "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                                      "usage": {"input_tokens": "12", "output_tokens": None}})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for name, data in [
            ("message_start", {"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"], "content": [],
                "usage": {"input_tokens": "12", "output_tokens": 1}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": text}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                               "usage": {"output_tokens": "forty"}}),
                ("message_stop", {"type": "message_stop"})]:
            await resp.write(f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n")
        return resp

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        if "streamGenerateContent" in request.match_info["action"]:   # usage on the first event only
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for ev in [{"candidates": [{"content": {"role": "model", "parts": [{"text": "hello "}]}}],
                        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 1}},
                       {"candidates": [{"content": {"role": "model", "parts": [{"text": "word " * 40}]}}]},
                       {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}]}]:
                await resp.write(b"data: " + orjson.dumps(ev) + b"\r\n\r\n")
            return resp
        body = await request.read()
        if b"[[reply:thoughts_absurd]]" in body:      # thoughts relayed, their count absurd
            return web.json_response({"candidates": [{"content": {"role": "model", "parts": [
                {"text": "thinking hard " * 30, "thought": True}, {"text": "word " * 40}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 40,
                                  "thoughtsTokenCount": 3_000_000_000}})
        return web.json_response({"candidates": [{"content": {"role": "model", "parts": [{"text": "word " * 40}]},
                                                  "finishReason": "STOP"}],
                                  "usageMetadata": {"promptTokenCount": "12", "candidatesTokenCount": None}})

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        name = (_REPLY.findall(str(inputs)) or ["ok"])[-1]
        data = [{"object": "embedding", "index": i, "embedding": [0.5, 0.25]} for i in range(len(inputs))]
        usage = {"prompt_tokens": 3, "total_tokens": 3}
        if name == "mixed_index":
            data[0]["index"] = "first"
        elif name == "index_object":
            data[0]["index"] = {"i": 0}
        elif name == "huge_tokens":
            usage = {"prompt_tokens": 10 ** 30, "total_tokens": 10 ** 30}
        elif name == "absurd_tokens":          # an integer, unlike 10**30 (a float to a JSON reader)
            usage = {"prompt_tokens": 3_000_000_000, "total_tokens": 3_000_000_000}
        elif name == "bool_tokens":
            usage = {"prompt_tokens": True, "total_tokens": True}
        elif name == "zero_tokens":           # no input is 0 tokens: a server that counts nothing
            usage = {"prompt_tokens": 0, "total_tokens": 0}
        elif name == "same_index":            # input 0's vector twice, input 1's lost
            data[1]["index"] = 0
        elif name == "index_beyond":
            data[1]["index"] = 7
        elif name == "mixed_lengths":
            data[1]["embedding"] = [0.5, 0.25, 0.125]
        elif name == "beyond_float32":        # inf as OpenAI's base64 (little-endian float32)
            data[1]["embedding"] = [0.5, 1e39]
        elif name == "beyond_float32_int":
            data[1]["embedding"] = [0.5, -(10 ** 39)]
        elif name == "ignores_dimensions" and "dimensions" not in body:
            return web.json_response({"error": {"message": "the fake wants dimensions here"}}, status=500)
        return web.json_response({"object": "list", "model": body["model"], "data": data, "usage": usage})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        text = next((m["content"] for m in reversed(body["messages"]) if isinstance(m.get("content"), str)), "")
        name = (_REPLY.findall(text) or ["ok"])[-1]
        if name in ("huge_reply", "huge_reply_chunked", "huge_error_body"):    # 65 MiB: valid JSON, then spaces
            status = 500 if name == "huge_error_body" else 200
            big = orjson.dumps(_message({"role": "assistant", "content": "ok"})) + b" " * (65 << 20)
            if name == "huge_reply_chunked":
                resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                for i in range(0, len(big), 1 << 20):
                    await resp.write(big[i:i + (1 << 20)])
                return resp
            return web.Response(status=status, body=big, content_type="application/json")
        if name.startswith("echo_auth"):        # a proxy that echoes the request's credentials in its errors
            status = 400 if name == "echo_auth" else 503
            err = {"error": {"message": f"rejected: Authorization: {request.headers.get('Authorization')} "
                                        f"X-Box-Token: {request.headers.get('X-Box-Token')}",
                             "type": "invalid_request_error", "code": "bad"}}
            if not body.get("stream") or name != "echo_auth_stream":
                return web.Response(status=status, body=orjson.dumps(err), content_type="application/json")
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(b"data: " + orjson.dumps(GOOD) + b"\n\n" + b"data: " + orjson.dumps(err) + b"\n\n")
            return resp
        if not body.get("stream"):
            status, reply = REPLIES.get(name, (200, _message({"role": "assistant", "content": "ok"})))
            return web.Response(status=status, body=_wire(reply), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if name in ("s_huge_line", "s_endless_event", "s_endless_empty_data"):
            # 20 MiB: a line that never ends, an event that never does (of long data lines, or of `data:`
            # lines with nothing after the colon, which were not counted: 3.5 million list entries)
            await resp.write(b"data: " + orjson.dumps(GOOD) + b"\n\n")
            piece = b"a" * 65536 if name == "s_huge_line" else (b"data: " + b"a" * 1000 + b"\n") * 64 \
                if name == "s_endless_event" else b"data:\n" * 10_000
            try:
                for _ in range((20 << 20) // len(piece)):
                    await resp.write(piece)
            except ConnectionError:
                pass                     # the gateway gave up on us: as it should
            return resp
        if name in WHOLE_STREAMS:
            for ev in WHOLE_STREAMS[name]:
                if ev == "pause":
                    await asyncio.sleep(0.2)     # what follows comes after the hold (mid-stream)
                    continue
                await resp.write(b"data: " + (ev if isinstance(ev, bytes) else orjson.dumps(ev)) + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            return resp
        if name in ("s_done_only", "s_usage_only"):          # a 200 stream that ends with nothing in it
            usage = b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}\n\n'
            await resp.write((usage if name == "s_usage_only" else b"") + b"data: [DONE]\n\n")
            return resp
        first = STREAMS.get(name.removesuffix("_first")) or PARTS.get(name)
        events = [first] if name.endswith("_first") else [GOOD, first] if first else [GOOD]
        if name in CALLS:
            events = [_chunk({"role": "assistant", "content": None, "tool_calls": calls}) for calls in CALLS[name]]
        for ev in events:
            if ev is not GOOD and name in ("s_deep_extra", "s_deep_error"):
                await asyncio.sleep(0.2)    # after the hold (which would fail it over: a 502, as s_deep_extra_first)
            await resp.write(b"data: " + _wire(ev) + b"\n\n")
        await resp.write(b"data: " + orjson.dumps(_chunk({}, "stop")) + b"\n\n")
        usage = STREAM_USAGE.get(name, USAGE)
        await resp.write(b"data: " + orjson.dumps({"id": "c", "choices": [], "usage": usage}) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp


@pytest.fixture(scope="module")
def upstream():
    with HostileUpstream() as up:
        yield up


@pytest.fixture
def gw(tmp_path: Path, upstream):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r1.db'}", demo="off", max_retries=0,
                        catalog_path=str(write_money_catalog(tmp_path / "catalog.toml")),
                        providers={"openai": ProviderSettings(api_key=UPSTREAM_KEY, base_url=upstream.url + "/v1",
                                                              headers={"X-Box-Token": "Token " + BOX_TOKEN}),
                                   "anthropic": ProviderSettings(api_key="sk-ant-up-0123456789", base_url=upstream.url),
                                   "gemini": ProviderSettings(api_key="gem-up-0123456789",
                                                              base_url=upstream.url + "/v1beta")},
                        usage_flush_interval_s=0.05)
    with Gateway(settings) as gw:
        yield gw


def _client(gw: Gateway, key: str) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)


def _ask(name: str) -> list[dict]:
    return [{"role": "user", "content": f"hi [[reply:{name}]]"}]


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_a_malformed_stream_chunk_ends_the_stream_with_an_error_and_is_settled(gw, name):
    key, account_id = gw.new_key()
    with httpx2.Client(timeout=30) as http:
        resp = http.post(gw.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": SMALL, "stream": True, "max_tokens": 50, "messages": _ask(name),
                               "stream_options": {"include_usage": True}})
    assert resp.status_code == 200
    events = [ev[6:] for ev in resp.text.split("\n\n") if ev.startswith("data: ")]
    assert events and events[-1] != "[DONE]", "a malformed upstream chunk must not end in a clean [DONE]"
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_unavailable"
    assert orjson.loads(events[-2])["choices"][0]["finish_reason"] == "error"
    # the SDK sees the failure while iterating, not a silent end
    with pytest.raises(openai.APIError):
        list(_client(gw, key).chat.completions.create(model=SMALL, stream=True, max_tokens=50, messages=_ask(name)))
    rows = settled_rows(gw, account_id, 2)
    assert sorted(r.status for r in rows) == [502, 502]
    assert all(r.completion_tokens >= 1 and r.cost_micros == r.completion_tokens * OUT_MICROS for r in rows), \
        "the text relayed before the bad chunk is billed"


@pytest.mark.parametrize("name", ["s_content_number_first", "s_choices_string_first", "s_delta_string_first",
                                  "s_done_only", "s_usage_only", "s_deep_extra_first", "s_deep_error_first"])
def test_a_malformed_first_chunk_is_a_502_before_the_stream(gw, name):
    """...and so is a stream with nothing in it but `[DONE]` (and a usage chunk): it was relayed as an
    empty 200, no choice, no finish_reason (and the usage billed), where a failover was possible."""
    key, account_id = gw.new_key()
    with pytest.raises(openai.APIStatusError) as ei:
        _client(gw, key).chat.completions.create(model=SMALL, stream=True, max_tokens=50, messages=_ask(name))
    assert ei.value.status_code == 502 and ei.value.body["code"] == "upstream_unavailable"
    [row] = settled_rows(gw, account_id, 1)
    assert (row.status, row.cost_micros) == (502, 0)


SHAPES = ["content_number", "content_object", "message_string", "choice_number", "tool_calls_string",
          "tool_call_number", "tool_function_string", "tool_arguments_object", "tool_name_number", "tool_id_number",
          "finish_object", "deep_extra", "refusal_number", "refusal_object", "no_choices"]


@pytest.mark.parametrize("name", SHAPES)
def test_a_reply_of_the_wrong_shape_is_a_502_on_every_api_and_not_charged(gw, name):
    key, account_id = gw.new_key()
    with pytest.raises(openai.APIStatusError) as ei:
        _client(gw, key).chat.completions.create(model=SMALL, max_tokens=50, messages=_ask(name))
    assert ei.value.status_code == 502 and ei.value.body["code"] == "upstream_unavailable"
    with pytest.raises(openai.APIStatusError) as ei:
        _client(gw, key).responses.create(model=SMALL, max_output_tokens=50, input=f"hi [[reply:{name}]]")
    assert ei.value.status_code == 502
    with pytest.raises(anthropic.APIStatusError) as ai:
        anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30).messages.create(
            model=SMALL, max_tokens=50, messages=_ask(name))
    assert ai.value.status_code == 502 and ai.value.body["error"]["type"] == "api_error"
    rows = settled_rows(gw, account_id, 3)
    assert [(r.status, r.cost_micros) for r in rows] == [(502, 0)] * 3


@pytest.mark.parametrize("name", ["no_usage", "no_usage_tools", "usage_strings", "usage_fractions"])
def test_a_reply_without_usage_is_billed_for_its_completion(gw, name):
    """No usage, or counts that are not numbers ("lots", null, 2.5): Router One counts (and flags)."""
    key, account_id = gw.new_key()
    flagged = gw.runtime.chat.d.billing.usage_flagged
    reply = _client(gw, key).chat.completions.create(model=SMALL, max_tokens=100, messages=_ask(name))
    assert reply.usage.completion_tokens >= 30 and reply.usage.prompt_tokens > 0, reply.usage
    assert gw.runtime.chat.d.billing.usage_flagged - flagged == (0 if name.startswith("no_usage") else 1)
    [row] = settled_rows(gw, account_id, 1)
    assert row.completion_tokens == reply.usage.completion_tokens
    assert row.cost_micros == reply.usage.completion_tokens * OUT_MICROS > 0


def test_an_upstream_error_message_nested_1000_deep_is_its_status_not_a_500(gw):
    key, account_id = gw.new_key()
    with pytest.raises(openai.APIStatusError) as ei:
        _client(gw, key).chat.completions.create(model=SMALL, max_tokens=5, messages=_ask("deep_error"))
    assert ei.value.status_code == 400 and ei.value.body["code"] == "upstream_invalid_request"
    [row] = settled_rows(gw, account_id, 1)
    assert (row.status, row.cost_micros) == (400, 0)


def test_a_huge_upstream_error_message_is_cut(gw):
    key, account_id = gw.new_key()
    with httpx2.Client(timeout=30) as http:
        resp = http.post(gw.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": SMALL, "max_tokens": 5, "messages": _ask("huge_error")})
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "bad" and err["type"] == "invalid_request_error"
    assert err["message"].startswith("openai: mmm") and len(err["message"]) <= 2_100
    assert len(resp.content) < 3_000
    [row] = settled_rows(gw, account_id, 1)
    assert (row.status, row.cost_micros) == (400, 0)


@pytest.mark.parametrize("name", ["mixed_index", "index_object", "same_index", "index_beyond", "mixed_lengths",
                                  "ignores_dimensions"])
def test_embeddings_of_the_wrong_shape_are_a_502_and_not_charged(gw, name):
    """Indexes that are not 0..n-1 each once (a vector lost, another twice: silently the wrong vector
    for an input), vectors of different lengths, or not the `dimensions` asked for (a value no
    float32 holds: test_embedding_values_beyond_float32_are_a_502_and_not_charged)
    were passed on."""
    key, account_id = gw.new_key()
    dims = {"dimensions": 3} if name == "ignores_dimensions" else {}
    with pytest.raises(openai.APIStatusError) as ei:
        _client(gw, key).embeddings.create(model="text-embedding-3-small", input=["a", f"b [[reply:{name}]]"], **dims)
    assert ei.value.status_code == 502 and ei.value.body["code"] == "upstream_unavailable"
    [row] = settled_rows(gw, account_id, 1)
    assert (row.status, row.cost_micros) == (502, 0)


@pytest.mark.parametrize("fmt", ["float", "base64"])
@pytest.mark.parametrize("name", ["beyond_float32", "beyond_float32_int"])
def test_embedding_values_beyond_float32_are_a_502_and_not_charged(gw, name, fmt):
    """A value no float32 holds (embeddings are float32) became inf in base64 output, passed on and
    charged (and as floats the same reply was passed on as sent): an invalid reply in both formats."""
    key, account_id = gw.new_key()
    with pytest.raises(openai.APIStatusError) as ei:
        _client(gw, key).embeddings.create(model="text-embedding-3-small", input=["a", f"b [[reply:{name}]]"],
                                           encoding_format=fmt)
    assert ei.value.status_code == 502 and ei.value.body["code"] == "upstream_unavailable"
    assert "float32" in ei.value.body["message"]
    [row] = settled_rows(gw, account_id, 1)
    assert (row.status, row.cost_micros) == (502, 0)


def test_absurd_embedding_usage_costs_at_most_the_hold(gw):
    key, account_id = gw.new_key()
    resp = _client(gw, key).embeddings.create(model="text-embedding-3-small", input=["a [[reply:huge_tokens]]"])
    assert len(resp.data) == 1
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200 and 0 < row.cost_micros <= 1_000, row


@pytest.mark.parametrize("name", sorted(CALLS))
def test_streamed_tool_calls_without_ids_or_told_apart_by_id_only_reach_messages_and_responses(gw, name):
    """/v1/messages opened a tool_use block only on a delta with an id: a call without one was lost
    (stop_reason tool_use, no block). Both encoders keyed calls by index alone: two calls numbered 0
    (or not numbered) became one, its arguments '{"a": 1}{"b": 2}', the second call lost. The chat
    stream relayed the upstream's numbers: the openai SDK's stream helper merged two calls numbered 0
    into one named "getput", and raised on calls not numbered (TypeError), not from 0 (IndexError)
    or a first delta without a function (AssertionError)."""
    want = [("get", {"a": 1})] if name in ("s_calls_no_id", "s_calls_id_per_delta", "s_calls_bare_first") \
        else [("get", {"a": 1}), ("put", {"b": 2})]
    key, account_id = gw.new_key()
    with _client(gw, key).chat.completions.stream(model=SMALL, max_tokens=50, messages=_ask(name)) as stream:
        got = stream.get_final_completion().choices[0].message.tool_calls
    assert [(c.name, orjson.loads(c.arguments)) for c in (f.function for f in got)] == want, got
    assert len({c.id for c in got}) == len(got)
    ant = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    with ant.messages.stream(model=SMALL, max_tokens=50, messages=_ask(name)) as stream:
        msg = stream.get_final_message()
    blocks = [b for b in msg.content if b.type == "tool_use"]
    assert [(b.name, b.input) for b in blocks] == want, msg.content
    assert all(b.id for b in blocks) and len({b.id for b in blocks}) == len(blocks)
    if name != "s_calls_no_id":
        assert [b.id for b in blocks] == ["call_1", "call_2"][:len(want)]
    events = list(_client(gw, key).responses.create(model=SMALL, stream=True, max_output_tokens=50,
                                                    input=f"hi [[reply:{name}]]"))
    assert events[-1].type == "response.completed"
    calls = [o for o in events[-1].response.output if o.type == "function_call"]
    assert [(c.name, orjson.loads(c.arguments)) for c in calls] == want
    assert len({c.call_id for c in calls}) == len(calls)
    rows = settled_rows(gw, account_id, 3)
    assert all(r.status == 200 for r in rows)


@pytest.mark.parametrize("name", ["s_choice_index_5", "s_choice_index_minus_1"])
def test_a_stream_s_choice_numbered_other_than_0_reaches_the_openai_sdk_as_choice_0(gw, name):
    key, account_id = gw.new_key()
    with _client(gw, key).chat.completions.stream(model=SMALL, max_tokens=50, messages=_ask(name)) as stream:
        done = stream.get_final_completion()
    assert [(c.index, c.message.content, c.finish_reason) for c in done.choices] == [(0, "hello there", "stop")]
    [row] = settled_rows(gw, account_id, 1)
    assert (row.status, row.completion_tokens) == (200, 3)


def test_interleaved_tool_call_arguments_never_reach_a_closed_block(gw):
    """An OpenAI-protocol upstream interleaving two calls' arguments: /v1/messages closed call 0's
    tool_use block when call 1's opened, then sent call 0's remaining arguments to it as
    input_json_delta (a client acting at content_block_stop ran the call with `{}`)."""
    key, account_id = gw.new_key()
    ant = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    stopped: dict[int, dict] = {}         # block index -> the tool's input when its stop came
    with ant.messages.stream(model=SMALL, max_tokens=50, messages=_ask("s_calls_interleaved")) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                assert event.index not in stopped, f"a delta to block {event.index} after its stop"
            elif event.type == "content_block_stop":
                stopped[event.index] = dict(event.content_block.input)
        msg = stream.get_final_message()
    assert [(b.name, b.input) for b in msg.content] == [("get", {"a": 1}), ("put", {"b": 2})]
    assert stopped == {0: {"a": 1}, 1: {"b": 2}}
    assert msg.stop_reason == "tool_use"
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200


@pytest.mark.parametrize("kind", ["number", "list", "string"])
def test_a_later_usage_that_is_not_an_object_keeps_the_valid_one(gw, kind):
    key, account_id = gw.new_key()
    flagged = gw.runtime.chat.d.billing.usage_flagged
    chunks = list(_client(gw, key).chat.completions.create(
        model=SMALL, stream=True, max_tokens=100, messages=_ask(f"s_usage_then_{kind}"),
        stream_options={"include_usage": True}))
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 3), chunks[-1].usage
    assert gw.runtime.chat.d.billing.usage_flagged == flagged
    [row] = settled_rows(gw, account_id, 1)
    assert (row.status, row.prompt_tokens, row.completion_tokens) == (200, 7, 3)
    assert row.cost_micros == 3 * OUT_MICROS


def test_a_stream_whose_only_usage_is_not_an_object_is_billed_on_router_ones_count(gw):
    key, account_id = gw.new_key()
    chunks = list(_client(gw, key).chat.completions.create(
        model=SMALL, stream=True, max_tokens=100, messages=_ask("s_usage_only_number"),
        stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens == count_text_tokens("hello there")
    [row] = settled_rows(gw, account_id, 1)
    assert (row.status, row.completion_tokens) == (200, count_text_tokens("hello there"))
    assert row.cost_micros == row.completion_tokens * OUT_MICROS


def test_a_stream_whose_chunks_say_error_null_is_not_an_error(gw):
    key, account_id = gw.new_key()
    chunks = list(_client(gw, key).chat.completions.create(
        model=SMALL, stream=True, max_tokens=50, messages=_ask("s_error_null"), stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello there"
    assert chunks[-1].usage.completion_tokens == USAGE["completion_tokens"]
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200 and row.cost_micros == USAGE["completion_tokens"] * OUT_MICROS


def test_an_answer_the_upstream_ended_with_finish_reason_error_is_a_failed_stream_on_every_api(gw):
    """finish_reason "error" then [DONE] (an OpenRouter-style error chunk without its error object) was
    a clean end: /v1/messages said stop_reason end_turn and message_stop, /v1/responses
    response.completed, the request a 200 and a success for the deployment's health."""
    key, account_id = gw.new_key()
    with pytest.raises(openai.APIError):
        list(_client(gw, key).chat.completions.create(model=SMALL, stream=True, max_tokens=50,
                                                      messages=_ask("s_finish_error")))
    with httpx2.Client(timeout=30) as http:
        msgs = http.post(gw.url + "/v1/messages", headers={"x-api-key": key},
                         json={"model": SMALL, "stream": True, "max_tokens": 50, "messages": _ask("s_finish_error")})
        resp = http.post(gw.base_url + "/responses", headers={"Authorization": f"Bearer {key}"},
                         json={"model": SMALL, "stream": True, "max_output_tokens": 50,
                               "input": "hi [[reply:s_finish_error]]"})
    assert msgs.status_code == 200 and "event: error" in msgs.text and "message_stop" not in msgs.text
    assert resp.status_code == 200 and "response.failed" in resp.text and "response.completed" not in resp.text
    rows = settled_rows(gw, account_id, 3)
    assert [r.status for r in rows] == [502] * 3
    assert all(r.cost_micros == r.completion_tokens * OUT_MICROS > 0 for r in rows), "what was relayed is billed"


def test_an_openai_compatible_upstream_cannot_pass_its_own_anthropic_message_through(gw):
    """`_native` is Router One's own key (an Anthropic upstream's message or event, relayed as it came
    to /v1/messages); one in an OpenAI-compatible upstream's reply was taken for it."""
    key, account_id = gw.new_key()
    ant = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    msg = ant.messages.create(model=SMALL, max_tokens=50, messages=_ask("native_injected"))
    assert [b.text for b in msg.content] == ["ok"]
    with httpx2.Client(timeout=30) as http:
        raw = http.post(gw.url + "/v1/messages", headers={"x-api-key": key},
                        json={"model": SMALL, "stream": True, "max_tokens": 50, "messages": _ask("s_native_injected")})
    assert raw.status_code == 200 and "SPOOF" not in raw.text and "event: error" not in raw.text, raw.text[-300:]
    with ant.messages.stream(model=SMALL, max_tokens=50, messages=_ask("s_native_injected")) as stream:
        assert stream.get_final_message().content[0].text == "hello there"
    chat = _client(gw, key).chat.completions.create(model=SMALL, max_tokens=50, messages=_ask("native_injected"))
    assert "_native" not in (chat.model_extra or {})
    rows = settled_rows(gw, account_id, 4)
    assert all(r.status == 200 for r in rows)


@pytest.mark.parametrize("name", ["odd_envelope", "odd_envelope_2"])
def test_a_reply_s_id_object_and_created_reach_the_client_with_their_types(gw, name):
    key, account_id = gw.new_key()
    with httpx2.Client(timeout=30) as http:
        resp = http.post(gw.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": SMALL, "max_tokens": 5, "messages": _ask(name)})
    assert resp.status_code == 200
    body = resp.json()
    assert isinstance(body["id"], str) and body["id"] and body["object"] == "chat.completion"
    assert isinstance(body["created"], int) and abs(body["created"] - time.time()) < 60
    assert body["choices"][0]["message"]["content"] == "ok"
    settled_rows(gw, account_id, 1)


def test_a_responses_stream_with_20000_tool_calls_takes_linear_time(gw):
    key, account_id = gw.new_key()
    t0 = time.monotonic()
    with httpx2.Client(timeout=120) as http:
        resp = http.post(gw.base_url + "/responses", headers={"Authorization": f"Bearer {key}"},
                         json={"model": SMALL, "stream": True, "max_output_tokens": 50, "store": False,
                               "input": "hi [[reply:s_many_calls]]"})
    elapsed = time.monotonic() - t0
    assert resp.status_code == 200 and "response.completed" in resp.text
    assert resp.text.count("event: response.output_item.done") == 20_000
    assert elapsed < 10, f"{elapsed:.1f} s"
    settled_rows(gw, account_id, 1)


@pytest.mark.parametrize("name", ["s_after_done", "s_after_done_held"])
def test_nothing_after_the_upstreams_done_is_relayed(gw, name):
    key, account_id = gw.new_key()
    chunks = list(_client(gw, key).chat.completions.create(model=SMALL, stream=True, max_tokens=50, messages=_ask(name),
                                                           stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello"
    assert chunks[-1].usage.completion_tokens == USAGE["completion_tokens"]
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200 and row.cost_micros == USAGE["completion_tokens"] * OUT_MICROS


def test_text_after_a_tool_call_is_a_new_message_in_a_responses_stream(gw):
    key, account_id = gw.new_key()
    events = list(_client(gw, key).responses.create(model=SMALL, stream=True, max_output_tokens=50,
                                                    input="hi [[reply:s_text_tool_text]]"))
    done: set[str] = set()
    for ev in events:
        if ev.type == "response.output_text.delta":
            assert ev.item_id not in done, "a text delta for a message already done"
        elif ev.type == "response.output_item.done":
            done.add(ev.item.id)
    out = events[-1].response.output
    assert [o.type for o in out] == ["message", "function_call", "message"]
    assert (out[0].content[0].text, out[2].content[0].text) == ("Before. ", "After.")
    assert all(o.status == "completed" for o in out)
    settled_rows(gw, account_id, 1)


def test_a_byte_that_is_not_utf8_is_replaced_wherever_the_read_boundaries_fall(gw):
    key, account_id = gw.new_key()
    chunks = list(_client(gw, key).chat.completions.create(model=SMALL, stream=True, max_tokens=50,
                                                           messages=_ask("s_bad_utf8")))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello th\ufffdre"
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200 and row.cost_micros == USAGE["completion_tokens"] * OUT_MICROS


@pytest.mark.parametrize("model", [SMALL, "gemini-2.5-flash"])
def test_a_usage_report_followed_by_more_output_is_not_the_final_count(gw, model):
    """A usage that came before more text (an upstream reporting once, early) is not what the stream
    generated: its output count is Router One's count of what was relayed (and flagged)."""
    key, account_id = gw.new_key()
    flagged = gw.runtime.chat.d.billing.usage_flagged
    chunks = list(_client(gw, key).chat.completions.create(
        model=model, stream=True, max_tokens=100, messages=_ask("s_usage_first"), stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert text == "hello " + "word " * 40 and usage.prompt_tokens == 7
    assert usage.completion_tokens == count_text_tokens(text), usage
    assert gw.runtime.chat.d.billing.usage_flagged > flagged
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200 and row.completion_tokens == usage.completion_tokens
    if model == SMALL:
        assert row.cost_micros == usage.completion_tokens * OUT_MICROS > 0


@pytest.mark.parametrize("name", ["absurd_tokens", "bool_tokens", "zero_tokens"])
def test_implausible_embedding_usage_is_billed_for_what_router_one_counted(gw, name):
    """prompt_tokens 3e9 (an integer) billed the whole hold (one token per byte of input, ~5x the
    count) and reached the client as sent; `true` was billed as 1 token and sent as `true`; 0 (no
    input is 0 tokens) was billed $0. As for chat, an implausible count is Router One's own count,
    and the client sees what was billed."""
    key, account_id = gw.new_key()
    inputs = [f"[[reply:{name}]] " + "word " * 1600 + str(i) for i in range(8)]
    resp = _client(gw, key).embeddings.create(model="text-embedding-3-small", input=inputs)
    own = sum(count_text_tokens(t) for t in inputs)
    assert resp.usage.prompt_tokens == own, resp.usage
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200 and row.prompt_tokens == own, row
    assert row.cost_micros == -(-own * 20_000 // 1_000_000) == round(resp.usage.model_extra["cost"] * 1_000_000)


@pytest.mark.parametrize("name", ["s_finish_object", "s_content_number", "s_tool_calls_string", "s_tool_index_object"])
def test_a_malformed_stream_chunk_ends_messages_and_responses_streams_with_an_error(gw, name):
    """/v1/messages and /v1/responses translate the chat stream: a bad chunk was a 500 written into it."""
    key, account_id = gw.new_key()
    with httpx2.Client(timeout=30) as http:
        msgs = http.post(gw.url + "/v1/messages", headers={"x-api-key": key},
                         json={"model": SMALL, "stream": True, "max_tokens": 50, "messages": _ask(name)})
        resp = http.post(gw.base_url + "/responses", headers={"Authorization": f"Bearer {key}"},
                         json={"model": SMALL, "stream": True, "max_output_tokens": 50, "input": f"hi [[reply:{name}]]"})
    assert msgs.status_code == 200 and "event: error" in msgs.text and "message_stop" not in msgs.text
    assert resp.status_code == 200 and "response.failed" in resp.text and "response.completed" not in resp.text
    rows = settled_rows(gw, account_id, 2)
    assert sorted(r.status for r in rows) == [502, 502]


def test_a_stream_whose_usage_counts_are_not_numbers_is_billed_for_what_it_relayed(gw):
    key, account_id = gw.new_key()
    chunks = list(_client(gw, key).chat.completions.create(
        model=SMALL, stream=True, max_tokens=50, messages=_ask("s_usage_strings"),
        stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens >= 1, usage
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200 and row.completion_tokens == usage.completion_tokens
    assert row.cost_micros == usage.completion_tokens * OUT_MICROS > 0


@pytest.mark.parametrize("name, stream", [("huge_reply", False), ("huge_reply_chunked", False),
                                          ("huge_error_body", True)])
def test_an_upstream_reply_over_64_mib_is_a_502_read_no_further(gw, name, stream):
    key, account_id = gw.new_key()
    with pytest.raises(openai.APIStatusError) as ei:
        _client(gw, key).chat.completions.create(model=SMALL, max_tokens=5, stream=stream, messages=_ask(name))
    assert ei.value.status_code == 502 and ei.value.body["code"] == "upstream_unavailable"
    assert "larger than" in ei.value.body["message"]
    [row] = settled_rows(gw, account_id, 1)
    assert (row.status, row.cost_micros) == (502, 0)


@pytest.mark.parametrize("name", ["s_huge_line", "s_endless_event", "s_endless_empty_data"])
def test_a_stream_event_over_16_mib_ends_the_stream_quickly_and_is_settled(gw, name):
    """A 200 MB line without a line end took the gateway's loop ~1 minute (quadratic copying) and
    ~400 MB of memory; now 16 MiB is the bound of one event."""
    key, account_id = gw.new_key()
    t0 = time.monotonic()
    with httpx2.Client(timeout=60) as http:
        resp = http.post(gw.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": SMALL, "stream": True, "max_tokens": 50, "messages": _ask(name)})
    assert time.monotonic() - t0 < 20
    events = [ev[6:] for ev in resp.text.split("\n\n") if ev.startswith("data: ")]
    err = orjson.loads(events[-1])["error"]
    assert err["code"] == "upstream_unavailable" and "larger than" in err["message"]
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 502 and row.completion_tokens >= 1 and row.cost_micros == row.completion_tokens * OUT_MICROS


@pytest.mark.parametrize("name, stream", [("echo_auth", False), ("echo_auth_503", False), ("echo_auth_stream", True)])
def test_an_upstream_that_echoes_our_key_does_not_hand_it_to_the_client(gw, name, stream):
    key, account_id = gw.new_key()
    with httpx2.Client(timeout=30) as http:
        resp = http.post(gw.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": SMALL, "max_tokens": 5, "stream": stream, "messages": _ask(name)})
    assert resp.status_code in (400, 502, 503), resp.text[:300]
    assert "rejected: Authorization: Bearer [redacted] X-Box-Token: [redacted]" in resp.text, resp.text[:300]
    assert UPSTREAM_KEY not in resp.text and BOX_TOKEN not in resp.text


def test_content_as_a_list_of_parts_reaches_every_api_as_text(gw):
    """Some servers (Mistral's reasoning models) send content as a list of parts: it was passed on as a
    list (an Anthropic text block holding a list; a 500 inside a /v1/responses stream)."""
    key, account_id = gw.new_key()
    client = _client(gw, key)
    assert client.chat.completions.create(model=SMALL, max_tokens=50, messages=_ask("content_parts")) \
        .choices[0].message.content == "hello there"
    ant = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    assert ant.messages.create(model=SMALL, max_tokens=50, messages=_ask("content_parts")).content[0].text \
        == "hello there"
    assert client.responses.create(model=SMALL, max_output_tokens=50, input="hi [[reply:content_parts]]") \
        .output_text == "hello there"
    chunks = list(client.chat.completions.create(model=SMALL, stream=True, max_tokens=50, messages=_ask("s_content_parts")))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello there"
    events = list(client.responses.create(model=SMALL, stream=True, max_output_tokens=50,
                                          input="hi [[reply:s_content_parts]]"))
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "hello there"
    rows = settled_rows(gw, account_id, 5)
    assert all(r.status == 200 for r in rows)


@pytest.mark.parametrize("model, stream", [("claude-3-5-haiku-20241022", False), ("claude-3-5-haiku-20241022", True),
                                           ("gemini-2.5-flash", False)])
def test_anthropic_and_gemini_usage_counts_that_are_not_numbers_are_counted(gw, model, stream):
    """Anthropic's "12"/null/"forty" and Gemini's "12"/null were billed as 0 tokens, unflagged."""
    key, account_id = gw.new_key()
    flagged = gw.runtime.chat.d.billing.usage_flagged
    client = _client(gw, key)
    if stream:
        chunks = list(client.chat.completions.create(model=model, stream=True, max_tokens=100, messages=_ask("x"),
                                                     stream_options={"include_usage": True}))
        usage = chunks[-1].usage
    else:
        usage = client.chat.completions.create(model=model, max_tokens=100, messages=_ask("x")).usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens >= 30, usage
    assert gw.runtime.chat.d.billing.usage_flagged > flagged
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200 and row.completion_tokens == usage.completion_tokens and row.cost_micros > 0


def test_gemini_absurd_thoughts_count_is_billed_for_what_router_one_counted_and_flagged(gw):
    """thoughtsTokenCount 3e9 was taken as 0, unflagged: 40 completion tokens billed for an answer
    with 90 words of thinking relayed. Now the completion is Router One's count (thoughts included,
    never below the 40 candidates' tokens), flagged as other implausible counts are."""
    key, account_id = gw.new_key()
    flagged = gw.runtime.chat.d.billing.usage_flagged
    reply = _client(gw, key).chat.completions.create(model="gemini-2.5-flash", max_tokens=100,
                                                     messages=_ask("thoughts_absurd"))
    message = reply.choices[0].message
    relayed = count_text_tokens("\n".join([message.model_extra["reasoning_content"], message.content]))
    assert reply.usage.completion_tokens == relayed > 40, reply.usage
    assert gw.runtime.chat.d.billing.usage_flagged - flagged == 1
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200 and row.completion_tokens == relayed and row.cost_micros > 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("name", ["usage_negative", "usage_absurd", "usage_zero"])
def test_implausible_usage_counts_are_billed_for_what_router_one_counted(gw, name, stream):
    """Negative counts (-7, -30) billed 0 although text was relayed, absurd ones (3e9) the whole
    hold: both are now replaced by Router One's own count, as counts that are not numbers are. So
    is 0 for a prompt (every request has one) or for output that was relayed: 0 and 0 with 40 words
    relayed billed $0 (session 15)."""
    key, account_id = gw.new_key()
    flagged = gw.runtime.chat.d.billing.usage_flagged
    ask = _ask(("s_" if stream else "") + name)
    if stream:
        chunks = list(_client(gw, key).chat.completions.create(
            model=SMALL, stream=True, max_tokens=100, messages=ask, stream_options={"include_usage": True}))
        relayed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        usage = chunks[-1].usage
    else:
        reply = _client(gw, key).chat.completions.create(model=SMALL, max_tokens=100, messages=ask)
        relayed, usage = reply.choices[0].message.content, reply.usage
    own = (count_message_tokens(ask[0]["content"], 1),   # the prompt counted, not the hold's bytes bound
            count_text_tokens(relayed))
    assert relayed and own[1] > 0
    assert (usage.prompt_tokens, usage.completion_tokens) == own
    assert gw.runtime.chat.d.billing.usage_flagged - flagged == 1
    [row] = settled_rows(gw, account_id, 1)
    assert row.status == 200 and (row.prompt_tokens, row.completion_tokens) == own
    assert row.cost_micros == own[1] * OUT_MICROS == round(usage.model_extra["cost"] * 1_000_000)

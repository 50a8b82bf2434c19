"""What each self-hosted OpenAI-compatible server really sends, as data for the fake local server
(`fake_local.LocalServer`). Each field says where it was read.

Sources (read for session 16's local-server check):
- Ollama: ollama/ollama `openai/openai.go` (ErrorResponse, ToChunk, ToUsage, ToListCompletion,
  ChatCompletionRequest: `max_tokens` only) and `middleware/openai.go` (ChatWriter: the usage chunk
  with `choices: []` only with stream_options.include_usage, then `data: [DONE]`; errors rewritten
  by NewError to `{"error": {"message", "type", "param": null, "code": null}}`). Before v0.5.2
  (commit e28f2d49 "openai: return usage as final chunk for streams", Dec 2024) a stream had no
  usage at all, whatever stream_options said.
- llama.cpp `llama-server`: ggml-org/llama.cpp `tools/server/server-common.cpp`
  (format_error_response: `{"code": <int>, "message", "type"}` under "error", 400/401/404/500/501/503)
  and `tools/server/server-task.cpp` (to_json_oaicompat_chat[_stream]: `timings` on the reply and on
  the last chunk, the usage chunk only with include_usage, no `logprobs`/`refusal`). Builds before
  the include_usage change (e.g. b6097, as quoted in g0t4/ask-openai.nvim
  `lua/ask-openai/rewrites/harmony/NOTES.md`) put `usage` and `timings` on the finish chunk itself,
  with its choices, always. `/v1/models` lists the model file's path as its id unless `--alias`.
  ikawrakow/ik_llama.cpp (its fork) ended a stream without `data: [DONE]` unless started with
  `--send-done` (issue #467, PR #470).
- LM Studio: https://lmstudio.ai/docs/api/openai-api (the /v1 endpoints: models, chat/completions,
  embeddings, completions, responses); its ids are publisher/name (`qwen/qwen3-8b`) and embedding
  models are listed in /v1/models beside the LLMs.
- Hugging Face TGI: huggingface/text-generation-inference `router/src/server.rs` (ErrorResponse
  `{"error": "...", "error_type": "..."}`; 422 validation, 424 generation, 429 overloaded; a stream
  error is `data: {"error": {"message", "http_status_code": 422}}`; `/v1/models` answers the one
  `model_id`; `model` in a request is unused, "tgi" by convention) and `router/src/lib.rs` /
  `router/src/chat.rs` (ChatCompletionChunk::new: `id: ""`; usage chunk with `choices: []` only with
  include_usage; `usage: null` on every other chunk; `max_completion_tokens` an alias of max_tokens).
  No /v1/embeddings (that is TEI).
- SGLang: sgl-project/sglang `python/sglang/srt/entrypoints/openai/protocol.py` (ErrorResponse,
  top level: `{"object": "error", "message", "type": "BadRequestError", "param": null, "code": 400}`),
  `serving_base.py`, `utils.py` (should_include_usage: usage chunk only with include_usage unless the
  server default says so).
- LocalAI: mudler/LocalAI `core/http/endpoints/openai/chat.go` (errors `{"error": {"message",
  "type", "code"}}`, a stream error as a data event then `[DONE]`) and commit 8af963bd "comply with
  OpenAI usage / stream_options spec" (before it, every chunk carried a running `usage`, zeros
  early, on the tools path zeros to the end: #9927).
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Flavor", "FLAVORS"]


@dataclass(frozen=True)
class Flavor:
    name: str
    models: tuple[str, ...]
    error_shape: str                 # ollama | llamacpp | tgi | sglang | lmstudio | localai
    usage_mode: str = "trailer"      # trailer (only with include_usage) | finish_chunk | every_chunk | none
    timings: bool = False            # llama.cpp's `timings` object on the reply and the last chunk
    empty_id: bool = False           # TGI: `id: ""` on every chunk and reply
    null_usage_chunks: bool = False  # TGI: `"usage": null` on every chunk without usage
    whole_tool_calls: bool = False   # Ollama: a tool call arrives whole, in one chunk
    role_every_chunk: bool = False   # Ollama: `role: "assistant"` in every delta
    max_completion_tokens: bool = True   # False: ignored (Ollama reads only max_tokens)
    embeddings: bool = True
    done: bool = True                # False: the stream ends after its last chunk, no `data: [DONE]`
    validation_status: int = 400     # TGI: 422 for a request it will not take
    fingerprint: str = "fp_local"
    extra: dict = field(default_factory=dict)


FLAVORS: dict[str, Flavor] = {f.name: f for f in (
    Flavor("ollama", ("llama3.2:latest", "qwen2.5:7b", "nomic-embed-text:latest"), "ollama",
           whole_tool_calls=True, role_every_chunk=True, max_completion_tokens=False, fingerprint="fp_ollama"),
    Flavor("ollama-0.5.1", ("llama3.2:latest",), "ollama", usage_mode="none", whole_tool_calls=True,
           role_every_chunk=True, max_completion_tokens=False, fingerprint="fp_ollama"),
    Flavor("llamacpp", ("/models/Qwen2.5-7B-Instruct-Q4_K_M.gguf",), "llamacpp", timings=True,
           fingerprint="b6097-9515c613"),
    Flavor("llamacpp-old", ("/models/Qwen2.5-7B-Instruct-Q4_K_M.gguf",), "llamacpp", usage_mode="finish_chunk",
           timings=True, fingerprint="b6097-9515c613"),
    Flavor("ik-llamacpp", ("Qwen2.5-7B-Instruct-Q4_K_M",), "llamacpp", timings=True, done=False),
    Flavor("lmstudio", ("qwen/qwen3-8b", "text-embedding-nomic-embed-text-v1.5"), "lmstudio"),
    Flavor("tgi", ("meta-llama/Llama-3.1-8B-Instruct",), "tgi", empty_id=True, null_usage_chunks=True,
           embeddings=False, validation_status=422, fingerprint="3.3.4-sha-9f38d93"),
    Flavor("sglang", ("Qwen/Qwen2.5-7B-Instruct",), "sglang"),
    Flavor("localai", ("gpt-4", "text-embedding-ada-002"), "localai"),
    Flavor("localai-old", ("hermes-2-pro-mistral",), "localai", usage_mode="every_chunk"),
)}


def error_body(flavor: Flavor, status: int, message: str) -> dict:
    """The server's error body for `status` (after validation_status mapping)."""
    shape = flavor.error_shape
    if shape == "ollama":
        typ = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        return {"error": {"message": message, "type": typ, "param": None, "code": None}}
    if shape in ("llamacpp", "localai"):
        typ = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               503: "unavailable_error"}.get(status, "server_error")
        return {"error": {"code": status, "message": message, "type": typ}}
    if shape == "tgi":
        typ = {422: "validation", 424: "generation", 429: "overloaded"}.get(status, "incomplete_generation")
        return {"error": message, "error_type": typ}
    if shape == "sglang":
        return {"object": "error", "message": message, "type": "BadRequestError" if status < 500
                else "InternalServerError", "param": None, "code": status}
    return {"error": message}      # lmstudio: a plain string


def stream_error(flavor: Flavor, message: str, status: int = 500) -> dict | None:
    """The data of the error event a server sends inside a 200 stream (None: it sends none).
    TGI sends a request it will not take (validation, overloaded) this way too, always as 422;
    llama.cpp its exceed_context_size_error (400) when the first result is an error."""
    shape = flavor.error_shape
    if shape == "tgi":
        return {"error": {"message": message, "http_status_code": 422}}
    if shape == "sglang":
        return {"error": error_body(flavor, status, message)}
    if shape == "localai":
        return {"error": {"message": message, "type": "server_error", "code": "server_error"}}
    if shape == "llamacpp":
        return {"error": error_body(flavor, status, message)["error"]}
    return {"error": {"message": message}}

"""Self-hosted servers' error bodies through the OpenAI-compatible adapter, sans I/O, one fixture per
behaviour (fixtures/openai_compat/): the status and the server's explanation reach Router One's error.

- SGLang (and older vLLM, FastChat) send the error object at the top level (`{"object": "error",
  "message": ...}`): its message was dropped ("The upstream provider rejected the request");
- TGI refuses a streamed request it will not take inside a 200 (`{"error": {"message",
  "http_status_code": 422}}` as the first event), llama.cpp its context overflow with the integer
  `code` 400: a 502 upstream_unavailable, where the same request unstreamed is a 400; an error
  after output stays a failure (502), whatever status it names (TGI says 422 for every one)."""
from __future__ import annotations

from pathlib import Path

import pytest

from routerone.errors import UpstreamBadRequest, UpstreamUnavailable
from routerone.providers.base import Deployment, Vendor
from routerone.providers.openai_compat import OpenAICompatAdapter
from routerone.providers.sse import SSEDecoder

FIXTURES = Path(__file__).parent / "fixtures" / "openai_compat"
DEP = Deployment("m", Vendor(name="box", protocol="openai", base_url="http://box/v1"), "m")


def _stream(name: str) -> list:
    translator = OpenAICompatAdapter().stream_translator(None, DEP)     # type: ignore[arg-type]
    out = []
    for ev in SSEDecoder().feed((FIXTURES / name).read_bytes()):
        out.extend(translator.feed(ev))
    return out


@pytest.mark.parametrize("name, status, says", [
    ("sglang_error_400.json", 400, "maximum context length of 4096"),
    ("tgi_validation_422.json", 422, "must be <= 4096"),
    ("llamacpp_context_400.json", 400, "exceeds the available context size")])
def test_an_error_body_keeps_the_servers_explanation(name, status, says) -> None:
    err = OpenAICompatAdapter().map_error(status, {}, (FIXTURES / name).read_bytes(), DEP)
    assert isinstance(err, UpstreamBadRequest) and err.status == 400
    assert says in err.message and err.message.startswith("box: ")


@pytest.mark.parametrize("name", ["tgi_refusal_stream.sse", "llamacpp_refusal_stream.sse"])
def test_a_refusal_as_the_streams_first_event_is_a_400(name) -> None:
    with pytest.raises(UpstreamBadRequest) as exc:
        _stream(name)
    assert exc.value.status == 400 and ("context" in exc.value.message or "4096" in exc.value.message)


@pytest.mark.parametrize("name, says", [("tgi_failure_after_output_stream.sse", "CUDA out of memory"),
                                        ("llamacpp_error_after_reasoning_stream.sse", "context size")])
def test_an_error_after_output_is_a_failure_whatever_status_it_names(name, says) -> None:
    """Output includes reasoning (llama.cpp's reasoning_content, vLLM's and Ollama's reasoning)."""
    with pytest.raises(UpstreamUnavailable) as exc:
        _stream(name)
    assert exc.value.status == 502 and says in exc.value.message

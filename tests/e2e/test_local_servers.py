"""Router One in front of the self-hosted servers an OpenRouter/LiteLLM user points it at (Ollama,
llama.cpp's llama-server, LM Studio, TGI, SGLang, LocalAI; vLLM has test_byom.py), configured as
the README says (a `[providers.NAME]` table with the server's base_url), with the official `openai`
and `anthropic` SDKs as clients. Each fake server answers as the real one does
(routerone/testing/local_flavors.py cites what was read): its model ids, error bodies, usage only
with include_usage or on the finish chunk, `timings`, empty ids, whole tool calls.

Every answer must reach the client as OpenAI's (or Anthropic's) would, errors in the documented
shape and status with the server's explanation, and every request billed once with the server's
token counts."""
from __future__ import annotations

import sys
from pathlib import Path

import anthropic
import openai
import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from money_procs import settled_rows  # noqa: E402

from routerone.settings import load_settings  # noqa: E402
from routerone.testing.fake_local import ERROR_TEXT, FLAVORS, LocalServer  # noqa: E402
from routerone.testing.harness import ADMIN_KEY, Gateway  # noqa: E402
from routerone.tokens import MESSAGE_OVERHEAD_TOKENS, count_message_tokens  # noqa: E402

HI = [{"role": "user", "content": "Say hello to the local box."}]
WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                            "required": ["city"]}}}]


@pytest.fixture(scope="module", params=sorted(FLAVORS))
def server(request):
    with LocalServer(request.param) as srv:
        yield srv


def _embedders(server) -> list[str]:
    """The server's embedding models (the fake answers /v1/embeddings for any; these are the ids
    its list has for them, or its one model where the server runs in embedding mode)."""
    if not server.flavor.embeddings:
        return []
    named = [m for m in server.flavor.models if "embed" in m]
    return named or [server.flavor.models[0] + "-embed"]


@pytest.fixture(scope="module")
def gw(server, tmp_path_factory):
    """The README's lines: a provider table named by the operator, the server's base_url, and the
    embedding models it serves (`embedding_models`), which its model list cannot tell apart."""
    tmp = tmp_path_factory.mktemp("local")
    cfg = tmp / "router.toml"
    embedders = ", ".join(f'"{m}"' for m in _embedders(server))
    cfg.write_text(f'[providers.box]\nbase_url = "{server.base_url}"\n'
                   + (f"embedding_models = [{embedders}]\n" if embedders else ""))
    settings = load_settings(str(cfg), env={}, database_url=f"sqlite:///{tmp}/gw.db", admin_key=ADMIN_KEY,
                             usage_flush_interval_s=0.05)
    with Gateway(settings) as g:
        yield g


def _model(server) -> str:
    return server.flavor.models[0]     # a chat model (embedding models are listed after)


def _tokens(row) -> tuple[int, int]:
    return row.prompt_tokens, row.completion_tokens


def _expected(server, *, counted: bool = False) -> tuple[int, int]:
    """The server's counts; `counted`: Router One's own where the server sent none (a stream of
    Ollama before 0.5.2): the prompt's o200k count (the fake's) plus OpenAI's per-message framing."""
    prompt, completion = server.last_usage["prompt_tokens"], server.last_usage["completion_tokens"]
    return (prompt + MESSAGE_OVERHEAD_TOKENS * len(server.requests[-1]["messages"]) + 3 if counted else prompt,
            completion)


def test_the_servers_models_are_listed_under_their_own_ids(server, gw, make_openai_client):
    client = make_openai_client(gw)
    listed = {m.id for m in client.models.list()}
    chat = set(server.flavor.models) - set(_embedders(server))
    assert chat <= listed and not listed & set(_embedders(server))


def test_a_chat_answer_is_openai_s_and_billed_with_the_server_s_counts(server, gw, make_openai_client):
    key, account = gw.new_key()
    client = make_openai_client(gw, api_key=key)
    reply = client.chat.completions.create(model=_model(server), messages=HI, max_tokens=5)
    assert reply.id and reply.object == "chat.completion"
    assert reply.choices[0].message.content and reply.choices[0].finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == _expected(server) == (reply.usage.prompt_tokens, 5)
    [row] = settled_rows(gw, account, 1)
    assert _tokens(row) == _expected(server) and row.status == 200


@pytest.mark.parametrize("include_usage", [True, False])
def test_a_stream_is_openai_s_and_billed_once_with_the_server_s_counts(server, gw, make_openai_client, include_usage):
    key, account = gw.new_key()
    client = make_openai_client(gw, api_key=key)
    opts = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(client.chat.completions.create(model=_model(server), messages=HI, max_tokens=6, stream=True, **opts))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    with_usage = [c for c in chunks if c.usage is not None]
    counted = server.flavor.usage_mode == "none"     # the server sends none: Router One's own count
    if include_usage:     # one usage chunk, the last, with no choices (as OpenAI sends it)
        assert with_usage == [chunks[-1]] and chunks[-1].choices == []
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == _expected(server, counted=counted)
    else:
        assert with_usage == []
    [row] = settled_rows(gw, account, 1)
    assert row.completion_tokens == 6 and row.stream
    assert _tokens(row) == _expected(server, counted=counted)


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_reaches_the_client_whole(server, gw, make_openai_client, stream):
    key, account = gw.new_key()
    client = make_openai_client(gw, api_key=key)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        chunks = list(client.chat.completions.create(model=_model(server), messages=ask, tools=WEATHER, stream=True,
                                                     stream_options={"include_usage": True}))
        calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
        assert calls[0].id and calls[0].function.name == "get_weather"
        assert "".join(tc.function.arguments or "" for tc in calls) == '{"city":"Paris"}'
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    else:
        reply = client.chat.completions.create(model=_model(server), messages=ask, tools=WEATHER)
        [call] = reply.choices[0].message.tool_calls
        assert call.id and call.function.name == "get_weather" and call.function.arguments == '{"city":"Paris"}'
        assert reply.choices[0].finish_reason == "tool_calls"
    [row] = settled_rows(gw, account, 1)
    if stream and server.flavor.usage_mode == "none":    # Router One's count, of the tool definitions too
        prompt = ask[0]["content"] + "\n" + orjson.dumps(WEATHER).decode()
        assert _tokens(row) == (count_message_tokens(prompt, 1), _expected(server)[1])
    else:
        assert _tokens(row) == _expected(server)


@pytest.mark.parametrize("stream", [False, True])
def test_the_anthropic_sdk_on_messages_gets_anthropic_s_answer_and_is_billed_once(server, gw, stream):
    key, account = gw.new_key()
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    if stream:
        with client.messages.stream(model=_model(server), max_tokens=4, messages=HI) as s:
            msg = s.get_final_message()
    else:
        msg = client.messages.create(model=_model(server), max_tokens=4, messages=HI)
    assert msg.content[0].type == "text" and msg.content[0].text and msg.stop_reason == "max_tokens"
    counted = stream and server.flavor.usage_mode == "none"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == _expected(server, counted=counted)
    assert msg.usage.output_tokens == 4
    [row] = settled_rows(gw, account, 1)
    assert _tokens(row) == _expected(server, counted=counted) and row.protocol == "messages"


def test_an_error_inside_a_stream_is_an_error_for_the_client_and_bills_what_was_relayed(server, gw, make_openai_client):
    """The error event comes after two content chunks: relayed before it (then the stream's error
    event), or, when all of it arrived within the stream hold, a 502 before the stream; billed for
    what the client received either way."""
    key, account = gw.new_key()
    client = make_openai_client(gw, api_key=key)
    got = []
    with pytest.raises(openai.APIError):
        for c in client.chat.completions.create(model=_model(server), stream=True,
                                                messages=[{"role": "user", "content": "[[stream_error:2]]"}]):
            got.extend(c.choices[0].delta.content or "" for c in [c] if c.choices)
    assert "".join(got) in ("Hello!", "")
    [row] = settled_rows(gw, account, 1)
    assert row.status == 502 and (row.completion_tokens >= 2 if got else row.cost_micros == 0)


# servers that put a status inside a stream's error event (the others send none: nothing to test streamed)
_STATUS_IN_STREAM = sorted(n for n, f in FLAVORS.items() if f.error_shape in ("tgi", "llamacpp", "sglang"))


@pytest.mark.parametrize("server,stream", [*((n, False) for n in sorted(FLAVORS)),
                                           *((n, True) for n in _STATUS_IN_STREAM)], indirect=["server"])
def test_a_request_refused_inside_the_stream_is_the_400_the_unstreamed_one_is(server, gw, make_openai_client, stream):
    """TGI answers a streamed request it will not take (input too long, ...) with a 200 whose first
    event is `{"error": {"message", "http_status_code": 422}}`; llama.cpp and SGLang put the
    status in the error's `code`. The client gets the 400 it gets unstreamed, not a 502."""
    key, account = gw.new_key()
    client = make_openai_client(gw, api_key=key)
    ask = [{"role": "user", "content": "[[refuse_in_stream:400]]" if stream else "[[error:400]]"}]
    with pytest.raises(openai.BadRequestError) as exc:
        list(client.chat.completions.create(model=_model(server), messages=ask, stream=stream))
    assert exc.value.status_code == 400 and ERROR_TEXT in exc.value.message
    [row] = settled_rows(gw, account, 1)
    assert row.status == 400 and row.cost_micros == 0


def test_max_completion_tokens_caps_the_answer_on_every_server(server, gw, make_openai_client):
    """The openai SDK's `max_completion_tokens` (OpenAI's name since 2024): Ollama reads only
    `max_tokens` (openai/openai.go ChatCompletionRequest) and answered at its natural length,
    finish_reason "stop", more tokens than were asked for and reserved."""
    key, account = gw.new_key()
    client = make_openai_client(gw, api_key=key)
    reply = client.chat.completions.create(model=_model(server), messages=HI, max_completion_tokens=3)
    assert reply.usage.completion_tokens == 3 and reply.choices[0].finish_reason == "length"
    assert server.requests[-1].get("max_tokens", server.requests[-1].get("max_completion_tokens")) == 3
    [row] = settled_rows(gw, account, 1)
    assert row.completion_tokens == 3


@pytest.mark.parametrize("server", sorted(n for n, f in FLAVORS.items() if f.embeddings), indirect=True)
def test_the_servers_embedding_models_answer_on_embeddings_and_never_chat(server, gw, make_openai_client):
    """Ollama, LM Studio, llama.cpp (--embeddings), SGLang (--is-embedding) and LocalAI serve
    /v1/embeddings; their model lists do not say which models embed. Named in `embedding_models`,
    they are served on /v1/embeddings (billed with the server's count) and are not chat models
    (`auto` never picks one; a chat request naming one is a 404, as for OpenAI's embedders)."""
    assert _embedders(server)        # TGI has no /v1/embeddings (that is TEI): not parametrized
    key, account = gw.new_key()
    client = make_openai_client(gw, api_key=key)
    model = _embedders(server)[0]
    for name in (model, f"box/{model}"):
        out = client.embeddings.create(model=name, input=["first text", "second text"])
        assert [d.index for d in out.data] == [0, 1] and len(out.data[0].embedding) == 1536
        assert out.usage.prompt_tokens == 4
    assert server.requests[-1]["model"] == model
    with pytest.raises(openai.NotFoundError):      # as OpenAI's embedders: not a chat model
        client.chat.completions.create(model=model, messages=HI)
    rows = settled_rows(gw, account, 2)
    assert [(r.protocol, r.prompt_tokens, r.status) for r in rows] == [("embeddings", 4, 200)] * 2
    assert model not in {m.id for m in client.models.list()}     # a chat model list, as for OpenAI's embedders


def test_the_ollama_template_refuses_what_ollama_would_silently_ignore(tmp_path, make_openai_client):
    """`[providers.ollama]` (the shipped template): Ollama's ChatCompletionRequest has no `n` nor
    `logit_bias` (ollama/ollama openai/openai.go), so n=2 answered one choice and a logit bias was
    dropped without a word. Now a 400 unsupported_parameter naming it (n=1 and {} still pass)."""
    with LocalServer("ollama") as srv:
        cfg = tmp_path / "router.toml"
        cfg.write_text(f'[providers.ollama]\nbase_url = "{srv.base_url}"\n'
                       'embedding_models = ["nomic-embed-text:latest"]\n')
        settings = load_settings(str(cfg), env={}, database_url=f"sqlite:///{tmp_path}/gw.db", admin_key=ADMIN_KEY,
                                 usage_flush_interval_s=0.05)
        with Gateway(settings) as g:
            client = make_openai_client(g)
            for param, value in (("n", 2), ("logit_bias", {"1734": -100})):
                with pytest.raises(openai.BadRequestError) as exc:
                    client.chat.completions.create(model="llama3.2:latest", messages=HI, **{param: value})
                assert exc.value.code == "unsupported_parameter" and exc.value.param == param
            reply = client.chat.completions.create(model="llama3.2:latest", messages=HI, n=1, logit_bias={},
                                                   max_completion_tokens=2)
            assert reply.usage.completion_tokens == 2 and "n" not in srv.requests[-1]
            # the template takes embedding_models too (it had been refused as a known vendor's)
            out = client.embeddings.create(model="ollama/nomic-embed-text:latest", input="x")
            assert len(out.data) == 1 and srv.requests[-1]["model"] == "nomic-embed-text:latest"


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_reaches_the_anthropic_sdk_as_a_tool_use(server, gw, stream):
    key, account = gw.new_key()
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    tools = [{"name": "get_weather", "description": "Weather in a city",
              "input_schema": WEATHER[0]["function"]["parameters"]}]
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        with client.messages.stream(model=_model(server), max_tokens=100, messages=ask, tools=tools) as s:
            msg = s.get_final_message()
    else:
        msg = client.messages.create(model=_model(server), max_tokens=100, messages=ask, tools=tools)
    [use] = [b for b in msg.content if b.type == "tool_use"]
    assert use.id and use.name == "get_weather" and use.input == {"city": "Paris"} and msg.stop_reason == "tool_use"
    [row] = settled_rows(gw, account, 1)
    assert row.completion_tokens == _expected(server)[1] and row.protocol == "messages"


def test_a_model_id_router_one_cannot_serve_is_named_in_the_log(tmp_path, make_openai_client, caplog):
    """llama-server lists the model file's path as its id: started with -m "/models/My Model.gguf"
    the id has a space, which no client or key allowlist can carry; it was left out without a word
    (the box served nothing, every request a 404). Now a warning names it and the way out."""
    with LocalServer("llamacpp", models=("/models/My Model.gguf",)) as srv:
        cfg = tmp_path / "router.toml"
        cfg.write_text(f'[providers.box]\nbase_url = "{srv.base_url}"\n')
        settings = load_settings(str(cfg), env={}, database_url=f"sqlite:///{tmp_path}/gw.db", admin_key=ADMIN_KEY,
                                 usage_flush_interval_s=0.05)
        with caplog.at_level("WARNING", logger="routerone.discovery"), Gateway(settings) as g:
            assert {m.id for m in make_openai_client(g).models.list()} == set()
        said = [r.getMessage() for r in caplog.records if r.name == "routerone.discovery"]
        assert any("'/models/My Model.gguf'" in m and "--alias" in m for m in said), said


def test_a_request_the_server_refuses_is_anthropic_s_400_on_messages(server, gw):
    key, account = gw.new_key()
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=30)
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model=_model(server), max_tokens=10, messages=[{"role": "user", "content": "[[error:400]]"}])
    assert exc.value.status_code == 400 and exc.value.body["type"] == "error"
    assert exc.value.body["error"]["type"] == "invalid_request_error" and ERROR_TEXT in exc.value.body["error"]["message"]
    [row] = settled_rows(gw, account, 1)
    assert row.status == 400 and row.cost_micros == 0

"""The Responses API over the chat pipeline: `previous_response_id` chains read from the store
(scoped to the caller's account), the request translated (wire/responses.py), the answer rendered
as a Response and, unless `store: false`, saved for the next turn and for GET/DELETE.

A stored response is written before its reply (or its stream's last event) goes out, so a client
that continues the chain at once always finds it. That write is one store round trip per stored
response; `store: false` skips it.

Around a stored response (the caller's account only; any other id is a 404): GET, DELETE, its input
items (read from the stored context, paged: wire/responses_items.py) and cancel, which is always
OpenAI's 400 for a response that is not a background one (Router One refuses `background`).
`count_input_tokens` counts a request as /v1/messages/count_tokens does: no upstream call, no charge.

A stored response older than `retention_days` (services/retention.py) is a 404 on every one of
these, as an unknown id is, and the row found so is deleted there and then.

With `store_responses` off (the `responses_store` setting) nothing is stored, whatever `store` the
request says (its Response says `"store": false`), and everything that reads the store but DELETE is
a 400 `response_storage_disabled` before any store read or upstream call (DELETE still removes a
response stored before the switch).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import orjson

from ..catalog import AUTO_MODEL, Catalog
from ..errors import InvalidRequest, NotCancellable, NotFound, PermissionDenied, RouterOneError, UnsupportedParameter, echo
from ..offload import run_heavy
from ..store.base import Store, StoredResponse
from ..tokens import count_message_tokens, load_tokenizer, tokenizer_loaded
from ..wire.chat import ChatRequest
from ..wire.responses import (completion_to_response, context_items, new_response_id, parse_body,
                              response_shell, responses_to_chat)
from ..wire.responses_items import ItemsQuery, input_item_resources, item_page
from ..wire.responses_params import responses_param
from ..wire.responses_stream import ResponsesStreamEncoder
from .auth import AuthContext
from .call import Reply
from .chat import IMAGE_TOKENS, ChatService
from .overhead import add_overhead
from .retention import retention_cutoff

__all__ = ["ResponsesService", "ResponsesReply"]
log = logging.getLogger("routerone.responses")


@dataclass(slots=True)
class ResponsesReply:
    reply: Reply
    body: bytes | None = None                              # the Response JSON (non-streamed)
    encoder: ResponsesStreamEncoder | None = None          # streamed: renders the chat stream
    _save: object = field(default=None, repr=False)

    async def finish_stream(self) -> bytes:
        """Before the stream's last bytes: store the finished response."""
        if self._save is not None and self.encoder is not None and self.encoder.final is not None:
            await self._save(self.encoder.final)      # type: ignore[operator]
        return b""


class ResponsesService:
    def __init__(self, chat: ChatService, store: Store, catalog: Catalog, max_chain_bytes: int | None = None,
                 retention_days: int = 0, store_responses: bool = True) -> None:
        self.chat = chat
        self.store = store
        self.catalog = catalog
        self.max_chain_bytes = max_chain_bytes    # a stored chain plus the body continuing it (max_body_bytes)
        self.retention_days = retention_days      # 0: stored responses are kept until deleted
        self.store_responses = store_responses    # False: nothing is stored or read back (responses_store)

    async def create(self, raw: bytes, *, auth: AuthContext, request_id: str, echo_id: str,
                     strategy_header: str | None = None, wtp_header: str | None = None,
                     hold_bytes: Callable[[int], None] | None = None) -> ResponsesReply:
        """`hold_bytes(n)` counts the stored chain's size as body bytes held (the HTTP layer's body
        budget: it may refuse with 503 server_busy); the chain lives as long as the request does."""
        try:
            body = await run_heavy(len(raw), parse_body, raw)     # a large body: off the event loop
            if not self.store_responses:
                body["store"] = False          # echoed as such, and save() stores nothing
            prior, prior_bytes = await self._prior(body, auth, hold_bytes)
            if prior_bytes and self.max_chain_bytes is not None and prior_bytes + len(raw) > self.max_chain_bytes:
                # each response stores its whole chain, and fields the translation does not read count
                # as no prompt token: without this a chain grew by a body per turn, without bound
                raise InvalidRequest(f"The chain of previous_response_id holds {prior_bytes} bytes: with this body, "
                                     f"more than the limit of {self.max_chain_bytes} (max_body_bytes); start a new "
                                     "chain (send the input you need)", param="previous_response_id",
                                     code="previous_response_too_large")
        except RouterOneError as exc:
            self.chat.refused(exc, request_id=request_id, echo_id=echo_id, auth=auth, route="responses")
            raise
        response_id, created_at = new_response_id(), int(time.time())
        try:
            reply = await self.chat.complete(raw, auth=auth, request_id=request_id, echo_id=echo_id,
                                             strategy_header=strategy_header, wtp_header=wtp_header,
                                             protocol="responses", parse=lambda _raw: responses_to_chat(body, prior),
                                             body_bytes=len(raw) + prior_bytes)   # the chain's items are prompt too
        except RouterOneError as exc:       # named as the caller sent it: max_output_tokens, not max_tokens
            _rename_param(exc)
            raise

        async def save(resp: dict) -> None:
            """A store failure does not take the answer away from a caller who has paid for it: the
            response is returned (and logged as not stored); a later previous_response_id finds
            nothing and gets a 404."""
            if body.get("store", True) is False:
                return
            try:
                await self.store.put_response(StoredResponse(
                    response_id, auth.account.id, auth.key.id, float(created_at), orjson.dumps(resp).decode(),
                    orjson.dumps(context_items(prior, body, resp)).decode()))
            except Exception:  # noqa: BLE001
                log.warning("response %s was not stored", response_id, exc_info=True,
                            extra={"request_id": request_id})

        if reply.stream is not None:
            shell = response_shell(body, response_id, created_at, body.get("model") or "")
            return ResponsesReply(reply, encoder=ResponsesStreamEncoder(shell), _save=save)
        t0 = time.perf_counter()
        resp = completion_to_response(orjson.loads(reply.body), body, response_id, created_at)
        await save(resp)
        out = orjson.dumps(resp)
        add_overhead(reply.headers, t0)
        return ResponsesReply(reply, body=out)

    async def _prior(self, body: dict, auth: AuthContext,
                     hold_bytes: Callable[[int], None] | None = None) -> tuple[list[dict], int]:
        """The stored chain's items and their size in bytes. A short request may continue a chain of
        megabytes: its reading (here), translation and token count run off the event loop by that size."""
        context = await self._prior_context(body, auth, hold_bytes)
        if context is None:
            return [], 0
        return await run_heavy(len(context), orjson.loads, context), len(context)

    async def _prior_context(self, body: dict, auth: AuthContext,
                             hold_bytes: Callable[[int], None] | None = None) -> str | None:
        """The stored context (JSON) of the `previous_response_id` chain, None without one; its size
        is counted by `hold_bytes` (the body budget)."""
        prev_id = body.get("previous_response_id")
        if not prev_id:
            return None
        if not self.store_responses:
            raise _storage_disabled("previous_response_id")
        prev = await self._unexpired(prev_id, auth)
        if prev is None:
            raise NotFound(f"Previous response with id '{echo(prev_id)}' not found.", param="previous_response_id",
                           code="previous_response_not_found")
        if hold_bytes is not None:
            hold_bytes(len(prev.context))
        return prev.context

    async def get(self, response_id: str, auth: AuthContext, *, stream: bool = False,
                  hold_bytes: Callable[[int], None] | None = None) -> bytes:
        """`hold_bytes(n)`: as on create, the stored response read counts as body bytes held."""
        if stream:         # the SDK's retrieve(stream=True) replays the events: they are not kept
            raise UnsupportedParameter("'stream' is not supported: a stored response's events are not kept; "
                                       "retrieve it without stream", param="stream")
        return (await self._stored(response_id, auth, hold_bytes)).body.encode()

    async def delete(self, response_id: str, auth: AuthContext) -> bytes:
        if not await self.store.delete_response(response_id, auth.account.id,
                                                created_after=retention_cutoff(self.retention_days)):
            raise _not_found(response_id)         # an expired one is deleted, and a 404 as elsewhere
        return orjson.dumps({"id": response_id, "object": "response.deleted", "deleted": True})

    async def input_items(self, response_id: str, auth: AuthContext, query: ItemsQuery,
                          hold_bytes: Callable[[int], None] | None = None) -> bytes:
        """One page of the response's input items (a ResponseItemList)."""
        stored = await self._stored(response_id, auth, hold_bytes)
        return await run_heavy(len(stored.context), _items_page, stored, query)

    async def cancel(self, response_id: str, auth: AuthContext) -> bytes:
        """Only a background response can be cancelled and there are none: the caller's stored
        response gets OpenAI's 400 for a synchronous one (it is left as it is), any other id a 404."""
        await self._stored(response_id, auth)
        raise NotCancellable()

    async def count_input_tokens(self, raw: bytes, auth: AuthContext,
                                 hold_bytes: Callable[[int], None] | None = None) -> bytes:
        """`POST /v1/responses/input_tokens`: the request's text (its chain's items, instructions,
        input and tools) counted with Router One's tokenizer plus per-message framing and a flat
        estimate per image, as /v1/messages/count_tokens does. The model is checked (404 unknown,
        403 not allowed for the key); a request without one counts as `auto`: the count does not
        depend on it."""
        body = await run_heavy(len(raw), parse_body, raw)
        if body.get("model") is None:
            body["model"] = AUTO_MODEL
        context = await self._prior_context(body, auth, hold_bytes) or "[]"
        size = len(raw) + len(context)
        try:
            req = await run_heavy(size, _count_request, body, context)
        except RouterOneError as exc:      # as create names it: input, not messages
            _rename_param(exc)
            raise
        if req.model != AUTO_MODEL:
            model = self.catalog.resolve(req.model)
            if not self.catalog.allows(auth.key.allowed_models, model):
                raise PermissionDenied(f"This API key may not use the model '{model.id}'", param="model",
                                       code="model_not_allowed")
        if not tokenizer_loaded():
            await asyncio.to_thread(load_tokenizer)      # ~1 s, once: never on the event loop
        n = await run_heavy(size, _count, req)
        return orjson.dumps({"object": "response.input_tokens", "input_tokens": n})

    async def _stored(self, response_id: str, auth: AuthContext,
                      hold_bytes: Callable[[int], None] | None = None) -> StoredResponse:
        if not self.store_responses:
            raise _storage_disabled("response_id")
        stored = await self._unexpired(response_id, auth)
        if stored is None:
            raise _not_found(response_id)
        if hold_bytes is not None:
            hold_bytes(len(stored.body) + len(stored.context))
        return stored

    async def _unexpired(self, response_id: str, auth: AuthContext) -> StoredResponse | None:
        """The caller's stored response, None if there is none or it has expired (then it is
        deleted now rather than at the next background purge)."""
        stored = await self.store.get_response(response_id, auth.account.id)
        cutoff = retention_cutoff(self.retention_days)
        if stored is not None and cutoff is not None and stored.created_at < cutoff:
            await self.store.delete_response(response_id, auth.account.id)
            return None
        return stored


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{echo(response_id)}' not found.", param="response_id")


def _storage_disabled(param: str) -> InvalidRequest:
    return InvalidRequest("This server stores no responses (responses_store = false): send the whole "
                          "conversation as input instead of previous_response_id; responses cannot be "
                          "retrieved, listed or cancelled", param=param, code="response_storage_disabled")


def _items_page(stored: StoredResponse, query: ItemsQuery) -> bytes:
    n_output = len(orjson.loads(stored.body).get("output") or ())
    return orjson.dumps(item_page(input_item_resources(stored.id, orjson.loads(stored.context), n_output), query))


def _count_request(body: dict, context: str) -> ChatRequest:
    return responses_to_chat(body, orjson.loads(context))


def _count(req: ChatRequest) -> int:
    return count_message_tokens(req.prompt_text(), len(req.messages)) + (IMAGE_TOKENS if req.has_images else 0)


def _rename_param(exc: RouterOneError) -> None:
    """An error about the translated chat request, named as the caller sent it (`responses_param`):
    input, not messages; max_output_tokens, not max_tokens."""
    renamed = responses_param(exc.param)
    if renamed != exc.param:
        quoted = f"'{exc.param}'"
        exc.message = (exc.message.replace(quoted, f"'{renamed}'") if quoted in exc.message
                       else exc.message.replace(exc.param, renamed, 1))
        exc.param = renamed

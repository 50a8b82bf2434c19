"""Reading the chat pipeline's SSE stream, the part every protocol's stream encoder shares (sans-I/O).

`feed(data)` takes the bytes one write of the chat stream carries (whole `data: ...` events) and
hands each event to one of three hooks, collecting what they write into `out`:

| chat stream event                         | hook                    |
|-------------------------------------------|-------------------------|
| `[DONE]`                                  | `_done(out)`            |
| `{"error": ...}` (no `choices`)           | `_error(error, out)`    |
| any other chunk                           | `_chunk(chunk, out)`    |

Subclasses: messages_stream.MessagesStreamEncoder, responses_stream.ResponsesStreamEncoder.
"""
from __future__ import annotations

import orjson

__all__ = ["ChatStreamReader"]


class ChatStreamReader:
    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for frame in data.split(b"\n\n"):
            if frame.startswith(b"data: "):
                self._payload(frame[6:], out)
        return b"".join(out)

    def _payload(self, payload: bytes, out: list[bytes]) -> None:
        if payload.startswith(b"[DONE]"):
            self._done(out)
            return
        chunk = orjson.loads(payload)
        if "error" in chunk and "choices" not in chunk:
            self._error(chunk["error"], out)
            return
        self._chunk(chunk, out)

    def _chunk(self, chunk: dict, out: list[bytes]) -> None:
        raise NotImplementedError

    def _done(self, out: list[bytes]) -> None:
        raise NotImplementedError

    def _error(self, error: dict, out: list[bytes]) -> None:
        raise NotImplementedError

"""Incremental Server-Sent Events decoder (WHATWG framing: lines end at CRLF, LF or CR; a blank
line dispatches; a leading BOM is dropped; an event with no data is not dispatched).

An upstream's stream is untrusted input: an event (or a line still without its end) over
MAX_EVENT_BYTES is an upstream failure, so a stream that never ends a line cannot hold unbounded
memory. Pieces of a long line are kept as a list until a piece brings a line end, so such a line
costs linear, not quadratic, copying."""
from __future__ import annotations

from ..errors import UpstreamUnavailable
from .base import SSEEvent

__all__ = ["SSEDecoder", "MAX_EVENT_BYTES"]

_BOM = b"\xef\xbb\xbf"
MAX_EVENT_BYTES = 16 << 20


def _too_large() -> UpstreamUnavailable:
    return UpstreamUnavailable(f"The upstream sent a stream event larger than {MAX_EVENT_BYTES} bytes")


class SSEDecoder:
    """Feed raw bytes as they arrive; get complete events back. Comments and `id:`/`retry:` are ignored."""

    __slots__ = ("_buf", "_event", "_data", "_started", "_more", "_more_bytes", "_data_bytes")

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[str] = []
        self._started = False
        self._more: list[bytes] = []     # pieces of an unfinished line after _buf (no CR or LF in them)
        self._more_bytes = 0
        self._data_bytes = 0             # of the event being read (its data lines so far)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._buf and self._started and b"\n" not in chunk and b"\r" not in chunk \
                and not self._buf.endswith(b"\r"):
            self._more.append(chunk)     # still inside one line: keep the piece, join once it ends
            self._more_bytes += len(chunk)
            if len(self._buf) + self._more_bytes > MAX_EVENT_BYTES:
                raise _too_large()
            return []
        if self._more:
            self._buf += b"".join(self._more)
            self._more, self._more_bytes = [], 0
        buf = self._buf + chunk
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM):]
        if buf.endswith(b"\r"):          # a CR may be the first half of CRLF: decide next time
            buf, self._buf = buf[:-1], b"\r"
        else:
            self._buf = b""
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, rest = buf.split(b"\n")
        self._buf = rest + self._buf if rest else self._buf
        if len(self._buf) > MAX_EVENT_BYTES:
            raise _too_large()
        out: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if line.startswith(b"data: "):        # the usual line, decoded here without _line
                data.append(line[6:].decode("utf-8", "replace"))
                self._data_bytes += len(line)
                if self._data_bytes > MAX_EVENT_BYTES:
                    raise _too_large()
            elif line or not data:
                self._line(line.decode("utf-8", "replace"), out)
                data = self._data
            else:                                 # a blank line ends the event
                if len(data) == 1:
                    if data[0]:
                        out.append(SSEEvent(self._event, data[0]))
                else:
                    out.append(SSEEvent(self._event, "\n".join(data)))
                self._event, self._data, self._data_bytes = None, [], 0
                data = self._data
        return out

    @property
    def between_events(self) -> bool:
        """No event is part read (nothing buffered but a line end): what was fed so far was whole
        events, comments or blank lines."""
        return not (self._data or self._more or self._event is not None or self._buf.strip(b"\r"))

    def data_only(self, chunk: bytes) -> list[bytes] | None:
        """The data of each event when `chunk` is nothing but whole one-line `data: ` events (how
        OpenAI-protocol upstreams send them) and no event is pending, still as bytes; else None,
        and the caller feeds the chunk to `feed`. For callers that ignore event names."""
        if self._buf or self._more or self._data or self._event is not None or not self._started:
            return None
        end = chunk.find(b"\n")
        if end == len(chunk) - 2 and end > 6 and chunk[-1] == 10 and chunk.startswith(b"data: ") \
                and b"\r" not in chunk:
            return [chunk[6:end]]                 # the usual read: one event
        lines = chunk.split(b"\n")           # whole events: [data, b"", data, b"", ..., b""]
        if len(lines) % 2 == 0 or len(lines) < 3 or any(lines[1::2]) or lines[-1] or b"\r" in chunk:
            return None                       # a part event, a line out of place, or CRs
        payloads = lines[0:-1:2]
        for i, line in enumerate(payloads):
            if len(line) <= 6 or not line.startswith(b"data: "):
                return None
            payloads[i] = line[6:]
        return payloads

    def close(self) -> list[SSEEvent]:
        """End of body: dispatch a last event that had no trailing blank line."""
        out: list[SSEEvent] = []
        tail = (self._buf + b"".join(self._more)).rstrip(b"\r")
        self._buf, self._more, self._more_bytes = b"", [], 0
        if tail:
            self._line(tail.decode("utf-8", "replace"), out)
        self._line("", out)
        return out

    def _line(self, line: str, out: list[SSEEvent]) -> None:
        if not line:
            data = "\n".join(self._data)
            if self._data and (data or len(self._data) > 1):
                out.append(SSEEvent(self._event, data))
            self._event, self._data, self._data_bytes = None, [], 0
            return
        if line[0] == ":":
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_bytes += len(line) + 1    # the line, not its value: `data:` lines with none count too
            if self._data_bytes > MAX_EVENT_BYTES:
                raise _too_large()
        elif name == "event":
            self._event = value

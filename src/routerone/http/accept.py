"""Accept waiting connections on a timer as well, so that new connections are taken within a few
milliseconds however busy the loop is.

Measured (bench/results/streams-ttft.md, 2026-12-06 session 5): with 1,000 concurrent paced
streams through one uvloop worker, connections waited in the kernel's accept queue for up to
300-800 ms (`ss` showed 100-350 of them queued) while the loop itself stayed responsive (a 1 ms
timer ran at most ~10-30 ms late): uvloop took them from the listening socket far less often than
it ran its other callbacks. That wait was most of the time to first token the clients saw beyond
the upstream's. Polling the listening socket every `ACCEPT_POLL_S` (a non-blocking accept, which
costs a few microseconds when nothing waits) brought it to ~30 ms at p99. uvloop's own accept stays
in place: whichever sees a connection first takes it; the connection is handed to the same aiohttp
server (`loop.connect_accepted_socket`, as the graceful drain does with the last waiting ones).
A poll that finds nothing doubles the wait before the next one, up to `ACCEPT_IDLE_MAX_S`, and one
that takes a connection brings it back to `ACCEPT_POLL_S`: an idle server wakes 50 times a second
for this, not 500.

`refuse_new_connections` is the drain's first move on the listening socket (server.stop_listening):
a socket filter that drops every SYN, so that no connection enters the accept queue between the
drain's last accept and the close (such a connection would be reset by the close, after a balancer
had sent a request on it: nginx answers 502 and does not retry a POST). A dropped SYN is sent again
by the client's kernel after ~1 s, finds the socket closed and is refused: the balancer tries the
next instance, ~1 s late. Found by the topology test under CPU contention (a rolling restart failed
a POST with "Connection reset by peer while reading response header"; 2 runs in 11).
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import socket
import struct
import sys

__all__ = ["AcceptPoller", "ACCEPT_POLL_S", "ACCEPT_IDLE_MAX_S", "ACCEPT_BATCH", "refuse_new_connections"]
log = logging.getLogger("routerone.server")

ACCEPT_POLL_S = 0.002    # how often the listening socket is polled while connections are found
ACCEPT_IDLE_MAX_S = 0.02  # the longest wait between polls once they find nothing
ACCEPT_BATCH = 64        # connections taken per poll at most (the rest at the next one, or by uvloop)


class AcceptPoller:
    """Every `ACCEPT_POLL_S`, accept what waits on `sock` and give it to `protocol_factory`."""

    def __init__(self, sock: socket.socket, protocol_factory) -> None:
        self._sock = sock
        self._factory = protocol_factory
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._interval_s = ACCEPT_POLL_S
        self._tasks: set[asyncio.Task] = set()
        self.accepted = 0
        self.polls = 0

    def start(self) -> None:
        if self._timer is None:
            self._interval_s = ACCEPT_POLL_S
            self._timer = self._loop.call_later(ACCEPT_POLL_S, self._poll)

    def stop(self) -> None:
        """Stop polling (before the drain takes the last waiting connections and closes the socket)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _poll(self) -> None:
        self._timer = None
        self.polls += 1
        before = self.accepted
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:       # out of descriptors, or the socket closed: try again later
                if self._sock.fileno() == -1:
                    return
                log.debug("accept poll: %s", exc)
                break
            conn.setblocking(False)
            self.accepted += 1
            task = self._loop.create_task(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._interval_s = ACCEPT_POLL_S if self.accepted > before else min(2 * self._interval_s, ACCEPT_IDLE_MAX_S)
        self._timer = self._loop.call_later(self._interval_s, self._poll)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError:                   # the peer went away before its transport was set up
            conn.close()


_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)   # Linux (asm-generic); not in Python's socket
# classic BPF over the TCP header (a TCP socket's filter sees the segment from its TCP header on):
# drop a segment whose flags have SYN without ACK (a new connection), let everything else through
# (the last ACK of a handshake already begun, data on accepted connections, which inherit the filter)
_DROP_SYN = [
    (0x30, 0, 0, 13),            # ldb [13]          A = the flags byte
    (0x54, 0, 0, 0x12),          # and #0x12         A &= SYN | ACK
    (0x15, 0, 1, 0x02),          # jeq #0x02, 0, 1   SYN alone?
    (0x06, 0, 0, 0),             # ret #0            drop it
    (0x06, 0, 0, 0xFFFFFFFF),    # ret #-1           keep the whole segment
]


def refuse_new_connections(sock: socket.socket) -> bool:
    """From now on the kernel drops connection requests (SYNs) to this listening socket; what is
    in its queue, and handshakes already begun, are unaffected. False where that cannot be done
    (not Linux, or the kernel refused the filter): the caller closes as before."""
    if not sys.platform.startswith("linux"):
        return False
    code = b"".join(struct.pack("HBBI", *insn) for insn in _DROP_SYN)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = struct.pack("HL", len(_DROP_SYN), ctypes.addressof(buf))   # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, prog)
    except OSError as exc:
        log.warning("drain: cannot hold new connections back (%s); a connection made as the listening "
                    "socket closes may be reset", exc)
        return False
    return True

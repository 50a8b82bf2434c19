"""The drain's close of the listening socket (server.stop_listening) with real sockets: what the
kernel had accepted before is taken and served; a connection that arrives while the socket is being
closed is refused (a balancer then tries another instance), never accepted and then reset (a
request already sent on it would fail: nginx answers 502 and does not retry a POST).

The race is made deterministic: a client connects right after the drain's last accept, before the
close (under CPU contention the process can be preempted just there).
"""
from __future__ import annotations

import asyncio
import errno
import select
import socket
import sys

import pytest
from aiohttp import web

from routerone import server
from routerone.http import accept


LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="new connections are held back with a Linux socket filter")


@pytest.fixture
async def site(hello_runner: web.AppRunner, listening: socket.socket):
    """A started site on the listening socket: the server accepts as in production."""
    site = web.SockSite(hello_runner, listening)
    await site.start()
    return hello_runner, site, listening, listening.getsockname()


def connect_started(addr) -> socket.socket:
    """A non-blocking connect, begun (on loopback the handshake, if the listener takes it, is done
    before this returns)."""
    c = socket.socket()
    c.setblocking(False)
    assert c.connect_ex(addr) in (0, errno.EINPROGRESS)
    return c


def connect_outcome(c: socket.socket, timeout_s: float) -> int:
    """0 once connected and still connected, else the errno the connection ended with."""
    select.select([], [c], [], timeout_s)
    err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        return err
    try:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")      # a request sent on it, as a balancer would
        readable, _, _ = select.select([c], [], [], timeout_s)
        if readable:
            return errno.ECONNRESET if not c.recv(100) else 0
    except OSError as exc:
        return exc.errno
    return 0


@LINUX_ONLY
async def test_a_connection_made_as_the_listener_closes_is_refused_not_reset(site, monkeypatch):
    runner, site_, sock, addr = site
    late: list[socket.socket] = []
    real_accept_waiting = server._accept_waiting

    def accept_waiting_then_a_client_connects(s: socket.socket) -> list[socket.socket]:
        taken = real_accept_waiting(s)
        late.append(connect_started(addr))
        return taken
    monkeypatch.setattr(server, "_accept_waiting", accept_waiting_then_a_client_connects)
    await server.stop_listening(site_, sock)
    [c] = late
    try:
        outcome = await asyncio.to_thread(connect_outcome, c, 5.0)
    finally:
        c.close()
    assert outcome == errno.ECONNREFUSED, errno.errorcode.get(outcome, outcome)


class NoSite:
    """The site's part in stop_listening (stop accepting) when nothing accepted in the first place."""
    async def stop(self) -> None:
        pass


async def test_connections_queued_before_the_close_are_taken_and_served(hello_runner, listening):
    addr = listening.getsockname()                  # nobody accepts: the connections queue in the kernel
    clients = [socket.create_connection(addr) for _ in range(3)]
    try:
        for c in clients:
            c.sendall(b"GET /?n=q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        waiting = await server.stop_listening(NoSite(), listening)
        assert len(waiting) == 3
        loop = asyncio.get_running_loop()
        for conn in waiting:
            await loop.connect_accepted_socket(hello_runner.server, conn)
        answers = await asyncio.wait_for(asyncio.gather(*(asyncio.to_thread(c.recv, 1000) for c in clients)), 10)
        assert all(a.startswith(b"HTTP/1.1 200") and a.endswith(b"hi q") for a in answers), answers
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(addr, timeout=2).close()
    finally:
        for c in clients:
            c.close()


@LINUX_ONLY
async def test_the_filter_holds_new_connections_back_and_lets_queued_ones_through(listening):
    addr = listening.getsockname()
    before = socket.create_connection(addr)              # queued before the filter: unaffected
    try:
        assert accept.refuse_new_connections(listening)
        after = connect_started(addr)
        try:
            # its SYN was dropped: not connected, not refused (the client's kernel sends it again ~1 s later)
            _, writable, _ = select.select([], [after], [], 0.3)
            assert not writable and after.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            before.sendall(b"sent after the filter")      # segments on a queued connection still arrive
            conn, _ = listening.accept()
            with conn:
                conn.setblocking(True)
                conn.settimeout(5)
                assert conn.recv(100) == b"sent after the filter"
                conn.sendall(b"answer")
                assert before.recv(100) == b"answer"
            with pytest.raises(BlockingIOError):
                listening.accept()                        # the held-back one never reached the queue
        finally:
            after.close()
    finally:
        before.close()

"""Run the gateway: one process, or `--workers N` processes sharing the port (SO_REUSEPORT).

Graceful drain. On SIGTERM (or SIGINT) a worker
1. marks itself draining: `/readyz` answers 503 from now on;
2. stops accepting (stop_listening): new connection requests are dropped first (on Linux, a socket
   filter: nothing can enter the listen queue between the last accept and the close), then it
   accepts the connections already waiting in the queue (a balancer has sent requests on them;
   closing the socket would reset them) and closes the listening socket, so a balancer's next
   connection is refused and goes to another instance;
3. gives those last connections `ACCEPT_GRACE_S` to start their requests, then closes idle
   keep-alive connections (a busy one closes after its response);
4. waits for the requests and streams in flight, at most `drain_timeout_s` (default 30 s); what
   is still running then is cut;
5. cancels what is still running, gives background work (limiter give-backs, the upstream tail
   of an abandoned stream, read so it is billed) what is left of the bound (at least
   `BACKGROUND_MIN_S`), then runs the app's cleanup: the usage queue is flushed, stores close;
6. logs what it drained, and exits 0.
With `--workers N` the parent passes SIGTERM (or SIGINT, SIGHUP) to every worker and exits 0 once
all of them have.

Each of the N workers runs in a session of its own (setsid). Linux's scheduler, with autogroup on
(the default of most distributions' kernels), gives each session one share of CPU: N workers in
the parent's session would split one share between them, so a load generator, a fake upstream or
a database (one share each) preempted them more often. Measured on 2 cores at c=64: involuntary
context switches per request 1.32-1.62 with one session, 1.18-1.22 with one each (what N separate
instances get). A worker therefore does not see the terminal's signals: the parent forwards them,
and a worker whose parent dies gets SIGTERM (PR_SET_PDEATHSIG on Linux), so it drains and exits.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from typing import Awaitable, Callable

from aiohttp import web

from .app import create_app
from .http.accept import AcceptPoller, refuse_new_connections
from .http.readiness import READINESS
from .http.runtime import RUNTIME
from .limits.factory import uses_redis
from .limits.shared import SharedLimiter, SharedLimiterState
from .routing.cooldown_shared import SharedCooldownState
from .routing.sticky_shared import SharedStickyState
from .observability.logs import configure_logging
from .observability.metrics import MULTIPROC_ENV
from .settings import Settings, SettingsError
from .tokens import load_tokenizer, tokenizer_loaded

try:
    import uvloop
except ImportError:  # pragma: no cover - Windows
    uvloop = None

__all__ = ["serve", "run_worker", "drain", "stop_listening", "ACCEPT_GRACE_S"]
log = logging.getLogger("routerone.server")

ACCEPT_GRACE_S = 0.2     # for connections accepted at the drain to start their requests
HANDSHAKE_SETTLE_S = 0.01  # for handshakes begun before the drain to reach the accept queue (LAN: < 1 ms)
LISTEN_BACKLOG = 2048
BACKGROUND_MIN_S = 0.5   # background work gets at least this after the bound (settles are quick)
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1


def _loop_policy() -> None:
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    except socket.gaierror as exc:      # not the database's host, which the CLI would otherwise name
        raise SettingsError(f"host: {host!r} is not an address to listen on ({exc.strerror})") from None
    sock = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG, reuse_port=reuse_port)
    sock.setblocking(False)
    return sock


def _check_port(host: str, port: int) -> None:
    """Raise OSError (EADDRINUSE, EACCES, ...) if host:port cannot be listened on, before "listening"
    is printed or any worker spawned: `--workers N` workers bind with SO_REUSEPORT, so each would
    fail with a traceback of its own, and next to another `--workers` instance they would share its
    port without a word. The CLI turns the error into its one line (cli_errors.explain)."""
    _listen(host, port, reuse_port=False).close()


def _raise_fd_limit() -> None:
    """Each stream holds two sockets (client, upstream): allow as many as the hard limit does."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not POSIX, or not allowed
        pass


def run_worker(settings: Settings, reuse_port: bool = False, shared_limiter=None, parent_pid: int = 0,
               shared_sticky=None, shared_cooldowns=None) -> None:
    """One worker; `shared_limiter` is a `SharedLimiterState.handle`, `shared_sticky` a
    `SharedStickyState.handle` and `shared_cooldowns` a `SharedCooldownState.handle` made by the parent; a worker of `--workers N` passes the parent's
    pid and runs in a session of its own (module docstring)."""
    if parent_pid:
        _own_session(parent_pid)
    configure_logging(settings.log_level)
    _limit_malloc_arenas()
    _loop_policy()
    _raise_fd_limit()
    asyncio.run(_serve(settings, reuse_port, shared_limiter, shared_sticky, shared_cooldowns))


_M_ARENA_MAX = -8          # glibc's mallopt parameter


def _limit_malloc_arenas() -> None:
    """glibc gives threads that allocate malloc arenas of their own and keeps what a burst freed in
    them: after 20 abandoned 4M-character streams a worker kept 25-65 MiB more RSS than before
    (the database and tokenizer threads), 24-29 MiB with one arena (test_money_stream_memory).
    Two arenas per worker (the GIL serialises Python's allocations anyway), unless the operator set
    MALLOC_ARENA_MAX; nothing elsewhere (musl, macOS)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return
    import ctypes
    try:
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # pragma: no cover - a libc without mallopt
        pass


def _own_session(parent_pid: int) -> None:
    """A session (so a scheduler autogroup) of its own; SIGTERM when the parent dies."""
    try:
        os.setsid()
    except OSError:            # already a session leader
        pass
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):  # pragma: no cover - no prctl
            pass
    if os.getppid() != parent_pid:        # the parent died before the prctl: nobody forwards signals
        raise SystemExit(0)


async def _serve(settings: Settings, reuse_port: bool, shared_limiter=None, shared_sticky=None,
                 shared_cooldowns=None) -> None:
    # the stop signals are caught before the socket listens: a SIGTERM that comes while the worker
    # starts (from `--workers N`'s parent, or its death) drains it once it listens, never kills it
    # with connections waiting in its accept queue
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    app = create_app(settings, limiter=SharedLimiter(shared_limiter) if shared_limiter else None,
                     shared_sticky=shared_sticky, shared_cooldowns=shared_cooldowns)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    sock = _listen(settings.host, settings.port, reuse_port)
    site = web.SockSite(runner, sock, backlog=LISTEN_BACKLOG)
    await site.start()
    # uvloop takes waiting connections too rarely under load (see http/accept.py): poll as well
    poller = AcceptPoller(sock, runner.server) if uvloop is not None and isinstance(loop, uvloop.Loop) else None
    if poller is not None:
        poller.start()
    try:
        await stop.wait()
        if poller is not None:
            poller.stop()
        await drain(app, runner, site, sock, settings.drain_timeout_s)
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def drain(app: web.Application, runner: web.AppRunner, site: web.SockSite, sock: socket.socket,
                timeout_s: float) -> dict:
    """Steps 1-6 of the module docstring; returns the figures it logged."""
    started = time.monotonic()
    readiness = app[READINESS]
    readiness.draining = True
    loop = asyncio.get_running_loop()
    waiting = await stop_listening(site, sock)
    for conn in waiting:
        await loop.connect_accepted_socket(runner.server, conn)
    at_signal = (readiness.in_flight, readiness.streams)
    completed_before = readiness.completed
    log.warning("draining: stopped accepting (%d waiting connection(s) taken); %d request(s) in flight, "
                "%d of them streams; waiting up to %.0f s", len(waiting), at_signal[0], at_signal[1], timeout_s)
    await asyncio.sleep(ACCEPT_GRACE_S)
    runner.server.pre_shutdown()             # idle keep-alive connections close now, busy ones after
    deadline = started + timeout_s
    while readiness.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    cut, cut_streams = readiness.in_flight, readiness.streams
    finished = readiness.completed - completed_before
    if cut_streams and not tokenizer_loaded():
        # a cut stream is billed for what it sent, counted with the tokenizer: its first load (~1 s)
        # here, off the loop, not inside the cut settles (cancelled after BACKGROUND_MIN_S: holds left open)
        await asyncio.to_thread(load_tokenizer)
    await runner.server.shutdown(0.1)        # cancel what is left: a cut stream settles what it sent
    chat = app[RUNTIME].chat
    background = await _bounded(chat.background, max(BACKGROUND_MIN_S, deadline - time.monotonic()))
    await runner.cleanup()                   # settles done; the usage queue is flushed; stores close
    usage = chat.d.usage
    figures = {"in_flight": at_signal[0], "streams": at_signal[1], "accepted_at_close": len(waiting),
               "finished": finished, "cut": cut, "cut_streams": cut_streams, "background_cancelled": background,
               "usage_written": usage.written + chat.d.billing.recorded, "usage_left": usage.depth,
               "total_s": round(time.monotonic() - started, 3)}
    log.warning("drained: %d request(s) finished (%d in flight at the signal, %d of them streams), %d cut "
                "after the %.0f s bound (%d streams); %d background task(s) cancelled; usage records "
                "written since start: %d, left unwritten: %d; stopped in %.2f s", finished, at_signal[0], at_signal[1],
                cut, timeout_s, cut_streams, background, figures["usage_written"], usage.depth, figures["total_s"])
    return figures


async def stop_listening(site: web.SockSite, sock: socket.socket) -> list[socket.socket]:
    """Step 2 of the drain: close the listening socket without resetting a connection the kernel
    has accepted; returns the connections taken from its queue (to be served). New connection
    requests are dropped first (http/accept.py), handshakes begun before get HANDSHAKE_SETTLE_S to
    reach the queue (the site still accepts meanwhile), then the queue is emptied and the socket
    closed: nothing can enter the queue between the last accept and the close."""
    if refuse_new_connections(sock):
        await asyncio.sleep(HANDSHAKE_SETTLE_S)
    waiting = _accept_waiting(sock)         # synchronous: nothing runs between this and the close
    await site.stop()
    sock.close()
    return waiting


async def _bounded(tasks: set[asyncio.Task], timeout_s: float) -> int:
    """Wait for the service's background work (limiter give-backs, the upstream tail of abandoned
    streams, read to bill it) at most `timeout_s`; cancel the rest (a cancelled tail settles what
    it read). Returns how many were cancelled."""
    if not tasks:
        return 0
    _, pending = await asyncio.wait(list(tasks), timeout=timeout_s)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return len(pending)


def _accept_waiting(sock: socket.socket) -> list[socket.socket]:
    taken = []
    while True:
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            return taken
        except OSError:
            return taken
        conn.setblocking(False)
        taken.append(conn)


def serve(settings: Settings, *, bootstrap: Callable[[Settings], Awaitable[list[str]]]) -> int:
    if settings.workers > 1 and settings.limiter == "memory":
        print("routerone: --workers > 1 cannot use limiter = \"memory\" (each process would keep its own "
              "limits); use limiter = \"auto\" (shared memory between the workers, or Redis when redis_url "
              "is set) or \"redis\"", file=sys.stderr)
        return 2
    # the address first: a first start that cannot listen printed (and registered) an admin key
    # for a gateway that never ran
    _check_port(settings.host, settings.port)
    for line in asyncio.run(bootstrap(settings)):
        print(line)
    url = f"http://{settings.host}:{settings.port}"
    print(f"Router One listening on {url}  (OpenAI base_url: {url}/v1; workers: {settings.workers})", flush=True)
    if settings.workers == 1:
        run_worker(settings)
        return 0
    return _run_workers(settings)


def _run_workers(settings: Settings) -> int:
    """N spawned workers on one port; /metrics merges them through a multiprocess directory; without
    Redis their limits live in one shared-memory limiter (limits/shared.py) made here, and their
    sticky conversations in one shared-memory table (routing/sticky_shared.py)."""
    own_dir = None
    metrics_dir = os.environ.get(MULTIPROC_ENV)
    if metrics_dir:
        os.makedirs(metrics_dir, exist_ok=True)
        for name in os.listdir(metrics_dir):     # values of an earlier run must not be summed in
            if name.endswith(".db"):
                os.remove(os.path.join(metrics_dir, name))
    else:
        metrics_dir = own_dir = tempfile.mkdtemp(prefix="routerone-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir    # inherited by the spawned workers
    ctx = multiprocessing.get_context("spawn")
    state = None
    if not uses_redis(settings):
        state = SharedLimiterState(entries=settings.limiter_entries)
    handle = state.handle if state else None
    # without Redis, sticky conversations live in one shared-memory table too (routing/sticky_shared.py)
    # and deployment cooldowns in one shared-memory table (routing/cooldown_shared.py)
    sticky = cooldowns = None
    try:
        sticky = None if settings.redis_url else SharedStickyState()
        cooldowns = None if settings.redis_url else SharedCooldownState()
    except BaseException:              # /dev/shm too small: the blocks made must not be left behind
        for block in (state, sticky):
            if block:
                block.unlink()
        raise
    procs = [ctx.Process(target=run_worker, args=(settings, True, handle, os.getpid(),
                                                  sticky.handle if sticky else None,
                                                  cooldowns.handle if cooldowns else None), daemon=False)
             for _ in range(settings.workers)]
    stopping: list[int] = []

    def stop(signum, _frame=None):
        stopping.append(signum)
        for p in procs:
            if p.is_alive():
                p.terminate()                      # SIGTERM: each worker drains
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):   # the workers are in sessions of their own
        signal.signal(sig, stop)
    for p in procs:
        p.start()
    if stopping:                                   # a signal came while they were starting
        stop(stopping[0])
    for p in procs:
        p.join()
    if own_dir:
        shutil.rmtree(own_dir, ignore_errors=True)
    if state:
        state.unlink()
    if sticky:
        sticky.unlink()
    if cooldowns:
        cooldowns.unlink()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0

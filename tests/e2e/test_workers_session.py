"""`serve --workers 2`: each worker runs in a session of its own (so Linux's autogroup scheduler
gives it a CPU share of its own, as a separate instance has), and a worker whose parent dies is
not left serving: it gets SIGTERM (PR_SET_PDEATHSIG), drains and exits, and the port is free.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from billing_procs import FakeUpstream, bootstrap_admin, write_catalog, write_config  # noqa: E402
from ratelimit_procs import ServeProcess, _alive  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sessions and PDEATHSIG: Linux")]


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


async def test_workers_have_own_sessions_and_exit_when_the_parent_is_killed(tmp_path: Path):
    db_url = f"sqlite:///{tmp_path / 'workers.sqlite'}"
    await bootstrap_admin(db_url)
    with FakeUpstream() as upstream:
        config = write_config(tmp_path / "workers.toml", database_url=db_url, upstream_url=upstream.base_url,
                              catalog_path=write_catalog(tmp_path / "catalog.toml"), log_level="info")
        server = ServeProcess(config, tmp_path, "workers", extra_args=["--workers", "2"])
        try:
            server.start()
            await asyncio.to_thread(server.wait_ready)
            deadline = time.monotonic() + 30
            while len(server.workers()) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            workers = server.workers()
            assert len(workers) == 2, workers
            parent_sid = os.getsid(server.proc.pid)
            # a worker is listed from its fork on, calls setsid once its interpreter is up, and catches
            # SIGTERM before it builds its app (which logs the demo provider's state, once per worker)
            while not (all(os.getsid(pid) == pid for pid in workers)
                       and server.log_path.read_text(errors="replace").count("demo provider") >= 2) \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            for pid in workers:
                assert os.getsid(pid) == pid != parent_sid, (pid, os.getsid(pid), parent_sid)

            server.proc.send_signal(signal.SIGKILL)        # nobody left to forward a signal
            server.proc.wait(timeout=10)
            deadline = time.monotonic() + 20
            while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not any(_alive(pid) for pid in workers), "a worker outlived its parent"
            assert _refused(server.port)
            log = server.log_path.read_text(errors="replace")
            assert log.count("drained:") == 2, log[-2000:]
        finally:
            server.stop()

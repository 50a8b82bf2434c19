"""The shared-memory slot tables (routing/slot_table.py: the sticky table and the cooldown board of
`serve --workers N` without Redis) with their block truncated by another process of the same user
(the block is a file in /dev/shm, mode 0600): as limits/shared.py's SharedLimiter (ops7), each
operation checks the block's size and magic first, and falls back instead of dying of SIGBUS."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

_DAMAGE = r"""
def damage(handle, how):
    fd = os.open("/dev/shm/" + handle.shm_name.lstrip("/"), os.O_RDWR)      # someone else's open
    full = os.fstat(fd).st_size
    os.ftruncate(fd, 0 if how == "zeroed" else int(how))
    if how == "zeroed":                          # and grown again: the size is right, the content gone
        os.ftruncate(fd, full)
    os.close(fd)
"""

_STICKY = r"""
import asyncio, os, sys
from routerone.routing.sticky_shared import SharedStickyState, SharedStickyTable
""" + _DAMAGE + r"""
state = SharedStickyState(slots=1024)
try:
    table = SharedStickyTable(state.handle)
    table.put("conv-a", "model-a")
    assert table.get("conv-a") == "model-a"
    damage(state.handle, sys.argv[1])
    print("get", table.get("conv-a"), flush=True)          # not known: decided afresh
    table.put("conv-b", "model-b")
    print("put; get", table.get("conv-b"), flush=True)
    print("fallbacks", table.fallback_events, flush=True)
    asyncio.run(table.close())
finally:
    state.unlink()
"""

_COOLDOWN = r"""
import asyncio, os, sys
from routerone.routing.cooldown_shared import SharedCooldownBoard, SharedCooldownState
""" + _DAMAGE + r"""
state = SharedCooldownState()
try:
    board = SharedCooldownBoard(state.handle)
    board.publish("dep-a", 30.0)
    board.refresh()
    assert board.until("dep-a") > 0
    damage(state.handle, sys.argv[1])
    board.publish("dep-b", 30.0)                           # stays this worker's own
    board.clear("dep-a")
    board.refresh()
    print("cooling", sorted(board.shared), flush=True)
    print("fallbacks", board.fallback_events, flush=True)
    board._table.close()
finally:
    state.unlink()
"""


@pytest.mark.parametrize("size", ["0", "4096", "zeroed"])
@pytest.mark.parametrize("kind, script, expected", [
    ("sticky", _STICKY, ["get None", "put; get None", "fallbacks 3"]),
    ("cooldown", _COOLDOWN, ["cooling []", "fallbacks 3"]),
])
def test_a_slot_block_truncated_by_another_process_falls_back_instead_of_killing_the_worker(kind, script,
                                                                                           expected, size):
    """Before, the next operation touched pages past the file's new end: SIGBUS (exit -7), the worker
    died. Now each one checks the block's size and magic under the lock first: the sticky table
    answers "not known" (the conversation is decided afresh), the cooldown board leaves cooldowns to
    the worker's own health; both count it in `fallback_events`."""
    out = subprocess.run([sys.executable, "-c", script, size], capture_output=True, text=True, timeout=60,
                         env={**os.environ})
    assert out.returncode == 0, (kind, out.returncode, out.stderr[-2000:])
    assert out.stdout.splitlines() == expected, out

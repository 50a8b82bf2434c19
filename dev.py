#!/usr/bin/env python3
"""Router One's two set-up commands, on a fresh machine with only Python 3.11+:

    python3 dev.py serve     # install into ./.venv if needed, then start Router One (SQLite, in-process limits)
    python3 dev.py test      # install into ./.venv if needed, then run the whole test suite
    python3 dev.py routerone models    # any `routerone` CLI command (same as .venv/bin/routerone models)

Extra arguments go to `routerone serve` / `pytest` / `routerone`. Installation is skipped when pyproject.toml is
unchanged since the last one (a hash stamp in .venv).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_env(extras: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit("Router One needs Python 3.11 or newer")
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if _installed(extras) or (not extras and _installed("test")):    # test's install holds Router One too
        return
    print(f"installing Router One{f' [{extras}]' if extras else ''} into .venv ...", flush=True)
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "-e", target], check=True)
    (VENV / f".installed-{extras or 'base'}").write_text(_digest(extras))


def _digest(extras: str) -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()


def _installed(extras: str) -> bool:
    stamp = VENV / f".installed-{extras or 'base'}"
    return stamp.exists() and stamp.read_text() == _digest(extras)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("serve", "test", "routerone"):
        print(__doc__)
        return 2
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd in ("serve", "routerone"):
        ensure_env("")
        args = ["serve", *rest] if cmd == "serve" else rest
        argv = [str(PY), "-m", "routerone", *args]
        if os.name == "posix":
            # Router One becomes this process: a SIGTERM (kill, a supervisor, a container stop) reaches
            # it and it drains; as a child it was orphaned, still listening, when dev.py was ended
            os.execv(argv[0], argv)
        return subprocess.call(argv, cwd=os.getcwd())
    ensure_env("test")
    return subprocess.call([str(PY), "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())

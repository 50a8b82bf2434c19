"""py-spy for `bench/run.py --profile`: install it on first use, summarise its raw stacks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["ensure_pyspy", "summarize_collapsed"]


def ensure_pyspy(venv: Path, log) -> tuple[str | None, str]:
    """py-spy in its own venv (bench/.venv-tools), installed on first use."""
    exe = venv / "bin" / "py-spy"
    if exe.exists():
        return str(exe), ""
    log("py-spy: installing into bench/.venv-tools ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "py-spy"],
                           capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    if r.returncode != 0 or not exe.exists():
        return None, (r.stderr or r.stdout).strip()[-300:]
    return str(exe), ""


def summarize_collapsed(path: Path, top: int = 20) -> dict:
    """From py-spy's raw output: self time by frame (file:line), inclusive time by function, and
    inclusive time of Router One's own functions (src/routerone), as % of all samples."""
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    ours: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        c = int(n)
        total += c
        frames = [f for f in stack.split(";") if f]
        if frames:
            self_t[frames[-1]] = self_t.get(frames[-1], 0) + c
        seen: set[str] = set()
        for f in frames:
            fn = f.rsplit(":", 1)[0] + ")" if ":" in f else f     # drop the line: per function
            if fn in seen:
                continue
            seen.add(fn)
            incl[fn] = incl.get(fn, 0) + c
            if "routerone/" in fn and "__main__" not in fn and "cli.py" not in fn and "server.py" not in fn:
                ours[fn] = ours.get(fn, 0) + c

    def mk(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, v * 100 / max(1, total)) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    return {"self": mk(self_t), "incl": mk(incl), "ours": mk(ours), "total": total}

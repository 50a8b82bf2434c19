"""LiteLLM's proxy for the comparison: installed into its own virtual environment (bench/.venv-litellm,
git-ignored), configured against the bench upstream with an `openai/` model, no database.

    python bench/litellm_setup.py            # install (or report what is installed) and exit
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-litellm"
MASTER_KEY = "sk-bench-litellm-master-0123456789"
INSTALL_TIMEOUT_S = 900


def litellm_bin() -> Path:
    return VENV / "bin" / "litellm"


def ensure_installed(log=print) -> tuple[Path | None, str]:
    """(path to the `litellm` CLI, "") or (None, reason it is unavailable)."""
    exe = litellm_bin()
    if exe.exists():
        return exe, ""
    log(f"LiteLLM: installing 'litellm[proxy]' into {VENV.relative_to(HERE.parent)} (one time, a few minutes)...")
    try:
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True,
                           timeout=120)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        r = subprocess.run(pip + ["litellm[proxy]"], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            return None, "pip install 'litellm[proxy]' failed: " + " | ".join(tail)
    except subprocess.TimeoutExpired:
        return None, f"pip install 'litellm[proxy]' took longer than {INSTALL_TIMEOUT_S}s"
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"cannot create {VENV}: {exc}"
    if not exe.exists():
        return None, f"installed, but {exe} is missing"
    return exe, ""


def write_config(path: Path, upstream_base: str, model: str = "gpt-4o-mini") -> Path:
    path.write_text(f"""model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {upstream_base}
      api_key: sk-bench-upstream
general_settings:
  master_key: {MASTER_KEY}
litellm_settings:
  telemetry: false
  set_verbose: false
""")
    return path


def command(config: Path, port: int) -> list[str]:
    return [str(litellm_bin()), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ANTHROPIC_", "DATABASE_URL", "LITELLM_", "ROUTERONE_"))}
    env.update({
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",   # no fetch of the cost map at start (offline)
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "NO_DOCS": "True",
    })
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '')}"
    env.pop("VIRTUAL_ENV", None)
    return env


def version() -> str:
    py = VENV / "bin" / "python"
    if not py.exists():
        return ""
    r = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                       capture_output=True, text=True, timeout=60)
    return r.stdout.strip()


if __name__ == "__main__":
    exe, why = ensure_installed()
    print(f"litellm {version()} at {exe}" if exe else f"LiteLLM unavailable: {why}")
    sys.exit(0 if exe else 1)

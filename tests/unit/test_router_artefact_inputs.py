"""A corrupted router artefact (ROUTERONE_ROUTER_MODEL: NaN, wrong shapes or dtypes, a non-scalar
where a scalar belongs) is refused at load with one line naming the file, never a traceback and
never served (a NaN embedding predicted NaN quality; a wrong shape crashed on the first request)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SHIPPED = SRC / "routerone" / "routing" / "learned" / "router_model.npz"

BROKEN = {
    "nan embedding": {"embeddings": lambda a: np.full(a.shape, np.nan)},
    "inf bias": {"bias": lambda a: np.array([np.inf] + [0.0] * (len(a) - 1))},
    "text bias": {"bias": lambda a: np.array(["a"] * len(a))},
    "complex bias": {"bias": lambda a: a.astype(complex) + 1j},
    "embeddings of other models": {"embeddings": lambda a: a[:3]},
    "idf 2-d": {"idf": lambda a: np.zeros((2, 2))},
    "coef_sparse short": {"coef_sparse": lambda a: a[:10]},
    "dense_mean short": {"dense_mean": lambda a: a[:2]},
    "format_version array": {"format_version": lambda a: np.array([a, a])},
    "prior_scale negative": {"prior_scale": lambda a: np.float64(-1)},     # 0 is valid: no prior map
    "prior_scale inf": {"prior_scale": lambda a: np.float64(np.inf)},
    "length_norm nan": {"length_norm": lambda a: np.float64(np.nan)},
    "output_tokens negative": {"output_tokens": lambda a: -a},
    "models not names": {"models": lambda a: np.arange(len(a))},
    "meta not an object": {"meta": lambda a: np.str_("[1]")},
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_artefact_is_one_line_naming_the_file(tmp_path: Path, case: str) -> None:
    with np.load(SHIPPED) as z:
        arrays = {k: z[k] for k in z.files}
    for key, change in BROKEN[case].items():
        arrays[key] = change(arrays[key])
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    env.update({"PYTHONPATH": str(SRC), "ROUTERONE_ROUTER_MODEL": str(bad)})
    p = subprocess.run([sys.executable, "-m", "routerone", "models"], capture_output=True, text=True, env=env,
                       timeout=60, cwd=tmp_path)
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if "ROUTERONE_ROUTER_MODEL" in ln]
    assert len(lines) == 1 and str(bad) in lines[0] and "not a router profile artefact" in lines[0], p.stderr


def _eval(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTERONE_")}
    env["PYTHONPATH"] = str(SRC)
    return subprocess.run([sys.executable, "-m", "routerone", "eval-routing", "--out", str(tmp / "o"), *args],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp)


CSV_ROWS = "prompt,m1,m2\r\nhello,1,0\r\nworld,0,1\r\nfoo,1,1\r\nbar,0,0\r\n"


def test_eval_csv_saved_with_a_bom_is_read(tmp_path: Path) -> None:
    """A CSV saved by a spreadsheet (UTF-8 BOM, CRLF) was refused as having no `prompt` column."""
    (tmp_path / "t.csv").write_bytes(b"\xef\xbb\xbf" + CSV_ROWS.encode())
    p = _eval(tmp_path, "t.csv", "t.csv")
    assert p.returncode == 0, p.stderr


def test_prices_json_boolean_price_is_refused(tmp_path: Path) -> None:
    """`true` as a price was read as 1 USD per 1M tokens."""
    (tmp_path / "t.csv").write_text(CSV_ROWS)
    (tmp_path / "p.json").write_text('{"m1": {"input_token_price_per_million": true, '
                                     '"output_token_price_per_million": 1}}')
    p = _eval(tmp_path, "--prices", "p.json", "t.csv", "t.csv")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "p.json" in p.stderr and "m1" in p.stderr, p.stderr


def test_eval_csv_with_a_million_columns_is_refused_in_time(tmp_path: Path) -> None:
    """A CSV of 10^6 columns ran for minutes; now one line naming the file, promptly."""
    n = 1_000_000
    (tmp_path / "w.csv").write_text(",".join(["prompt"] + [f"m{i}" for i in range(n)]) + "\n"
                                    + ",".join(["hi"] + ["1"] * n) + "\n")
    p = _eval(tmp_path, "w.csv", "w.csv")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "w.csv" in p.stderr and "columns" in p.stderr, p.stderr

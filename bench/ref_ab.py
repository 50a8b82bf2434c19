"""Interleaved A/B of two committed revisions with bench/run.py (as bench/arenas_ab.py alternates settings):
each round runs `run.py --ref <rev> --only direct,routerone --skip-litellm --skip-postgres` once per revision,
the order swapping every round (A B, B A, ...), each run writing to its own directory under --out. Prints a
JSON line per run, then a markdown table per scenario: median [min-max] over the rounds of req/s, gateway CPU
ms/req, p50 latency (streams: TTFT p50) and the direct row's req/s as a load indicator for the same run.

    .venv/bin/python bench/ref_ab.py --old d00617d --new HEAD --rounds 4 --out /tmp/perfab-ab
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = str(HERE.parent / ".venv" / "bin" / "python")
METRICS = (("rps", "req/s"), ("server_cpu_ms_per_req", "CPU ms/req"), ("p50_ms", "p50 ms (streams: TTFT p50)"))


def row(scen: dict) -> dict:
    if "failed" in scen:
        return {"failed": scen["failed"][-200:]}
    p50 = scen.get("ttft_ms", {}).get("p50") if scen.get("stream") else scen["lat_ms"]["p50"]
    return {"rps": scen["rps"], "server_cpu_ms_per_req": scen.get("server_cpu_ms_per_req"), "p50_ms": p50,
            "total_p50_ms": scen["lat_ms"]["p50"], "errors": scen["errors"]}


def spread(vals: list[float], nd: int) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    f = f"{{:,.{nd}f}}"
    return f"{f.format(statistics.median(vals))} [{f.format(min(vals))}-{f.format(max(vals))}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", required=True, help="directory for each run's results.json (not bench/results)")
    ap.add_argument("extra", nargs="*", help="more run.py arguments (after --)")
    a = ap.parse_args()
    out = Path(a.out)
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for r in range(a.rounds):
        order = (("old", a.old), ("new", a.new)) if r % 2 == 0 else (("new", a.new), ("old", a.old))
        for label, ref in order:
            d = out / f"{label}-r{r + 1}"
            cmd = [PY, str(HERE / "run.py"), "--ref", ref, "--only", "direct,routerone", "--skip-litellm",
                   "--skip-postgres", "--out", str(d), *a.extra]
            load0, t0 = os.getloadavg()[0], time.strftime("%H:%M:%S", time.gmtime())
            p = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True)
            (out / f"{label}-r{r + 1}.log").write_text(p.stdout + p.stderr)
            if p.returncode != 0:
                print(json.dumps({"round": r + 1, "rev": label, "failed": p.stderr[-500:]}), flush=True)
                continue
            res = json.loads((d / "results.json").read_text())
            ro = res["targets"]["routerone"]
            rec = {"round": r + 1, "rev": label, "ref": ref, "utc": t0, "load": round(load0, 2),
                   "source": res["meta"]["source"],
                   "direct_json_c64_rps": res["targets"]["direct"]["scenarios"]["json_c64"].get("rps"),
                   "rss_mb": ro.get("rss", {}).get("max_process_mb"),
                   "scenarios": {k: row(v) for k, v in ro["scenarios"].items()}}
            runs[label].append(rec)
            print(json.dumps(rec), flush=True)
    (out / "runs.json").write_text(json.dumps(runs, indent=1))
    print(f"\n| scenario | metric | {a.old} median [min-max] | {a.new} median [min-max] | new/old |")
    print("|---|---|---:|---:|---:|")
    scen_ids = list(runs["old"][0]["scenarios"]) if runs["old"] else []
    for sid in scen_ids:
        for key, name in METRICS:
            vals = {lb: [x["scenarios"][sid].get(key) for x in runs[lb] if sid in x["scenarios"]] for lb in runs}
            nd = 0 if key == "rps" else 3 if key == "server_cpu_ms_per_req" else 2
            mo = statistics.median([v for v in vals["old"] if v is not None] or [0])
            mn = statistics.median([v for v in vals["new"] if v is not None] or [0])
            ratio = f"{mn / mo:.3f}" if mo else "-"
            print(f"| {sid} | {name} | {spread(vals['old'], nd)} | {spread(vals['new'], nd)} | {ratio} |")
    for lb in runs:
        print(f"{lb}: direct json_c64 req/s per run {[round(x['direct_json_c64_rps']) for x in runs[lb]]}, "
              f"peak RSS MB {[round(x['rss_mb'], 1) for x in runs[lb] if x['rss_mb']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The selection rule of bench/results/auto-v5-plan.md (v4's rule): base = the current code's
figures from session 6 (v4 C1, the shipped code), candidate = a directory written by the v5 runs.

    python bench/auto_v5/decide.py CAND_DIR [--merge]

CAND_DIR holds `lodo-<set>/eval_lodo.json` (one held-out set each) and `<set>/eval.json`
(cross-fitted arena, gsm8k, mmlu). --merge also writes CAND_DIR/eval_lodo.json (the four merged).
Prints the eight target figures (value [95% interval]) for base and candidate, d_f and D, and the
figures reported beside the rule.
"""
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
SETS = ("mmlu", "gsm8k", "arena", "mtbench")


def base_figures() -> dict:
    f = {}
    cross = {}
    for line in (RESULTS / "auto-v4" / "crossfit-figures.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["run"] == "c1":
            cross[r["figure"].split()[0]] = r
    for d in ("mmlu", "gsm8k"):
        v, (lo, hi) = cross[d]["apgr"]
        f[f"cross-fit {d} APGR"] = (v, lo, hi)
    v, (lo, hi) = cross["arena"]["aiq_minus_zero"]
    f["cross-fit arena AIQ - zero"] = (v, lo, hi)
    lodo = json.loads((RESULTS / "auto-v4" / "eval_lodo-c1.json").read_text())["results"]
    return {**f, **lodo_figures(lodo)}


def lodo_figures(lodo: dict) -> dict:
    f = {}
    for d in SETS:
        a = lodo[d]["two_model"]["routers"]["auto"]
        f[f"LODO {d} APGR"] = (a["apgr"], *a["apgr_ci"])
    m = lodo["arena"]["multi_model"]
    f["LODO arena AIQ - zero"] = (m["auto_minus_zero_aiq"], *m["routers"]["auto"]["aiq_minus_zero_ci"])
    return f


def cand_figures(out: Path, merge: bool) -> tuple[dict, dict]:
    f = {}
    for d in ("mmlu", "gsm8k"):
        a = json.loads((out / d / "eval.json").read_text())["two_model"]["routers"]["auto"]
        f[f"cross-fit {d} APGR"] = (a["apgr"], *a["apgr_ci"])
    m = json.loads((out / "arena" / "eval.json").read_text())["multi_model"]
    f["cross-fit arena AIQ - zero"] = (m["auto_minus_zero_aiq"], *m["routers"]["auto"]["aiq_minus_zero_ci"])
    lodo = {}
    for d in SETS:
        run = json.loads((out / f"lodo-{d}" / "eval_lodo.json").read_text())
        lodo[d] = run["results"][d]
    if merge:
        (out / "eval_lodo.json").write_text(json.dumps(
            {"mode": "leave-one-dataset-out", "data": run["data"], "results": lodo,
             "note": "merged from four eval_lodo runs (run_lodo datasets=[one held-out set] each, run in "
                     "parallel; same computation as --lodo)"}, indent=2))
    return {**f, **lodo_figures(lodo)}, lodo


ORDER = ["cross-fit mmlu APGR", "cross-fit gsm8k APGR", "cross-fit arena AIQ - zero", "LODO mmlu APGR",
         "LODO gsm8k APGR", "LODO arena APGR", "LODO mtbench APGR", "LODO arena AIQ - zero"]


def main(args: list[str], label: str = "C1 transfer-calibrated traits") -> None:
    out = Path(args[0])
    base = base_figures()
    cand, lodo = cand_figures(out, "--merge" in args)
    print(f"| figure | base (shipped code) | {label} | d |")
    print("|---|---|---|---|")
    ds = []
    for name in ORDER:
        b, lo, hi = base[name]
        c = cand[name]
        ds.append((c[0] - b) / ((hi - lo) / 3.92))
        fmt = (lambda v: f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]") if "AIQ" in name else \
            (lambda v: f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]")
        print(f"| {name} | {fmt(base[name])} | {fmt(c)} | {ds[-1]:+.2f} |")
    print(f"D = mean({', '.join(f'{d:+.2f}' for d in ds)}) = {sum(ds) / len(ds):+.3f}")
    m = lodo["arena"]["multi_model"]["routers"]
    print(f"LODO arena auto - random-same-mix AIQ: {m['auto']['aiq'] - m['random_same_mix']['aiq']:+.3f} "
          f"{[round(v, 3) for v in m['auto']['aiq_minus_random_ci']]}")


if __name__ == "__main__":
    main(sys.argv[1:])

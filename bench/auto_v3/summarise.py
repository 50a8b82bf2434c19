"""Print the issue-16 figures (with bootstrap 95% intervals) and the selection score S of one
full evaluation directory written by run_full_eval.sh.

    python bench/auto_v3/summarise.py OUT

S (bench/results/auto-v3-plan.md) = mean of APGR - 0.5 over the four LODO held-out sets and of
arena LODO AIQ(auto) - AIQ(zero router).
"""
import json
import sys
from pathlib import Path


def ci(v):
    return f"[{v[0]:+.3f}, {v[1]:+.3f}]" if v[0] < 0 or v[1] < 0 else f"[{v[0]:.3f}, {v[1]:.3f}]"


def main(out: Path) -> None:
    rows, gains = [], []
    for d in ("arena", "mmlu", "gsm8k"):
        r = json.loads((out / d / "eval.json").read_text())
        if "multi_model" in r:
            a = r["multi_model"]["routers"]["auto"]
            rows.append((f"{d} cross-fit AIQ - zero", f"{r['multi_model']['auto_minus_zero_aiq']:+.3f}",
                         ci(a["aiq_minus_zero_ci"])))
        if "two_model" in r:
            a = r["two_model"]["routers"]["auto"]
            rows.append((f"{d} cross-fit APGR", f"{a['apgr']:.3f}", ci(a["apgr_ci"])))
    lodo = json.loads((out / "lodo" / "eval_lodo.json").read_text())["results"]
    for d in ("mmlu", "gsm8k", "arena", "mtbench"):
        a = lodo[d]["two_model"]["routers"]["auto"]
        rows.append((f"LODO {d} held out: 2-model APGR", f"{a['apgr']:.3f}", ci(a["apgr_ci"])))
        gains.append(a["apgr"] - 0.5)
    m = lodo["arena"]["multi_model"]
    rows.append(("LODO arena held out: 14-model AIQ - zero", f"{m['auto_minus_zero_aiq']:+.3f}",
                 ci(m["routers"]["auto"]["aiq_minus_zero_ci"])))
    gains.append(m["auto_minus_zero_aiq"])
    print("| figure | value | 95% interval |\n|---|---|---|")
    for name, v, c in rows:
        print(f"| {name} | {v} | {c} |")
    print(f"\nS = mean({', '.join(f'{g:+.4f}' for g in gains)}) = {sum(gains) / len(gains):+.4f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

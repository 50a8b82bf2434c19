"""The selection rule of bench/results/auto-v4-plan.md over full-evaluation directories written by
bench/auto_v3/run_full_eval.sh.

    python bench/auto_v4/decide.py base=OUT_BASE c1=OUT_C1 [c2=OUT_C2 ...]

For each of the eight target figures f (cross-fitted MMLU APGR, GSM8K APGR, arena 14-model
AIQ - zero; LODO APGR with MMLU, GSM8K, arena, MT-Bench held out; LODO arena AIQ - zero):
d_f = (cand_f - base_f) / se_f, se_f = (hi - lo) / 3.92 of the base's 95% interval; D = mean d_f.
Prints one table (value [interval] per run, d_f per candidate) and D per candidate.
"""
import json
import sys
from pathlib import Path


def figures(out: Path) -> dict[str, tuple[float, float, float]]:
    f = {}
    for d in ("mmlu", "gsm8k"):
        a = json.loads((out / d / "eval.json").read_text())["two_model"]["routers"]["auto"]
        f[f"cross-fit {d} APGR"] = (a["apgr"], *a["apgr_ci"])
    m = json.loads((out / "arena" / "eval.json").read_text())["multi_model"]
    f["cross-fit arena AIQ - zero"] = (m["auto_minus_zero_aiq"], *m["routers"]["auto"]["aiq_minus_zero_ci"])
    lodo = json.loads((out / "lodo" / "eval_lodo.json").read_text())["results"]
    for d in ("mmlu", "gsm8k", "arena", "mtbench"):
        a = lodo[d]["two_model"]["routers"]["auto"]
        f[f"LODO {d} APGR"] = (a["apgr"], *a["apgr_ci"])
    m = lodo["arena"]["multi_model"]
    f["LODO arena AIQ - zero"] = (m["auto_minus_zero_aiq"], *m["routers"]["auto"]["aiq_minus_zero_ci"])
    return f


def main(args: list[str]) -> None:
    runs = dict(a.split("=", 1) for a in args)
    figs = {k: figures(Path(v)) for k, v in runs.items()}
    base = figs["base"]
    cands = [k for k in figs if k != "base"]
    print("| figure | " + " | ".join(figs) + " | " + " | ".join(f"d {c}" for c in cands) + " |")
    print("|---" * (1 + len(figs) + len(cands)) + "|")
    ds = {c: [] for c in cands}
    for name, (b, lo, hi) in base.items():
        se = (hi - lo) / 3.92
        cells = [f"{v:+.3f} [{l:+.3f}, {h:+.3f}]" if "AIQ" in name else f"{v:.3f} [{l:.3f}, {h:.3f}]"
                 for v, l, h in (figs[k][name] for k in figs)]
        for c in cands:
            ds[c].append((figs[c][name][0] - b) / se)
        print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(f"{ds[c][-1]:+.2f}" for c in cands) + " |")
    for c in cands:
        print(f"D({c}) = mean({', '.join(f'{d:+.2f}' for d in ds[c])}) = {sum(ds[c]) / len(ds[c]):+.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])

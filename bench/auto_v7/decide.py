"""The selection rule of bench/results/auto-v7-plan.md (v6b's nine figures): base = C-LEN, the
shipped code, from its committed figures (auto-v6/crossfit-figures.jsonl, auto-v6/eval_lodo-clen.json);
candidate = a run directory holding `lodo-<set>/eval_lodo.json` (one held-out set each),
`multi-arena/eval.json` (the multi-table cross-fit of arena) and, optionally, `<set>/eval.json`
(cross-fitted single tables; absent = the base's, which a one-table path cannot change).

    python bench/auto_v7/decide.py CAND_DIR [--merge] [--label NAME]
"""
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
SETS = ("mmlu", "gsm8k", "arena", "mtbench")
MULTI = "multi-table cross-fit arena AIQ - zero"
ORDER = ["cross-fit mmlu APGR", "cross-fit gsm8k APGR", "cross-fit arena AIQ - zero", "LODO mmlu APGR",
         "LODO gsm8k APGR", "LODO arena APGR", "LODO mtbench APGR", "LODO arena AIQ - zero", MULTI]


def lodo_figures(lodo: dict) -> dict:
    f = {}
    for d in SETS:
        a = lodo[d]["two_model"]["routers"]["auto"]
        f[f"LODO {d} APGR"] = (a["apgr"], *a["apgr_ci"])
    m = lodo["arena"]["multi_model"]
    f["LODO arena AIQ - zero"] = (m["auto_minus_zero_aiq"], *m["routers"]["auto"]["aiq_minus_zero_ci"])
    return f


def base_figures() -> dict:
    f = {}
    for line in (RESULTS / "auto-v6" / "crossfit-figures.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["run"] != "c-len":
            continue
        name = r["figure"].split()[0]
        if r["figure"].startswith("multi-table"):
            v, (lo, hi) = r["aiq_minus_zero"]
            f[MULTI] = (v, lo, hi)
        elif name == "arena":
            v, (lo, hi) = r["aiq_minus_zero"]
            f["cross-fit arena AIQ - zero"] = (v, lo, hi)
        else:
            v, (lo, hi) = r["apgr"]
            f[f"cross-fit {name} APGR"] = (v, lo, hi)
    lodo = json.loads((RESULTS / "auto-v6" / "eval_lodo-clen.json").read_text())["results"]
    return {**f, **lodo_figures(lodo)}


def cand_figures(out: Path, base: dict, merge: bool) -> tuple[dict, dict]:
    f = {}
    for d in ("mmlu", "gsm8k"):
        p = out / d / "eval.json"
        if p.exists():
            a = json.loads(p.read_text())["two_model"]["routers"]["auto"]
            f[f"cross-fit {d} APGR"] = (a["apgr"], *a["apgr_ci"])
        else:
            f[f"cross-fit {d} APGR"] = base[f"cross-fit {d} APGR"]
    for key, sub in (("cross-fit arena AIQ - zero", "arena"), (MULTI, "multi-arena")):
        p = out / sub / "eval.json"
        if p.exists():
            m = json.loads(p.read_text())["multi_model"]
            f[key] = (m["auto_minus_zero_aiq"], *m["routers"]["auto"]["aiq_minus_zero_ci"])
        else:
            f[key] = base[key]
    lodo = {}
    for d in SETS:
        run = json.loads((out / f"lodo-{d}" / "eval_lodo.json").read_text())
        lodo[d] = run["results"][d]
    if merge:
        (out / "eval_lodo.json").write_text(json.dumps(
            {"mode": "leave-one-dataset-out", "data": run["data"], "results": lodo,
             "note": "merged from four eval_lodo runs (--lodo --held-out SET, one per process)"}, indent=2))
    return {**f, **lodo_figures(lodo)}, lodo


def main(args: list[str]) -> None:
    out = Path(args[0])
    label = args[args.index("--label") + 1] if "--label" in args else "candidate"
    base = base_figures()
    cand, lodo = cand_figures(out, base, "--merge" in args)
    print(f"| figure | base (C-LEN, shipped) | {label} | d |")
    print("|---|---|---|---|")
    ds = []
    for name in ORDER:
        b, lo, hi = base[name]
        c = cand[name]
        ds.append((c[0] - b) / ((hi - lo) / 3.92))
        fmt = (lambda v: f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]") if "AIQ" in name else \
            (lambda v: f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]")
        print(f"| {name} | {fmt(base[name])} | {fmt(c)} | {ds[-1]:+.2f} |")
    print(f"D = mean of nine ({', '.join(f'{d:+.2f}' for d in ds)}) = {sum(ds) / len(ds):+.3f}")
    held = all(cand[f"LODO {d} APGR"][1] > 0.5 for d in ("mmlu", "gsm8k"))
    print(f"LODO MMLU and GSM8K APGR intervals above 0.5: {held}")
    m = lodo["arena"]["multi_model"]["routers"]
    print(f"LODO arena auto - random-same-mix AIQ: {m['auto']['aiq'] - m['random_same_mix']['aiq']:+.3f} "
          f"{[round(v, 3) for v in m['auto']['aiq_minus_random_ci']]}")


if __name__ == "__main__":
    main(sys.argv[1:])

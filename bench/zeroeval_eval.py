"""The SHIPPED `auto` on ZeroEval (yuchenlin/ZeroEval: GSM8K, MATH level 5, CRUXEval answers of
~50 models), scored without retraining, as bench/exteval.py scores LLMRouter and RouterArena.

    .venv/bin/python bench/zeroeval_eval.py --source /work/.mirror/yuchenlin+ZeroEval/repo \
        [--work /tmp/zeroeval] [--bootstrap 1000] [--md bench/results/auto-zeroeval.md]

1. `python -m routerone.routing.learned.train prepare --dataset zeroeval --source SNAPSHOT --out
   WORK/data/zeroeval` (prices.json = genai-prices list prices of the models it knows).
2. the check of the judging: per-model accuracy vs `result_dirs/<task>.summary.json`, with crux_eval.py's
   rules at HEAD and as they were before its 2024-09-22 fixes (when the HEAD summary was written).
3. models scored: the priced models with a score on every row (eval-routing drops a prompt missing
   any evaluated model's score, so an incomplete model would cut the set); WORK/data/zeroeval-scored.csv.
4. `routerone eval-routing WORK/data/zeroeval-scored.csv --router shipped --prices ...` on the whole set,
   per task, and on the rows overlapping no evaluation set; decisions, per-prompt signal and the runtime
   check as in exteval.py (its functions).
Nothing here trains or changes the router. No RouterBench or AlpacaEval data is read.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exteval as X  # noqa: E402  (sets sys.path to this checkout's src)

from routerone.routing.evaluation import load_prices, load_table  # noqa: E402
from routerone.routing.learned import zeroeval as Z  # noqa: E402
from routerone.routing.learned.external import Source  # noqa: E402
from routerone.routing.learned.profiles import ARTEFACT_PATH, ProfileRouter  # noqa: E402

MARKER = X.MARKER.replace("exteval.py", "zeroeval_eval.py")
BASE = ("prompt", "task", "overlaps", "prompt_tokens_o200k", "fold")
PAIRS = (("gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"),         # two-model routers (APGR), weak - strong
         ("Meta-Llama-3.1-8B-Instruct", "o1-mini-2024-09-12"))


def validation(src: Source) -> dict:
    out = {}
    for label, before in (("head", False), ("before_fixes", True)):
        for task, by in Z.summary_check(src, before).items():
            diffs = {m: a - s for m, (a, s) in by.items() if s is not None}
            worst = max(diffs, key=lambda m: abs(diffs[m]))
            out.setdefault(task, {})[label] = {
                "models": len(by), "without_summary_row": sorted(m for m, (_, s) in by.items() if s is None),
                "worst": [worst, diffs[worst]], "over_1_point": sorted(m for m, d in diffs.items() if abs(d) > 1)}
    return out


def run_pairs(args, data: Path, keep: list[str], srows: list[dict], scored: list[str], prices_json: Path) -> dict:
    """Two-model runs (APGR) of PAIRS, whole set and per task."""
    out: dict = {}
    for pair in PAIRS:
        if not set(pair) <= set(scored):
            continue
        sub = list(BASE) + [f for f in keep if f.split("|", 1)[0] in pair]
        label = " vs ".join(pair)
        out[label] = {}
        for task in ("all",) + tuple(Z.TASKS):
            trows = [r for r in srows if task == "all" or r["task"] == task]
            path = data.parent / "pairs" / f"{'-'.join(pair)}-{task}.csv"
            X._write_rows(path, sub, [{f: r[f] for f in sub} for r in trows])
            out[label][task] = X.figures(X.eval_cli(path, prices_json, args.work / "ev" / "pairs" / path.stem,
                                                    args.bootstrap))
    return out


def run(args) -> dict:
    data = X.prepare("zeroeval", args.source, args.work, args.reprepare)
    fields, rows = X._read_rows(data / "all.csv")
    prices_json = data / "prices.json"
    priced = json.loads(prices_json.read_text())
    models = [f for f in fields if "|" not in f and f not in BASE]
    scored = [m for m in models if m in priced and all(r.get(m, "") != "" for r in rows)]
    keep = list(BASE) + [f for f in fields if f.split("|", 1)[0] in scored]
    scored_csv = data.parent / "zeroeval-scored.csv"
    X._write_rows(scored_csv, keep, [{f: r[f] for f in keep} for r in rows])
    res = {"validation": validation(Source(args.source)), "models_all": models, "scored": scored,
           "unpriced": [m for m in models if m not in priced],
           "priced_incomplete": [m for m in models if m in priced and m not in scored],
           "command": f"routerone eval-routing {scored_csv} --router shipped --prices {prices_json} "
                      f"--decisions-out {args.work}/ev/zeroeval/decisions.csv --out {args.work}/ev/zeroeval"}
    res["whole"] = X.figures(X.eval_cli(scored_csv, prices_json, args.work / "ev" / "zeroeval", args.bootstrap, True))
    srows = X._read_rows(scored_csv)[1]
    clean = [r for r in srows if not r["overlaps"]]
    X._write_rows(data.parent / "zeroeval-nooverlap.csv", keep, clean)
    res["overlap_rows"] = len(srows) - len(clean)
    res["no_overlap"] = X.figures(X.eval_cli(data.parent / "zeroeval-nooverlap.csv", prices_json,
                                             args.work / "ev" / "zeroeval-nooverlap", args.bootstrap))
    table = load_table(scored_csv)
    prices = load_prices(prices_json, table.models)
    router = ProfileRouter.load(ARTEFACT_PATH)
    res["decisions"] = {"all": X.decision_stats(table, prices, router, np.arange(len(table.prompts)))}
    default = sorted(m for m in scored if router.profile(m).source == "default")
    res["sensitivity"] = {}
    for label, drop in ((f"without the default-profile models ({', '.join(default)})", default),
                        ("without o1 models (their hidden reasoning tokens are billed but not in the output "
                         "text, so their realised cost is understated)", [m for m in scored if m.startswith("o1")])):
        if not drop:
            continue
        sub = [f for f in keep if f.split("|", 1)[0] not in drop]
        path = data.parent / f"zeroeval-without-{len(res['sensitivity'])}.csv"
        X._write_rows(path, sub, [{f: r[f] for f in sub} for r in srows])
        res["sensitivity"][label] = X.figures(X.eval_cli(path, prices_json, args.work / "ev" / path.stem,
                                                         args.bootstrap))
        if label.startswith("without o1"):
            t2 = load_table(path)
            res["decisions"]["all, without o1"] = X.decision_stats(t2, load_prices(prices_json, t2.models), router,
                                                                   np.arange(len(t2.prompts)))
    res["tasks"] = {}
    for task in Z.TASKS:
        trows = [r for r in srows if r["task"] == task]
        tcsv = data.parent / "tasks" / "zeroeval" / f"{task}.csv"
        X._write_rows(tcsv, keep, trows)
        res["tasks"][task] = X.figures(X.eval_cli(tcsv, prices_json, args.work / "ev" / "zeroeval-tasks" / task,
                                                  args.bootstrap))
        idx = np.array([i for i, r in enumerate(srows) if r["task"] == task])
        res["decisions"][task] = X.decision_stats(table, prices, router, idx)
    res["pairs"] = run_pairs(args, data, keep, srows, scored, prices_json)
    res["runtime_check"] = X.runtime_check(table, prices, router, X.RUNTIME_SAMPLE)
    res["prices"] = {m: priced[m] for m in scored}
    return res


def report(r: dict, args) -> str:
    L = ["# The shipped `auto` on ZeroEval (GSM8K, MATH level 5, CRUXEval; never seen in training)", "",
         f"Written by `bench/zeroeval_eval.py` (re-run: `.venv/bin/python bench/zeroeval_eval.py --source "
         f"{args.source} --work {args.work}`). The shipped artefact is scored without retraining "
         f"(`eval-routing --router shipped`). Intervals: eval-routing's paired bootstrap, {args.bootstrap} "
         "resamples. Definitions as in auto-external.md. No RouterBench or AlpacaEval data is read "
         "(ZeroEval's `result_dirs/alpaca_eval/` is never listed).", "",
         "## Judging checked against the repository's summaries", "",
         "| task | models | worst difference, crux_eval.py at HEAD | models over 1 point | worst difference, "
         "rules before the 2024-09-22 fixes | models over 1 point |", "|---|---|---|---|---|---|"]
    for task, v in r["validation"].items():
        h, b = v["head"], v["before_fixes"]
        L.append(f"| {task} | {h['models']} | {h['worst'][1]:+.3f} ({h['worst'][0]}) | {len(h['over_1_point'])} "
                 f"| {b['worst'][1]:+.3f} ({b['worst'][0]}) | {len(b['over_1_point'])} |")
    L += ["", f"Scored models ({len(r['scored'])}: priced by genai-prices and scored on all "
              f"{r['whole']['n']} rows):", "", "| model | USD per 1M in/out | source | shipped profile |",
          "|---|---|---|---|"]
    src = r["decisions"]["all"]["profile_sources"]
    for m, p in sorted(r["prices"].items(), key=lambda kv: kv[1]["output_token_price_per_million"]):
        L.append(f"| {m} | {p['input_token_price_per_million']:g}/{p['output_token_price_per_million']:g} "
                 f"| {p['source']} | {src.get(m, '-')} |")
    L += ["", "Left out of the cost-based figures: not in genai-prices (or not the same model there): "
          + ", ".join(r["unpriced"]) + "; priced but without a score on every row: "
          + ", ".join(r["priced_incomplete"]) + ".", "", "Command:", "```", r["command"],
          "# per task / without overlapping rows: the same on WORK/data/tasks/zeroeval/<task>.csv and "
          "WORK/data/zeroeval-nooverlap.csv", "```", "", X.FIG_HEAD,
          X._fig_row("all rows", r["whole"]),
          X._fig_row(f"rows overlapping no evaluation set ({r['overlap_rows']} dropped)", r["no_overlap"])]
    for label, f in r["sensitivity"].items():
        L.append(X._fig_row(f"all rows, {label}", f))
    for task, f in r["tasks"].items():
        L.append(X._fig_row(task, f))
    L += ["", "Two-model routers (the shipped router's predicted quality gap as a RouteLLM-style router; APGR = "
              "average performance gap recovered, eval-routing's two_model figures):", "",
          "| pair (weak vs strong) | rows | n | APGR [95%] | random APGR | APGR - random [95%] | AIQ auto - zero [95%] "
          "| AIQ auto - random [95%] |", "|---|---|---|---|---|---|---|---|"]
    for label, by in r["pairs"].items():
        for task, f in by.items():
            L.append(f"| {label} | {task} | {f['n']} | {f['apgr']:.3f} {X._ci(f['apgr_ci'], '{:.3f}')} "
                     f"| {f['random_apgr']:.3f} | {X._ci(f['apgr_minus_random_ci'], '{:+.3f}')} "
                     f"| {f['auto_minus_zero']:+.4f} {X._ci(f['auto_minus_zero_ci'], '{:+.4f}')} "
                     f"| {X._ci(f['auto_minus_random_ci'], '{:+.4f}')} |")
    L += ["", "| rows | wtp 0 | wtp 0.5 | wtp 1 | strongest by data (mean q) | wtp 1 picks it | dominated picks "
              "wtp 0 / 0.5 / 1 / grid | of them strictly |", "|---|---|---|---|---|---|---|---|"]
    for key, d in r["decisions"].items():
        s = d["strongest_by_data"]
        L.append(f"| {key} | {X._picks(d['at'], '0.0')} | {X._picks(d['at'], '0.5')} | {X._picks(d['at'], '1.0')} "
                 f"| {s} ({d['mean_quality'][s]:.3f}) | {100 * d['wtp1_picks_strongest_share']:.0f}% "
                 f"| {' / '.join(X._pct(d['at'][w]['dominated_share']) for w in ('0.0', '0.5', '1.0'))}"
                 f" / {X._pct(d['dominated_share_over_grid'])} "
                 f"| {' / '.join(X._pct(d['at'][w]['strictly_dominated_share']) for w in ('0.0', '0.5', '1.0'))}"
                 f" / {X._pct(d['strictly_dominated_share_over_grid'])} |")
    L += ["", "| rows | r mean quality [95%] | r gap [95%] (models) | majority pick by wtp |", "|---|---|---|---|"]
    for key, d in r["decisions"].items():
        sg = d["signal"]
        L.append(f"| {key} | {X._r(sg['mean_quality'])} | {X._r(sg['gap'])} ({' - '.join(sg['gap_models'])}) | "
                 + "; ".join(f"{m} {a:.2f}-{b:.2f}" for m, a, b in d["majority_pick_ranges"]) + " |")
    rc = r["runtime_check"]
    L += ["", f"Runtime check: `BalancedStrategy.rank` on {rc['prompts']} sampled prompts chose the same first "
              "model as the evaluation at wtp " + ", ".join(f"{w}: {a}/{rc['prompts']}" for w, a in rc["agree"].items())
          + ".", ""]
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, required=True, help="ZeroEval snapshot (bare git dir)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/zeroeval"))
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--reprepare", action="store_true")
    ap.add_argument("--md", type=Path, default=X.ROOT / "bench" / "results" / "auto-zeroeval.md")
    args = ap.parse_args(argv)
    for k in X.OPERATOR_ENV:
        os.environ.pop(k, None)
    res = run(args)
    (args.work / "auto-zeroeval.json").write_text(json.dumps(res, indent=2))
    keep = args.md.read_text().split(MARKER)[0] if args.md.is_file() and MARKER in args.md.read_text() else ""
    args.md.write_text(keep + MARKER + "\n\n" + report(res, args))
    print(f"wrote {args.md} and {args.work / 'auto-zeroeval.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CLI subcommands of the learned router: `eval-routing` and `train-router`.

cli.py calls `register(subparsers)`; each subcommand sets `func`, a callable taking the parsed
arguments and returning an exit code. Heavy imports happen inside the callables.
"""
from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from pathlib import Path


def _input_file(value: str) -> str:
    """An argparse `type` for a CSV or JSON to read: a FIFO made the command wait for a writer for ever."""
    return _existing(value, dirs=False)


def _file_or_dir(value: str) -> str:
    return _existing(value, dirs=True)


def _existing(value: str, *, dirs: bool) -> str:
    try:
        mode = os.stat(value).st_mode
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {getattr(exc, 'strerror', None) or exc}") from None
    if not (stat.S_ISREG(mode) or (dirs and stat.S_ISDIR(mode))):
        raise argparse.ArgumentTypeError(f"{value!r} is not a {'file or directory' if dirs else 'file'}")
    return value


def _eval_routing(args: argparse.Namespace) -> int:
    from .evaluation import run_eval
    try:
        if args.held_out and not args.lodo:
            print("eval-routing: --held-out goes with --lodo", file=sys.stderr)
            return 2
        if args.lodo:
            from .eval_auto import run_lodo
            result = run_lodo(Path(args.data) if args.data else None, args.out, n_boot=args.bootstrap,
                              datasets=args.held_out, extra_data=args.extra_data or ())
            for line in lodo_lines(result):
                print(line)
            print(f"wrote {Path(args.out) / 'eval_lodo.json'}")
            return 0
        csvs = list(args.csvs)
        if len(csvs) == 1 and args.router:
            train, test = None, csvs[0]
        elif len(csvs) == 2:
            train, test = csvs
        else:
            print("eval-routing: give TRAIN_CSV TEST_CSV, or TEST_CSV with --router, or --lodo", file=sys.stderr)
            return 2
        from .learned.train import external_csvs
        extra_train = list(args.extra_train or ()) + [str(c) for c in external_csvs(args.extra_data).values()]
        result = run_eval(train, test, args.prices, args.out, strategy=args.strategy,
                          router=args.router, decisions_out=args.decisions_out,
                          extra_train=extra_train, n_boot=args.bootstrap)
    except (OSError, ValueError, KeyError) as exc:
        print(f"eval-routing: {exc}", file=sys.stderr)
        return 2
    for line in summary_lines(result):
        print(line)
    print(f"wrote {Path(args.out) / 'eval.json'}")
    return 0


def _ci(r: dict, key: str, fmt: str = "{:.3f}") -> str:
    ci = r.get(key)
    return f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else ""


def _two_lines(two: dict) -> list[str]:
    lines = [f"weak {two['weak_model']} = {two['weak_quality']:.4f}, "
             f"strong {two['strong_model']} = {two['strong_quality']:.4f}"]
    for name, r in two["routers"].items():
        a = r.get("apgr")
        lines.append(f"  {name:14s} APGR {'-' if a is None else f'{a:.3f}'}{_ci(r, 'apgr_ci')}  "
                     f"CPT(50%) {_pct(r.get('cpt_50_pct'))}{_ci(r, 'cpt_50_pct_ci', '{:.1f}%')}  "
                     f"CPT(80%) {_pct(r.get('cpt_80_pct'))}")
        if "apgr_minus_random_ci" in r:
            lines.append(f"  {'':14s} APGR - random router, 95% interval{_ci(r, 'apgr_minus_random_ci')}")
    return lines


def _multi_lines(multi: dict) -> list[str]:
    best = multi["best_single_model"]
    lines = [f"best single model: {best} ({multi['single_models'][best]['quality']:.3f}, "
             f"{multi['single_models'][best]['cost_micros_per_prompt']:.0f} micro-USD/prompt)"]
    for name, r in multi["routers"].items():
        kept = r.get("quality_kept_at_50pct_best_cost", r.get("quality_kept_at_50pct_best_cost"))
        lines.append(f"  {name:16s} AIQ {r['aiq']:.4f}{_ci(r, 'aiq_ci', '{:.4f}')}"
                     + (f"  quality kept at 50% of best cost: {kept:.3f}" if kept is not None else ""))
        if "aiq_minus_zero_ci" in r:
            lines.append(f"  {'':16s} AIQ - zero router {r['aiq'] - multi['routers']['zero_router']['aiq']:+.4f},"
                         f" 95% interval{_ci(r, 'aiq_minus_zero_ci', '{:+.4f}')}")
        if "aiq_minus_random_ci" in r:
            rnd = multi["routers"]["random_same_mix"]["aiq"]
            lines.append(f"  {'':16s} AIQ - random router (same model mix) {r['aiq'] - rnd:+.4f},"
                         f" 95% interval{_ci(r, 'aiq_minus_random_ci', '{:+.4f}')}")
    if "picks_by_wtp" in multi:
        for w, picks in multi["picks_by_wtp"].items():
            lines.append(f"  wtp={w}: " + ", ".join(f"{m} x{c}" for m, c in sorted(picks.items(), key=lambda x: -x[1])))
    return lines


def summary_lines(result: dict) -> list[str]:
    """Short human-readable summary of a run_eval result."""
    lines = [f"strategy {result.get('strategy')}, {result.get('split')}: test prompts {result['n_test']} "
             f"(dropped {result['n_test_dropped_missing_quality']} with missing scores)"]
    if "n_train" in result:
        lines.append(f"train prompts: {result['n_train']}")
    if result.get("bootstrap"):
        lines.append(f"intervals: paired bootstrap, {result['bootstrap']['resamples']} resamples, 95%")
    if result.get("two_model"):
        lines.extend(_two_lines(result["two_model"]))
    if result.get("multi_model"):
        lines.extend(_multi_lines(result["multi_model"]))
    if result.get("unpriced_models"):
        lines.append(f"no price (left out of cost metrics): {', '.join(result['unpriced_models'])}")
    if result.get("ignored_columns"):
        lines.append(f"ignored columns: {', '.join(result['ignored_columns'])}")
    lines.extend(f"wrote {p}" for p in result.get("plots", []))
    return lines


def lodo_lines(result: dict) -> list[str]:
    lines = []
    for name, r in result["results"].items():
        lines.append(f"== held out: {name} (trained on {', '.join(r['trained_on'])})")
        if r.get("two_model"):
            lines.extend(_two_lines(r["two_model"]))
        if r.get("multi_model"):
            sources = {}
            for m, s in r["profile_sources"].items():
                sources.setdefault(s, []).append(m)
            lines.append("  profiles: " + "; ".join(f"{s}: {len(ms)}" for s, ms in sources.items()))
            lines.extend(_multi_lines(r["multi_model"]))
    return lines


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1f}%"


def _train_router(args: argparse.Namespace) -> int:
    from .learned.profiles import ARTEFACT_PATH
    from .learned.train import default_data_dir, train_artefact
    data = Path(args.data) if args.data else default_data_dir()
    if not data.exists():
        print(f"train-router: no data at {data} (use --data DIR|CSV)", file=sys.stderr)
        return 2
    out = ARTEFACT_PATH if args.shipped else (Path(args.out) if args.out else None)
    if out is None:
        print("train-router: give --out PATH (or --shipped to rebuild the shipped artefact)", file=sys.stderr)
        return 2
    try:
        info = train_artefact(data, out, args.extra_data or ())
    except (OSError, ValueError, KeyError) as exc:
        print(f"train-router: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2))
    if not args.shipped:
        print(f"use it with: ROUTERONE_ROUTER_MODEL={info['path']} routerone serve")
    return 0


def register(subparsers) -> None:
    """Add `eval-routing` and `train-router` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "eval-routing", help="evaluate the auto router offline (APGR/CPT, AIQ, with bootstrap intervals)",
        description="Train the strategy on TRAIN_CSV and evaluate it on TEST_CSV (pass the same CSV "
                    "twice, with a `fold` column, to cross-fit); or score an artefact on TEST_CSV with "
                    "--router; or --lodo: leave one dataset of the routing data out at a time. "
                    "CSV format: see routerone/routing/evaluation.py.")
    p.add_argument("csvs", nargs="*", metavar="CSV", type=_input_file,
                   help="TRAIN_CSV TEST_CSV, or TEST_CSV with --router")
    p.add_argument("--prices", default=None, type=_input_file,
                   help="prices JSON (routerarena_model_cost.json format; USD per 1M tokens)")
    p.add_argument("--out", default="eval-routing-out", help="output directory (eval.json, PNG)")
    p.add_argument("--strategy", choices=("auto", "balanced", "learned"), default="auto",
                   help="auto (= balanced): exactly what model=auto runs (default); learned: the older "
                        "offline per-model ridge + cost penalty")
    p.add_argument("--router", default=None, metavar="shipped|PATH",
                   help="score this artefact without training ('shipped' = the one in the package)")
    p.add_argument("--decisions-out", default=None, metavar="FILE",
                   help="write per-prompt decisions (predicted quality/cost per model, choices) to FILE")
    p.add_argument("--extra-train", action="append", default=None, metavar="CSV", type=_input_file,
                   help="also train on this CSV (repeatable)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (1000)")
    p.add_argument("--lodo", action="store_true",
                   help="leave-one-dataset-out over the routing data directory (--data)")
    p.add_argument("--data", default=None, help="routing data directory for --lodo")
    p.add_argument("--held-out", action="append", default=None, metavar="SET",
                   help="with --lodo: hold out only this set (repeatable; mmlu, gsm8k, arena, mtbench), "
                        "e.g. one per process to run the sets in parallel")
    p.add_argument("--extra-data", action="append", default=None, metavar="DIR",
                   help="also train on prepared external sets (repeatable): a prepared directory "
                        "(all.csv), or a folder of them; --lodo drops the rows overlapping the "
                        "held-out set, otherwise rows overlapping the test prompts are dropped")
    p.set_defaults(func=_eval_routing)

    t = subparsers.add_parser(
        "train-router", help="train a learned-router artefact on labelled data",
        description="Fit the per-model quality profiles on the routing data directory or on one CSV "
                    "(the eval-routing format) and write the artefact to --out (deterministic).")
    t.add_argument("--data", default=None, type=_file_or_dir,
                   help="routing data directory or a labelled CSV (default: ../shared/data/routing beside "
                        "the checkout, else /work/shared/data/routing; env ROUTERONE_ROUTING_DATA)")
    t.add_argument("--out", default=None, help="artefact path to write")
    t.add_argument("--extra-data", action="append", default=None, metavar="DIR",
                   help="also train on prepared external sets (repeatable; see eval-routing)")
    t.add_argument("--shipped", action="store_true",
                   help="overwrite the shipped artefact in the package (maintainers)")
    t.set_defaults(func=_train_router)

"""CLI subcommands of the learned router: `eval-routing` and `train-router`.

cli.py calls `register(subparsers)`; each subcommand sets `func`, a callable taking the parsed
arguments and returning an exit code. Heavy imports happen inside the callables.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _eval_routing(args: argparse.Namespace) -> int:
    from .evaluation import run_eval
    try:
        result = run_eval(args.train_csv, args.test_csv, args.prices, args.out,
                          strategy=args.strategy)
    except (OSError, ValueError) as exc:
        print(f"eval-routing: {exc}")
        return 2
    for line in summary_lines(result):
        print(line)
    print(f"wrote {Path(args.out) / 'eval.json'}")
    return 0


def summary_lines(result: dict) -> list[str]:
    """Short human-readable summary of a run_eval result."""
    lines = [f"test prompts: {result['n_test']} (dropped {result['n_test_dropped_missing_quality']}"
             f" with missing scores); train prompts: {result['n_train']}"]
    two = result.get("two_model")
    if two:
        lines.append(f"weak {two['weak_model']} = {two['weak_quality']:.4f}, "
                     f"strong {two['strong_model']} = {two['strong_quality']:.4f}")
        for name, r in two["routers"].items():
            a = r.get("apgr")
            lines.append(f"  {name:14s} APGR {'-' if a is None else f'{a:.3f}'}  "
                         f"CPT(50%) {_pct(r.get('cpt_50_pct'))}  CPT(80%) {_pct(r.get('cpt_80_pct'))}")
    multi = result.get("multi_model")
    if multi:
        best = multi["best_single_model"]
        lines.append(f"best single model: {best} ({multi['single_models'][best]['quality']:.3f}, "
                     f"{multi['single_models'][best]['cost_micros_per_prompt']:.0f} micro-USD/prompt)")
        for name, r in multi["routers"].items():
            lines.append(f"  {name:12s} AIQ {r['aiq']:.4f}  quality kept at 25%/50% of best cost: "
                         f"{r['quality_kept_at_25pct_best_cost']:.3f} / "
                         f"{r['quality_kept_at_50pct_best_cost']:.3f}")
    if result.get("unpriced_models"):
        lines.append(f"no price (left out of cost metrics): {', '.join(result['unpriced_models'])}")
    lines.extend(f"wrote {p}" for p in result.get("plots", []))
    return lines


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1f}%"


def _train_router(args: argparse.Namespace) -> int:
    from .learned.train import default_data_dir, train_artefact
    data = Path(args.data) if args.data else default_data_dir()
    if not data.is_dir():
        print(f"train-router: no data directory {data} (use --data)")
        return 2
    info = train_artefact(data, Path(args.out) if args.out else None)
    print(json.dumps(info, indent=2))
    return 0


def register(subparsers) -> None:
    """Add `eval-routing` and `train-router` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "eval-routing", help="evaluate the learned router offline (APGR/CPT, cost-quality, AIQ)",
        description="Train the learned strategy on TRAIN_CSV and evaluate it on TEST_CSV. "
                    "Pass the same CSV twice, with a `fold` column, to cross-fit.")
    p.add_argument("train_csv", help="training CSV: prompt, one quality column per model")
    p.add_argument("test_csv", help="test CSV, same columns")
    p.add_argument("--prices", default=None,
                   help="prices JSON (routerarena_model_cost.json format; USD per 1M tokens)")
    p.add_argument("--out", default="eval-routing-out", help="output directory (eval.json, PNG)")
    p.add_argument("--strategy", choices=("learned", "balanced"), default="learned",
                   help="learned: per-model quality ridge + cost penalty (default); balanced: the "
                        "runtime gain + rank_by_value decision swept over willingness to pay")
    p.set_defaults(func=_eval_routing)

    t = subparsers.add_parser(
        "train-router", help="retrain the shipped learned-router artefact",
        description="Rebuild router_model.npz from the routing data (deterministic).")
    t.add_argument("--data", default=None,
                   help="routing data directory (default: ../shared/data/routing beside the "
                        "checkout, else /work/shared/data/routing; env ROUTERONE_ROUTING_DATA)")
    t.add_argument("--out", default=None, help="artefact path (default: the shipped one)")
    t.set_defaults(func=_train_router)

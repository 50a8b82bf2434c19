"""Data preparation and training of the shipped learned-router artefact.

    python -m routerone.routing.learned.train prepare --dataset mmlu|gsm8k|arena|mtbench --out DIR
    python -m routerone.routing.learned.train prepare --dataset llmrouter|routerarena|... --source SNAPSHOT --out DIR
    python -m routerone.routing.learned.train fit [--data DIR|CSV] [--extra-data DIR ...] --out PATH
                                                                   (= routerone train-router)

prepare writes DIR/all.csv (every prompt, with its `fold` 0..4), DIR/train.csv (folds 1-4) and
DIR/test.csv (fold 0, the held-out 20%), plus DIR/prices.json. Folds: the distinct prompts, in
file order, are shuffled with numpy default_rng(0) and dealt round-robin into 5 folds; duplicate
prompts share a fold. RouteLLM's contaminated prompts (its `contaminated_prompts.jsonl`,
`eval_prompt` field) are dropped first. `eval-routing all.csv all.csv` cross-fits on the folds.

External datasets (external.py) are prepared from a fetched repository snapshot (--source) into
DIR/all.csv + DIR/PROVENANCE.md, with an `overlaps` column naming the evaluation sets each prompt
overlaps (overlap.py). `--extra-data DIR` (repeatable; a prepared DIR, its all.csv, or a folder of
prepared DIRs such as /work/extdata) adds them to training (`fit`, `routerone train-router`,
`routerone eval-routing --lodo`); leave-one-dataset-out drops the rows overlapping the held-out set.

fit trains the per-model quality profiles (profile_fit.py) on every prompt of MMLU, GSM8K
(correctness of GPT-4-1106 vs Mixtral-8x7B), arena-bench-v1 (GPT-4 judge scores of 14 models) and
MT-Bench (judge scores of the same two models), or on one operator CSV. Deterministic: same data,
same artefact.
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from .profiles import ARTEFACT_PATH

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
N_FOLDS = 5
SEED = 0
# Prices of the arena models that routerarena_model_cost.json lacks: approximate list prices of
# late 2023 (USD per 1M tokens), marked "estimate" in the written prices.json.
PRICE_ESTIMATES = {
    "Llama-2-70b-chat": (0.9, 0.9), "Starling-LM-7B-alpha": (0.2, 0.2), "claude-1": (8.0, 24.0),
    "claude-2.1": (8.0, 24.0), "claude-instant-1": (0.8, 2.4), "openchat_3.5": (0.2, 0.2),
    "palm-2-chat-bison-001": (1.0, 2.0), "vicuna-33b-v1.3": (0.8, 0.8),
}


def default_data_dir() -> Path:
    env = os.environ.get("ROUTERONE_ROUTING_DATA")
    if env:
        return Path(env)
    repo_shared = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "routing"
    return repo_shared if repo_shared.is_dir() else Path("/work/shared/data/routing")


def _read_csv(path: Path) -> list[dict]:
    csv.field_size_limit(sys.maxsize)
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _contaminated(path: Path) -> set[str]:
    return {json.loads(line)["eval_prompt"] for line in path.read_text().splitlines() if line.strip()}


def _token_counter():
    try:
        import bpe_openai
        enc = bpe_openai.get_encoding("o200k_base")
        return lambda text: len(enc.encode(text))
    except Exception:   # pragma: no cover - the tokenizer is a project dependency
        return lambda text: max(1, len(text) // 4)


def load_mmlu(data: Path) -> list[dict]:
    bad = _contaminated(data / "routellm" / "mmlu_contaminated_prompts.jsonl")
    rows = []
    for f in sorted(glob.glob(str(data / "routellm" / "mmlu_responses" / "mmlu_*.csv"))):
        subject = Path(f).stem[len("mmlu_"):]
        for r in _read_csv(Path(f)):
            if r["prompt"] not in bad:
                rows.append({"prompt": r["prompt"], "subject": subject, WEAK: r[WEAK], STRONG: r[STRONG],
                             f"{WEAK}|output_tokens": 1, f"{STRONG}|output_tokens": 1})
    return rows


def load_gsm8k(data: Path) -> list[dict]:
    bad = _contaminated(data / "routellm" / "gsm8k" / "contaminated_prompts.jsonl")
    count = _token_counter()
    rows = []
    for r in _read_csv(data / "routellm" / "gsm8k" / "gsm8k_responses.csv"):
        if r["prompt"] in bad:
            continue
        row = {"prompt": r["prompt"], "prompt_tokens_o200k": count(r["prompt"])}
        for m in (WEAK, STRONG):
            row[m] = r[m]
            row[f"{m}|output_tokens"] = count(r.get(f"{m}_response") or "")
        rows.append(row)
    return rows


def load_arena(data: Path) -> list[dict]:
    scores = _read_csv(data / "arena_bench_v1" / "arena_bench_v1_gpt4_scores.csv")
    tokens = {r["question_id"]: r for r in _read_csv(data / "arena_bench_v1" / "arena_bench_v1_output_tokens_o200k.csv")}
    meta = {"question_id", "category", "cluster", "prompt", "prompt_tokens_o200k"}
    rows = []
    for r in scores:
        row = {k: r[k] for k in ("question_id", "prompt", "prompt_tokens_o200k")}
        for m in (k for k in r if k not in meta):
            row[m] = r[m]
            t = tokens.get(r["question_id"], {}).get(m.rsplit("/", 1)[-1], "")
            if t != "":
                row[f"{m}|output_tokens"] = t
        rows.append(row)
    return rows


def load_mtbench(data: Path) -> list[dict]:
    base = data / "routellm" / "mt_bench"
    bad = _contaminated(base / "contaminated_prompts.jsonl")
    questions = [json.loads(line) for line in (base / "question.jsonl").read_text().splitlines() if line]
    scores: dict[tuple[int, str], list[float]] = {}
    for line in (base / "judgements.jsonl").read_text().splitlines():
        if line.strip():
            j = json.loads(line)
            if j.get("score", -1) >= 0:
                scores.setdefault((j["question_id"], j["model"]), []).append(float(j["score"]))
    rows = []
    for q in questions:
        if any(t in bad for t in q["turns"]):
            continue
        row = {"prompt": q["turns"][0]}
        for m in (WEAK, STRONG):
            v = scores.get((q["question_id"], m))
            row[m] = float(np.mean(v)) if v else ""
        rows.append(row)
    return rows


LOADERS = {"mmlu": load_mmlu, "gsm8k": load_gsm8k, "arena": load_arena, "mtbench": load_mtbench}


def assign_folds(prompts: list[str], n_folds: int = N_FOLDS, seed: int = SEED) -> list[int]:
    distinct = list(dict.fromkeys(prompts))
    order = np.random.default_rng(seed).permutation(len(distinct))
    fold_of = {distinct[j]: pos % n_folds for pos, j in enumerate(order)}
    return [fold_of[p] for p in prompts]


def _write_csv(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def write_prices(data: Path, models: list[str], out: Path) -> None:
    from ..evaluation import load_prices
    known = load_prices(data / "prices" / "routerarena_model_cost.json", models)
    prices = {}
    for m in models:
        base = m.rsplit("/", 1)[-1]
        if m in known:
            prices[m] = {"input_token_price_per_million": known[m][0],
                         "output_token_price_per_million": known[m][1], "source": "routerarena"}
        elif base in PRICE_ESTIMATES:
            pin, pout = PRICE_ESTIMATES[base]
            prices[m] = {"input_token_price_per_million": pin, "output_token_price_per_million": pout,
                         "source": "estimate"}
    out.write_text(json.dumps(prices, indent=2))


def prepare(dataset: str, out_dir: Path, data: Path | None = None) -> dict:
    data = data or default_data_dir()
    rows = LOADERS[dataset](data)
    folds = assign_folds([r["prompt"] for r in rows])
    for r, f in zip(rows, folds):
        r["fold"] = f
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(out_dir / "all.csv", rows)
    _write_csv(out_dir / "train.csv", [r for r in rows if r["fold"] != 0])
    _write_csv(out_dir / "test.csv", [r for r in rows if r["fold"] == 0])
    models = [k for k in rows[0] if k not in ("prompt", "subject", "fold", "question_id")
              and "|" not in k and not k.startswith("prompt_tokens")]
    write_prices(data, models, out_dir / "prices.json")
    return {"rows": len(rows), "test_rows": sum(1 for f in folds if f == 0), "models": models}


DATASETS = ("mmlu", "gsm8k", "arena", "mtbench")


def shared_tables(data: Path | None = None, datasets=DATASETS) -> dict:
    """{dataset: evaluation.Table} of the shared routing data (contaminated prompts dropped)."""
    from ..evaluation import table_from_rows
    data = data or default_data_dir()
    return {name: table_from_rows(LOADERS[name](data), name) for name in datasets}


def training_tables(data: Path, extra_data=()) -> dict:
    """A data directory (the shared routing data) -> its four tables; a CSV file (an operator's
    labelled data, the eval-routing format) -> that one table; plus the prepared external sets
    in `extra_data` (see external_tables)."""
    from ..evaluation import load_table
    tables = shared_tables(data) if data.is_dir() else {data.stem: load_table(data)}
    tables.update(external_tables(extra_data))
    return tables


def external_csvs(paths) -> dict[str, Path]:
    """{name: all.csv} for each of `paths`: an all.csv (or other CSV) file, a prepared directory
    holding all.csv, or a folder of prepared directories (each subfolder with an all.csv)."""
    found: dict[str, Path] = {}
    for p in map(Path, paths or ()):
        if p.is_file():
            found[p.parent.name if p.name == "all.csv" else p.stem] = p
        elif (p / "all.csv").is_file():
            found[p.name] = p / "all.csv"
        elif p.is_dir() and sorted(p.glob("*/all.csv")):
            found.update({f.parent.name: f for f in sorted(p.glob("*/all.csv"))})
        else:
            raise ValueError(f"--extra-data {p}: no all.csv there (prepare it first)")
    return found


def external_tables(paths, exclude=()) -> dict:
    """{name: Table} of prepared external sets, without the rows whose `overlaps` column names a
    set in `exclude` (e.g. the held-out evaluation set)."""
    from ..evaluation import table_from_rows
    from .overlap import split_cell
    tables = {}
    for name, path in external_csvs(paths).items():
        rows = [r for r in _read_csv(path) if not (split_cell(r.get("overlaps")) & set(exclude))]
        if rows:
            tables[f"ext:{name}"] = table_from_rows(rows, str(path))
    return tables


def artefact_path(out: Path | str) -> Path:
    """Where the artefact for `--out out` is written: numpy's savez adds ".npz" to a name without it,
    so `--out my_router` wrote my_router.npz and then failed (or, for a directory, told the operator
    to serve ROUTERONE_ROUTER_MODEL=<the directory>)."""
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a directory: give a file path, e.g. {out / 'router.npz'}")
    return out if out.name.endswith(".npz") else out.with_name(out.name + ".npz")


def train_artefact(data: Path | None = None, out: Path | None = None, extra_data=()) -> dict:
    """Fit the profiles on `data` (see training_tables) plus the prepared external sets in
    `extra_data`, and write the artefact to `out` (required: the shipped artefact is rebuilt only
    when its path is passed explicitly)."""
    from .lengths import load_length_set
    from .profile_fit import fit_profiles
    if out is None:
        raise ValueError("an output path is required (the shipped artefact is "
                         f"{ARTEFACT_PATH}; pass it explicitly to rebuild it)")
    out = artefact_path(out)
    data = Path(data or default_data_dir())
    tables = training_tables(data, extra_data)
    meta = {"datasets": {name: len(t.prompts) for name, t in tables.items()},
            "source": str(data.name)}
    art = fit_profiles(list(tables.values()), meta=meta, lengths=load_length_set())
    out.parent.mkdir(parents=True, exist_ok=True)
    art.save(out)
    return {"path": str(out), "bytes": out.stat().st_size, **art.meta,
            "profiles": {m: [round(float(x), 4) for x in e] for m, e in zip(art.models, art.embeddings)}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m routerone.routing.learned.train")
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare", help="write train/test CSVs and prices for one dataset")
    from .external import ADAPTERS
    pp.add_argument("--dataset", choices=sorted(LOADERS) + sorted(ADAPTERS) + ["arenahard_lengths"],
                    required=True)
    pp.add_argument("--out", type=Path, required=True)
    pp.add_argument("--data", type=Path, default=None,
                    help="shared routing data (default: ../shared/data/routing); external datasets "
                         "use it for the overlap check")
    pp.add_argument("--source", type=Path, default=None,
                    help="external datasets: the fetched repository snapshot (bare git dir or files)")
    pf = sub.add_parser("fit", help="train a profile artefact (= routerone train-router)")
    pf.add_argument("--data", type=Path, default=None)
    pf.add_argument("--extra-data", type=Path, action="append", default=None, metavar="DIR",
                    help="also train on prepared external sets (repeatable)")
    pf.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        return _run(p, args)
    except (OSError, ValueError, KeyError, TypeError, subprocess.CalledProcessError) as exc:
        # a bad snapshot, data file or path: one line naming it, not a traceback
        print(f"{p.prog} {args.cmd}: {exc}", file=sys.stderr)
        return 2


def _run(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .external import ADAPTERS
    if args.cmd == "prepare" and (args.dataset in ADAPTERS or args.dataset == "arenahard_lengths"):
        from .external import prepare_external
        from .lengths import prepare_arenahard_lengths
        from .overlap import evaluation_index
        if args.source is None:
            p.error(f"--dataset {args.dataset} needs --source (the fetched repository snapshot)")
        index = evaluation_index(args.data)
        summary = (prepare_arenahard_lengths(args.source, args.out, index) if args.dataset == "arenahard_lengths"
                   else prepare_external(args.dataset, args.source, args.out, index))
        print(json.dumps(summary, indent=2))
    elif args.cmd == "prepare":
        print(json.dumps(prepare(args.dataset, args.out, args.data), indent=2))
    else:
        print(json.dumps(train_artefact(args.data, args.out, args.extra_data or ()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

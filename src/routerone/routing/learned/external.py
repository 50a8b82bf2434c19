"""External per-prompt, per-model results -> eval-routing CSVs (more training data for `auto`).

    python -m routerone.routing.learned.train prepare --dataset <name> --source DIR --out DIR

`source` is a fetched snapshot of the source repository: either a bare git directory (as
`fetch github:owner/name` leaves under /work/.mirror/owner+name/repo; files are read from its
HEAD, and the adapter may read older commits for files that are absent at HEAD) or a plain
directory with the repository's files (the unit tests' fixtures). `prepare_<name>(source, out_dir)`
writes out_dir/all.csv in the format of routing/evaluation.py (prompt, one quality column per
model, optional `<model>|output_tokens`, `prompt_tokens_o200k`, `fold` by train.assign_folds) plus
`overlaps` (evaluation sets the prompt overlaps; see overlap.py) and `task` (the source's own
task/benchmark name), both ignored as model columns; out_dir/PROVENANCE.md (repository,
commit, paths, licence, transform, counts, overlap counts); and out_dir/prices.json (the source's
own prices of its models, USD per 1M tokens, in the routerarena_model_cost.json format) when the
source has them, so that a prepared set can also be evaluated on its own
(`routerone eval-routing DIR/all.csv DIR/all.csv --prices DIR/prices.json`). Models with fewer
than MIN_SCORES scores are left out. Nothing from RouterBench or AlpacaEval
is read by any adapter (see learned/PROVENANCE.md for the sources examined and rejected).

Adapters
  * `llmrouter`: ulab-uiuc/LLMRouter `data/dcrouter_preprocessed/{train,test}.json` (MIT): queries
    of 14 public benchmarks with the score in [0, 1] of 9 open models each (the repository's own
    runs); scores as given; prices from `data/example_data/llm_candidates/default_llm.json`.
  * `routerarena`: RouteWorks/RouterArena `cached_results/<model>.jsonl` (Apache-2.0): the
    RouterArena sub_10 questions answered by a few commercial models, each answer scored by the
    benchmark's own metric (`evaluation_result.score`, in [0, 1]); output tokens as reported by
    the provider; prices from `model_cost/cost.json`. Every version of each file reachable in the snapshot's history is read (newest
    first per question), because models were added and removed over time.
  * `zeroeval`: yuchenlin/ZeroEval `result_dirs/{gsm,math-l5,crux}/<model>.json` (Apache-2.0):
    ~40-50 models' answers, judged 0/1 as the repository's own scripts judge them (zeroeval.py);
    prices from genai-prices for the models it knows.
"""
from __future__ import annotations

import ast
import csv
import json
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .overlap import EVAL_SETS, OverlapIndex, evaluation_index, overlaps_cell


MIN_SCORES = 20     # a model with fewer scores in a source is left out (noted in PROVENANCE.md)


class Source:
    """Read files of a fetched repository snapshot: a bare git dir or a plain directory."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise ValueError(f"source {self.path} is not a directory")
        self.bare = (self.path / "HEAD").is_file() and (self.path / "objects").is_dir()
        self.commit = self._git("rev-parse", "HEAD").strip() if self.bare else "(plain directory)"

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", "--git-dir", str(self.path), *args], check=True,
                              capture_output=True, text=True).stdout

    def read(self, rel: str, commit: str | None = None) -> str | None:
        """File text at `commit` (HEAD by default), or None when absent/unreadable (missing blob,
        Git LFS pointer)."""
        if self.bare:
            r = subprocess.run(["git", "--git-dir", str(self.path), "show", f"{commit or 'HEAD'}:{rel}"],
                               capture_output=True)
            text = r.stdout.decode("utf-8", "replace") if r.returncode == 0 else None
        else:
            f = self.path / rel
            text = f.read_text(encoding="utf-8") if f.is_file() else None
        if text is not None and text.startswith("version https://git-lfs.github.com/spec/"):
            return None
        return text

    def list(self, folder: str, commit: str | None = None) -> list[str]:
        if self.bare:
            out = self._git("ls-tree", "--name-only", f"{commit or 'HEAD'}:{folder}")
            return [f"{folder}/{n}" for n in out.split("\n") if n]
        d = self.path / folder
        return sorted(f"{folder}/{p.name}" for p in d.iterdir()) if d.is_dir() else []

    def history(self, folder: str) -> list[str]:
        """Commits touching `folder` on any ref (merged side branches too), newest first; [None]
        (the files as they are) for a plain directory."""
        if not self.bare:
            return [None]
        return self._git("log", "--all", "--full-history", "--date-order", "--format=%H", "--",
                         folder).split() or ["HEAD"]


@dataclass
class Prepared:
    name: str
    rows: list[dict]
    models: list[str]
    provenance: dict
    notes: list[str] = field(default_factory=list)
    prices: dict = field(default_factory=dict)   # {model: (input, output) USD per 1M tokens, source}


def _token_counter():
    from .train import _token_counter as counter
    return counter()


def finish(prep: Prepared, out_dir: Path, index: OverlapIndex | None = None) -> dict:
    """Add prompt tokens, folds and overlaps; write all.csv and PROVENANCE.md; return counts."""
    from .train import _write_csv, assign_folds
    index = index or evaluation_index()
    few = [m for m in prep.models if sum(1 for r in prep.rows if m in r) < MIN_SCORES]
    if few:
        prep.notes.append("left out (fewer than %d scores): %s" % (MIN_SCORES, ", ".join(
            f"{m} ({sum(1 for r in prep.rows if m in r)})" for m in few)))
        for r in prep.rows:
            for m in few:
                r.pop(m, None)
                r.pop(f"{m}|output_tokens", None)
        prep.models = [m for m in prep.models if m not in few]
        prep.rows = [r for r in prep.rows if any(m in r for m in prep.models)]
    count = _token_counter()
    by_set: Counter = Counter()
    by_kind: Counter = Counter()
    for r in prep.rows:
        found = index.match(r["prompt"], r.get("question_id"))
        r["overlaps"] = overlaps_cell(found)
        for s, kind in found.items():
            by_set[s] += 1
            by_kind[f"{s}:{kind}"] += 1
        r["prompt_tokens_o200k"] = count(r["prompt"])
    for r, f in zip(prep.rows, assign_folds([r["prompt"] for r in prep.rows])):
        r["fold"] = f
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    order = ["prompt", "task", "overlaps", "prompt_tokens_o200k", "fold"]
    rows = [{**{k: r.get(k, "") for k in order}, **{k: v for k, v in r.items() if k not in order}}
            for r in prep.rows]
    _write_csv(out_dir / "all.csv", rows)
    cells = {m: sum(1 for r in prep.rows if r.get(m, "") != "") for m in prep.models}
    summary = {"dataset": prep.name, "rows": len(prep.rows), "models": prep.models,
               "scores_per_model": cells, "overlap_rows": {s: by_set.get(s, 0) for s in EVAL_SETS},
               "overlap_by_kind": dict(sorted(by_kind.items())),
               "rows_without_overlap": sum(1 for r in prep.rows if not r["overlaps"]),
               "tasks": dict(Counter(r.get("task", "") for r in prep.rows).most_common())}
    prices = {m: {"input_token_price_per_million": pin, "output_token_price_per_million": pout,
                  "source": src} for m, (pin, pout, src) in prep.prices.items() if m in prep.models}
    if prices:
        (out_dir / "prices.json").write_text(json.dumps(prices, indent=2))
        summary["priced_models"] = sorted(prices)
    (out_dir / "PROVENANCE.md").write_text(_provenance_md(prep, summary))
    return summary


def _provenance_md(prep: Prepared, s: dict) -> str:
    p = prep.provenance
    lines = [f"# External routing data: {prep.name}", "",
             "Written by `python -m routerone.routing.learned.train prepare --dataset "
             f"{prep.name} --source ... --out ...` (src/routerone/routing/learned/external.py).", "",
             f"- repository: {p['repo']}", f"- commit read: {p['commit']}",
             f"- paths: {', '.join(p['paths'])}", f"- licence: {p['licence']}",
             f"- transform: {p['transform']}",
             f"- rows (prompts): {s['rows']}; models: {len(s['models'])}",
             "- scores per model: " + ", ".join(f"{m} {n}" for m, n in s["scores_per_model"].items()),
             "- rows overlapping each evaluation set (overlap.py: exact, normalised, 8-gram, id): "
             + ", ".join(f"{k} {v}" for k, v in s["overlap_rows"].items()),
             "- overlaps by kind: " + (", ".join(f"{k} {v}" for k, v in s["overlap_by_kind"].items()) or "none"),
             f"- rows overlapping no evaluation set: {s['rows_without_overlap']}",
             "- tasks: " + ", ".join(f"{k or '(none)'} {v}" for k, v in s["tasks"].items()),
             "- prices.json (USD per 1M tokens): " + (", ".join(
                 f"{m} {pin}/{pout} ({src})" for m, (pin, pout, src) in prep.prices.items()
                 if m in s["models"]) or "none")]
    lines += [f"- note: {n}" for n in prep.notes]
    lines += ["", "Not used in any form: RouterBench and AlpacaEval data.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# ulab-uiuc/LLMRouter

LLMROUTER_FILES = ("data/dcrouter_preprocessed/train.json", "data/dcrouter_preprocessed/test.json")
LLMROUTER_PRICES = "data/example_data/llm_candidates/default_llm.json"
LLMROUTER_QUERIES = ("data/example_data/query_data/default_query_train.jsonl",
                     "data/example_data/query_data/default_query_test.jsonl")


def load_llmrouter(src: Source) -> Prepared:
    task_of: dict[str, str] = {}
    for rel in LLMROUTER_QUERIES:          # task names only (the query files hold no scores)
        for line in (src.read(rel) or "").split("\n"):
            if line.strip():
                q = json.loads(line)
                task_of.setdefault(q.get("query", ""), q.get("task_name", ""))
    rows, models, seen = [], {}, set()
    used = []
    for rel in LLMROUTER_FILES:
        text = src.read(rel)
        if text is None:
            continue
        used.append(rel)
        for item in json.loads(text):
            prompt = item.get("question")
            if not isinstance(prompt, str) or not prompt.strip() or prompt in seen:
                continue
            seen.add(prompt)
            row = {"prompt": prompt, "task": task_of.get(prompt, "")}
            for m, v in (item.get("scores") or {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    row[m] = float(v)
                    models.setdefault(m, None)
            rows.append(row)
    if not rows:
        raise ValueError(f"{src.path}: no {' or '.join(LLMROUTER_FILES)} with scores")
    prices = {}
    for m, info in json.loads(src.read(LLMROUTER_PRICES) or "{}").items():
        if isinstance(info, dict) and {"input_price", "output_price"} <= set(info):
            prices[m] = (float(info["input_price"]), float(info["output_price"]),
                         f"{LLMROUTER_PRICES} ({info.get('service', '?')})")
    return Prepared("llmrouter", rows, list(models), prices=prices, provenance={
        "repo": "ulab-uiuc/LLMRouter", "commit": src.commit, "paths": used + list(LLMROUTER_QUERIES) + [LLMROUTER_PRICES],
        "licence": "MIT (LICENSE, Copyright (c) 2024 U Lab @UIUC)",
        "transform": "one row per distinct `question` (first occurrence kept; train then test); one "
                     "column per model holding `scores[model]` as given (0-1: correctness, or the "
                     "task's partial score); `task` from the query files' `task_name` where the query "
                     "text matches; no answer lengths in these files, so no `|output_tokens`"})


# ---------------------------------------------------------------------------------------------
# RouteWorks/RouterArena

ROUTERARENA_DIR = "cached_results"
ROUTERARENA_PRICES = "model_cost/cost.json"


def _maybe_dict(v):
    if isinstance(v, dict):
        return v
    if isinstance(v, str) and v.strip().startswith("{"):
        try:
            return ast.literal_eval(v)
        except (ValueError, SyntaxError):
            return {}
    return {}


def load_routerarena(src: Source) -> Prepared:
    by_q: dict[str, dict] = {}
    models: dict[str, None] = {}
    used: set[str] = set()
    done: set[tuple[str, str]] = set()      # (model file, global_index) already taken from a newer version
    for commit in src.history(ROUTERARENA_DIR):
        try:
            files = [f for f in src.list(ROUTERARENA_DIR, commit) if f.endswith(".jsonl")]
        except subprocess.CalledProcessError:
            continue
        for rel in files:
            text = src.read(rel, commit)
            if text is None:
                continue
            model = Path(rel).stem
            taken = 0
            for line in text.split("\n"):
                if not line.strip():
                    continue
                rec = json.loads(line)
                gid, prompt = rec.get("global_index"), rec.get("question")
                ev = _maybe_dict(rec.get("evaluation_result"))
                score = ev.get("score")
                if (not gid or not isinstance(prompt, str) or (model, gid) in done
                        or not isinstance(score, (int, float)) or str(rec.get("success")) != "True"):
                    continue
                done.add((model, gid))
                row = by_q.setdefault(gid, {"prompt": prompt, "task": gid.rsplit("_", 1)[0],
                                            "question_id": gid})
                row[model] = float(score)
                out = _maybe_dict(rec.get("token_usage")).get("output_tokens")
                if isinstance(out, int) and out >= 0:
                    row[f"{model}|output_tokens"] = out
                models.setdefault(model, None)
                taken += 1
            if taken:
                used.add(f"{rel}@{(commit or 'HEAD')[:12]}")
    if not by_q:
        raise ValueError(f"{src.path}: no readable {ROUTERARENA_DIR}/*.jsonl with scores")
    prices = {}
    for m, info in json.loads(src.read(ROUTERARENA_PRICES) or "{}").items():
        if m in models and isinstance(info, dict):
            prices[m] = (float(info["input_token_price_per_million"]),
                         float(info["output_token_price_per_million"]), ROUTERARENA_PRICES)
    if prices:
        used.add(ROUTERARENA_PRICES)
    return Prepared("routerarena", list(by_q.values()), list(models), prices=prices, provenance={
        "repo": "RouteWorks/RouterArena", "commit": src.commit, "paths": sorted(used),
        "licence": "Apache-2.0 (LICENSE)",
        "transform": "one row per `global_index` (kept as question_id); `question` is the prompt; "
                     "per model (file name) the successful answer's `evaluation_result.score` "
                     "(benchmark metric, 0-1) and `token_usage.output_tokens`; for each model and "
                     "question the newest readable version of the file wins"},
        notes=["the questions are RouterArena's public sub_10 split; answers were produced by "
               "commercial models whose terms of use also apply"])


def load_zeroeval(src: Source) -> Prepared:
    from .zeroeval import load_zeroeval as load     # a sibling module (judges of its own)
    return load(src)


ADAPTERS = {"llmrouter": load_llmrouter, "routerarena": load_routerarena, "zeroeval": load_zeroeval}


def prepare_external(name: str, source: Path, out_dir: Path, index: OverlapIndex | None = None) -> dict:
    if name not in ADAPTERS:
        raise ValueError(f"unknown external dataset {name!r} (available: {', '.join(ADAPTERS)})")
    return finish(ADAPTERS[name](Source(source)), out_dir, index)


def prepare_llmrouter(source: Path, out_dir: Path, index: OverlapIndex | None = None) -> dict:
    return prepare_external("llmrouter", source, out_dir, index)


def prepare_routerarena(source: Path, out_dir: Path, index: OverlapIndex | None = None) -> dict:
    return prepare_external("routerarena", source, out_dir, index)

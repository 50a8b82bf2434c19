"""auto v12 look: does a published BENCHMARK score that covers closed and open models order models
better than the LMArena score on benchmark-like prompts? (session 14, helper prior2; exploratory,
nothing ships, no router is trained, nothing in src/ changes)

Written and committed before its first run (commit message says "declared"); nothing above the
"ADDED AFTER THE RUN" marker changes after. Before writing it only WHICH models have a score was looked
at (`--coverage`, which prints names and counts, no realised quality); no correlation was computed.

Declared settings
- Realised quality, Spearman, bootstrap (1,000 resamples of a task's prompts, seed 0), top-1, MIN_MODELS
  = 4, "n<4 counts as not above arena": exactly bench/auto_v11/prior_look.py (session 13), whose
  `load`, `look`, `spearman`, `ranks`, `fmt` and `pairs` this script imports and calls unchanged.
- Sets: `llmrouter`, `zeroeval`, `routerarena` as written by `python -m routerone.routing.learned.train
  prepare --dataset D --source SNAPSHOT --out DIR/D` (same snapshots as session 13).
- Scores (higher = better). arena is looked up as the SHIPPED prior does (`Leaderboard.load().find`,
  as session 13). Each new table is loaded as the rows of its own `leaderboard.Leaderboard` and looked
  up STRICTLY (`find_new`): `find_strict` (exact canonical name, undated name, loose tokens; no prefix
  step; ambiguous -> no score), and a dated name never takes a row with another date. (A first
  `--coverage` pass with the shipped `find` gave gpt-4o-2024-08-06 the arena-hard row of
  gpt-4o-2024-05-13 and command-r LLM-Stats' command-r-plus row; that is why. Names only, no figures.)
    arena    LMArena text 2025-08-04 (Leaderboard.load(), the shipped snapshot);
    se_mmlu, se_gpqa, se_math
             openai/simple-evals @ ee3b0318d8d1 README.md (last changed 6ead091a, 2025-07-09), the
             results table: the MMLU, GPQA and MATH columns of every row with a number there (OpenAI's
             own runs of its models plus the "Other Models (Reported)" rows: Claude, Llama 3.1, Grok,
             Gemini as their vendors reported them); MIT;
    ah       Arena-Hard-Auto v0.1 score, lmarena/arena-hard-auto @ 196f6b8 (HEAD)
             leaderboard/arena_hard_leaderboard_20240731.csv (last changed b00effbe, 2024-07-31), 60
             models; Apache-2.0. (A GPT-4-judged chat benchmark built to agree with arena: the control.)
    ls_mmlu, ls_gpqa
             LLM-Stats data, JonathanChavezTamales/llm-leaderboard @ 24a9ccf7402306 (HEAD, 2025-10-16),
             data/organizations/*/models/<model_id>/benchmarks.json, benchmark_id "mmlu" / "gpqa",
             mean over a model's entries; mostly vendor self-reported (`is_self_reported`), mixed
             harnesses and shot counts; CC-BY-4.0 (LICENSE.md).
- Comparison: each new score k against arena over the models of a task that have BOTH scores ("every
  score compared" = arena and k: the sources cover different models, so requiring all six jointly
  would leave next to no models, the failure of session 13's look). The joint version (arena + all
  six) is printed too, declared, not part of any verdict.

Rule fixed in advance (session 13's, unchanged): a score is "worth a candidate" only if its point
Spearman is strictly above arena's on a majority (> half) of ALL tasks of a set (n<4 tasks count as
not above), in at least two of the three sets. Anything else: not worth a candidate.

Known before the run from coverage alone (`--coverage`): RouterArena has 2 models, so every task is
n<4 (0/78 for every score); in LLMRouter only 4 models have an arena score (gemma-2-9b-it,
llama-3.1-8b-instruct, the two Nemotrons) and no new table has both Nemotrons, so every LLMRouter task
is n<4 too. Hence the rule CANNOT say "worth a candidate" for any of these scores, whatever ZeroEval
shows. Declared in advance as a secondary reading (NOT the rule, cannot ship anything by itself):
on ZeroEval, a score is "supportive" if its point Spearman is above arena's on >= 2 of the 3 tasks,
its paired 95% interval (score - arena) is above 0 on at least one task and entirely below 0 on none.

Run: PYTHONPATH=src .venv/bin/python bench/auto_v12/prior_look2.py DIR SE_README AH_CSV LLMSTATS_DIR [--coverage]
"""
from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np

from routerone.routing.learned.leaderboard import BoardRow, Leaderboard, _split_date, canonical

_spec = importlib.util.spec_from_file_location(
    "prior_look_v11", Path(__file__).resolve().parents[1] / "auto_v11" / "prior_look.py")
v11 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(v11)

SETS = v11.SETS
NEW = ("se_mmlu", "se_gpqa", "se_math", "ah", "ls_mmlu", "ls_gpqa")


def _clean_name(cell: str) -> str:
    cell = re.sub(r"\[\^\d+\]", "", cell)                 # footnotes
    cell = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", cell)   # [name](link)
    return cell.replace("*", "").strip()


def simple_evals(readme: Path) -> dict[str, list[BoardRow]]:
    """The README results table: name, then Prompt, MMLU, GPQA, MATH, ... columns."""
    out: dict[str, list[BoardRow]] = {"se_mmlu": [], "se_gpqa": [], "se_math": []}
    for line in readme.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        cells = line.split("|")
        if len(cells) < 6:
            continue
        name = _clean_name(cells[1])
        if not name or name.lower() == "model":
            continue
        for key, col in (("se_mmlu", 3), ("se_gpqa", 4), ("se_math", 5)):
            v = v11._num(cells[col].strip())
            if v is not None:
                out[key].append(BoardRow(name, v))
    return out


def arena_hard(path: Path) -> list[BoardRow]:
    with open(path, newline="", encoding="utf-8") as f:
        return [BoardRow(r["model"].strip(), float(r["score"])) for r in csv.DictReader(f)
                if v11._num(r.get("score")) is not None]


def llm_stats(root: Path) -> dict[str, list[BoardRow]]:
    out: dict[str, list[BoardRow]] = {"ls_mmlu": [], "ls_gpqa": []}
    for f in sorted(root.glob("data/organizations/*/models/*/benchmarks.json")):
        model = f.parent.name
        for key, bench in (("ls_mmlu", "mmlu"), ("ls_gpqa", "gpqa")):
            vals = [v for b in json.loads(f.read_text(encoding="utf-8"))
                    if b.get("benchmark_id") == bench and (v := v11._num(b.get("score"))) is not None]
            if vals:
                out[key].append(BoardRow(model, sum(vals) / len(vals)))
    return out


def find_new(board: Leaderboard, name: str) -> BoardRow | None:
    row = board.find_strict(name)
    if row is None:
        return None
    want, got = _split_date(canonical(name))[1], _split_date(canonical(row.name))[1]
    return None if want and got and want != got else row


def all_scores(se_readme: Path, ah_csv: Path, ls_root: Path) -> tuple[dict[str, dict[str, float]], dict]:
    boards = {"arena": Leaderboard.load(), "ah": Leaderboard(arena_hard(ah_csv))}
    boards.update({k: Leaderboard(v) for k, v in simple_evals(se_readme).items()})
    boards.update({k: Leaderboard(v) for k, v in llm_stats(ls_root).items()})
    scores: dict[str, dict[str, float]] = {}
    rows_used: dict[str, dict[str, str]] = {}
    names = {m for s in SETS for m in v11.models_of(s)}
    for name in sorted(names):
        for k, board in boards.items():
            row = board.find(name) if k == "arena" else find_new(board, name)
            if row is not None:
                scores.setdefault(name, {})[k] = row.score
                rows_used.setdefault(name, {})[k] = row.name
    return scores, rows_used


def coverage(scores, rows_used) -> None:
    print("## Coverage (names only: which models have which score, and the row each was read from)\n")
    print("| set | model | " + " | ".join(("arena",) + NEW) + " |\n|---|---|" + "---|" * (len(NEW) + 1))
    for s in SETS:
        for m in v11.models_of(s):
            g, r = scores.get(m, {}), rows_used.get(m, {})
            print(f"| {s} | {m} | " + " | ".join(f"{g[k]:.4g} ({r[k]})" if k in g else "-" for k in ("arena",) + NEW) + " |")
    print("\n| set | models | " + " | ".join(f"arena+{k}" for k in NEW) + " |\n|---|---|" + "---|" * len(NEW))
    for s in SETS:
        ms = v11.models_of(s)
        print(f"| {s} | {len(ms)} | " + " | ".join(
            str(sum(1 for m in ms if {"arena", k} <= set(scores.get(m, {})))) for k in NEW) + " |")


def main(root: Path, se_readme: Path, ah_csv: Path, ls_root: Path, only_coverage: bool) -> None:
    v11.load(root)
    scores, rows_used = all_scores(se_readme, ah_csv, ls_root)
    coverage(scores, rows_used)
    if only_coverage:
        return
    rng = np.random.default_rng(0)
    above: dict[str, dict[str, int]] = {}
    diffs: dict[tuple[str, str, str], tuple] = {}
    print("\n## Each score vs arena, models with both (the rule's comparison)\n")
    print("| set | task | score | models | prompts | arena | score | score - arena 95% | top-1 arena/score |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in SETS:
        if s not in v11._TABLES:
            print(f"| {s} | (not prepared) |")
            continue
        models, rows = v11._TABLES[s]
        tasks = sorted({r["task"] for r in rows})
        above[s] = {k: 0 for k in NEW}
        above[s]["_tasks"] = len(tasks)
        for k in NEW:
            for t in tasks + ["(whole set)"]:
                sub = rows if t == "(whole set)" else [r for r in rows if r["task"] == t]
                res = v11.look(t, models, sub, scores, rng, need=("arena", k))
                if "arena" not in res:
                    print(f"| {s} | {t} | {k} | {len(res['models'])} (n<{v11.MIN_MODELS} or no common prompt) | "
                          f"{res['n_prompts']} | - | - | - | - |")
                    continue
                d = res[k + "-arena"]
                print(f"| {s} | {t} | {k} | {len(res['models'])} | {res['n_prompts']} | {v11.fmt(res['arena'])} | "
                      f"{v11.fmt(res[k])} | [{d[0]:+.2f}, {d[1]:+.2f}] | {int(res['top1_arena'])}/{int(res['top1_' + k])} |")
                print(f"<!-- {s} {t} {k} models {res['models']} realised {res['realised']} -->")
                if t != "(whole set)":
                    above[s][k] += int(res[k][0] > res["arena"][0])
                    diffs[(s, t, k)] = (res[k][0] - res["arena"][0], d[0], d[1])
    print("\n## The rule (declared; session 13's, unchanged)\n")
    print("| score | " + " | ".join(f"{s}: tasks above arena / all" for s in above) + " | sets with a majority | verdict |")
    print("|---|" + "---|" * (len(above) + 2))
    for k in NEW:
        maj = [s for s in above if above[s][k] * 2 > above[s]["_tasks"]]
        print(f"| {k} | " + " | ".join(f"{above[s][k]}/{above[s]['_tasks']}" for s in above)
              + f" | {len(maj)} | {'worth a candidate' if len(maj) >= 2 else 'not worth a candidate'} |")

    print("\n## Declared secondary reading on ZeroEval (not the rule)\n")
    print("| score | tasks above arena | tasks with interval above 0 | tasks with interval below 0 | supportive |")
    print("|---|---|---|---|---|")
    for k in NEW:
        ds = [v for (s, _, kk), v in diffs.items() if s == "zeroeval" and kk == k]
        a = sum(1 for p, _, _ in ds if p > 0)
        up = sum(1 for _, lo, _ in ds if lo > 0)
        down = sum(1 for _, _, hi in ds if hi < 0)
        print(f"| {k} | {a}/3 | {up} | {down} | {'yes' if a >= 2 and up >= 1 and down == 0 else 'no'} |")

    print("\n## Declared, not part of any verdict: arena and all six new scores jointly\n")
    for s in SETS:
        if s not in v11._TABLES:
            continue
        models, rows = v11._TABLES[s]
        for t in sorted({r["task"] for r in rows}):
            res = v11.look(t, models, [r for r in rows if r["task"] == t], scores, rng, need=("arena",) + NEW)
            if "arena" not in res:
                print(f"- {s} {t}: {len(res['models'])} models with every score (n<{v11.MIN_MODELS})")
            else:
                print(f"- {s} {t}: {len(res['models'])} models, {res['n_prompts']} prompts: "
                      + "; ".join(f"{k} {v11.fmt(res[k])}" for k in ("arena",) + NEW))

    v11.pairs(scores, ("arena",) + NEW)
    # ADDED AFTER THE RUN (nothing yet)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--coverage"]
    main(Path(args[0]), Path(args[1]), Path(args[2]), Path(args[3]), "--coverage" in sys.argv)

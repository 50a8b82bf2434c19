"""auto v11 look: does a second published ability score order models better than the LMArena score
on benchmark-like prompts? (session 13; exploratory, nothing ships, no router is trained)

Written and committed before its first run; nothing below changes after. Only which models HAVE a
score was looked at before writing this (that fixes the model sets); no realised quality was computed.

Declared settings
- Realised quality: per set (`llmrouter`, `zeroeval`, `routerarena`, as written by `python -m
  routerone.routing.learned.train prepare --dataset D --source SNAPSHOT --out DIR/D`), per task (the
  `task` column) and over the whole set, each model's mean score over the prompts on which every
  compared model has a score.
- Scores (higher = better), each model's name mapped by HF_IDS below (hand-written before the run):
    arena    = LMArena text 2025-08-04 (leaderboard.Leaderboard.find on the set's model name, the
               lookup the shipped prior uses);
    mmlu     = Open LLM Leaderboard v1 MMLU (5-shot), fboulnois/llm-leaderboard-csv @ 528598214f8f,
               csv/huggingface_v1.csv (its last version), row(s) of the HF id, mean over rows;
    v2avg    = Open LLM Leaderboard v2 average, data/open_llm_leaderboard_v2_2025-03-21.csv.gz (as
               OpenBoard reads it, unflagged rows, mean over rows of the HF id);
    mmlupro  = the same v2 rows' MMLU-Pro value;
    z_ar_mm  = mean of z(arena) and z(mmlu), z over the compared models of that task;
    MT-Bench: not available (no version of fboulnois/llm-leaderboard-csv has an MT-bench column;
              see bench/results/auto-prior-look.md), so not compared.
- Compared models of a task = the set's models that have EVERY score above and a result on the task.
  A task with fewer than MIN_MODELS (4) compared models is "n<4": no correlation, counts as NOT
  exceeding arena.
- Statistic: Spearman rank correlation (average ranks for ties) between each score and the realised
  mean quality; 95% interval from 1,000 bootstrap resamples of the task's prompts (seed 0, 2.5-97.5
  percentiles), and the paired difference score - arena on the same resamples.
- Top-1: per task, a hit when the single model a score ranks first (a tie at the top = miss) is a
  realised best (ties in the realised mean all count as best). Share of the set's tasks with >= 4
  compared models.
Rule fixed in advance: a score is "worth a candidate" only if its point correlation is strictly above
arena's on a majority (> half) of ALL tasks of a set (n<4 tasks count as not above), in at least two of
the three sets, counting only models with every score. Anything else: not worth a candidate.

Run: PYTHONPATH=src .venv/bin/python bench/auto_v11/prior_look.py DIR HF_V1_CSV [REDUX_JSON] > OUT
  (DIR holds the prepared sets as DIR/<set>/all.csv; HF_V1_CSV = `git show
  528598214f8f7a42d2259acec7a612c80b82da46:csv/huggingface_v1.csv` of the fetched snapshot.)
"""
from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

import numpy as np

from routerone.routing.learned.leaderboard import OPEN_BOARD_PATH, Leaderboard

SETS = ("llmrouter", "zeroeval", "routerarena")
META = {"prompt", "task", "overlaps", "prompt_tokens_o200k", "fold", "question_id"}
SCORES = ("arena", "mmlu", "v2avg", "mmlupro", "z_ar_mm")
MIN_MODELS = 4
RESAMPLES = 1000
HF_IDS = {   # set's model name -> Hugging Face ids to try, in order (open models only)
    "qwen2.5-7b-instruct": ["Qwen/Qwen2.5-7B-Instruct"],
    "llama-3.1-8b-instruct": ["meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-8B-Instruct"],
    "mistral-7b-instruct-v0.3": ["mistralai/Mistral-7B-Instruct-v0.3"],
    "gemma-2-9b-it": ["google/gemma-2-9b-it"],
    "llama-3.3-nemotron-super-49b-v1": ["nvidia/Llama-3_3-Nemotron-Super-49B-v1"],
    "llama-3.1-nemotron-51b-instruct": ["nvidia/Llama-3.1-Nemotron-51B-Instruct"],
    "codegemma-7b": ["google/codegemma-7b-it"],
    "llama3-chatqa-1.5-8b": ["nvidia/Llama3-ChatQA-1.5-8B"],
    "llama3-chatqa-1.5-70b": ["nvidia/Llama3-ChatQA-1.5-70B"],
    "Athene-70B": ["Nexusflow/Athene-70B"],
    "Meta-Llama-3-8B-Instruct": ["meta-llama/Meta-Llama-3-8B-Instruct"],
    "Meta-Llama-3-70B-Instruct": ["meta-llama/Meta-Llama-3-70B-Instruct"],
    "Meta-Llama-3.1-8B-Instruct": ["meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-8B-Instruct"],
    "Meta-Llama-3.1-70B-Instruct": ["meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Meta-Llama-3.1-70B-Instruct"],
    "Mistral-Large-2": ["mistralai/Mistral-Large-Instruct-2407"],
    "Mistral-Nemo-Instruct-2407": ["mistralai/Mistral-Nemo-Instruct-2407"],
    "Mixtral-8x7B-Instruct-v0.1": ["mistralai/Mixtral-8x7B-Instruct-v0.1"],
    "Phi-3-mini-4k-instruct": ["microsoft/Phi-3-mini-4k-instruct"],
    "Phi-3.5-mini-instruct": ["microsoft/Phi-3.5-mini-instruct"],
    "Qwen2-72B-Instruct": ["Qwen/Qwen2-72B-Instruct"],
    "Qwen2-7B-Instruct": ["Qwen/Qwen2-7B-Instruct"],
    "Qwen2.5-3B-Instruct": ["Qwen/Qwen2.5-3B-Instruct"],
    "Qwen2.5-7B-Instruct": ["Qwen/Qwen2.5-7B-Instruct"],
    "Qwen2.5-32B-Instruct": ["Qwen/Qwen2.5-32B-Instruct"],
    "Qwen2.5-72B-Instruct": ["Qwen/Qwen2.5-72B-Instruct"],
    "Yi-1.5-34B-Chat": ["01-ai/Yi-1.5-34B-Chat"],
    "Yi-1.5-9B-Chat": ["01-ai/Yi-1.5-9B-Chat"],
    "gemma-2-2b-it": ["google/gemma-2-2b-it"],
    "gemma-2-27b-it": ["google/gemma-2-27b-it"],
    "deepseek-v2-chat-0628": ["deepseek-ai/DeepSeek-V2-Chat-0628"],
    "deepseek-v2.5-0908": ["deepseek-ai/DeepSeek-V2.5"],
}


def _num(text) -> float | None:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if v == v else None


def board_scores(v1_path: Path) -> dict[str, dict[str, float]]:
    """model name -> {score: value} for every score the model has (before the z-mean)."""
    v1: dict[str, list[float]] = {}
    with open(v1_path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if (v := _num(r.get("mmlu"))) is not None:
                v1.setdefault(r["fullname"].strip().lower(), []).append(v)
    v2: dict[str, list[tuple[float, float]]] = {}
    with gzip.open(OPEN_BOARD_PATH, "rt", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            a, p = _num(r.get("model_average_score")), _num(r.get("evaluations_mmlu_pro_value"))
            if a is not None and p is not None and r.get("features_is_flagged", "").upper() != "TRUE":
                v2.setdefault(r["model_name"].strip().lower(), []).append((a, p))
    arena = Leaderboard.load()
    out: dict[str, dict[str, float]] = {}
    names = set(HF_IDS)
    for s in SETS:
        names |= set(models_of(s))
    for name in sorted(names):
        got: dict[str, float] = {}
        if (row := arena.find(name)) is not None:
            got["arena"] = row.score
        for hf in HF_IDS.get(name, []):
            if "mmlu" not in got and (vals := v1.get(hf.lower())):
                got["mmlu"] = sum(vals) / len(vals)
            if "v2avg" not in got and (rows := v2.get(hf.lower())):
                got["v2avg"] = sum(a for a, _ in rows) / len(rows)
                got["mmlupro"] = sum(p for _, p in rows) / len(rows)
        out[name] = got
    return out


_TABLES: dict[str, tuple[list[str], list[dict]]] = {}


def table(s: str) -> tuple[list[str], list[dict]]:
    return _TABLES[s]


def models_of(s: str) -> list[str]:
    return _TABLES[s][0] if s in _TABLES else []


def load(root: Path) -> None:
    csv.field_size_limit(sys.maxsize)
    for s in SETS:
        p = root / s / "all.csv"
        if not p.exists():
            continue
        with open(p, newline="", encoding="utf-8") as f:
            r = csv.DictReader(f)
            rows = list(r)
            models = [c for c in (r.fieldnames or []) if c not in META and "|" not in c]
        _TABLES[s] = (models, rows)


def ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, axis=-1, kind="mergesort")
    r = np.empty_like(x)
    np.put_along_axis(r, order, np.arange(x.shape[-1], dtype=float) * np.ones_like(x), axis=-1)
    flat = x.reshape(-1, x.shape[-1])
    rf = r.reshape(-1, x.shape[-1])
    for i in range(flat.shape[0]):
        vals, inv = np.unique(flat[i], return_inverse=True)
        if len(vals) < flat.shape[1]:
            rf[i] = np.bincount(inv, weights=rf[i]) [inv] / np.bincount(inv)[inv]
    return r


def spearman(score: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Spearman of one score vector (m,) with each row of means (b, m); nan where a side is constant."""
    a = ranks(score)
    b = ranks(means)
    a = a - a.mean()
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum()) * np.sqrt((b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (b @ a) / den


def look(name: str, models: list[str], rows: list[dict], scores: dict[str, dict[str, float]], rng,
         need: tuple[str, ...] = SCORES[:-1]) -> dict:
    """One task (or a whole set): correlations, intervals, top-1, over the models with every score in `need`."""
    have = [m for m in models if all(k in scores.get(m, {}) for k in need)]
    have = [m for m in have if any(_num(r.get(m)) is not None for r in rows)]
    res = {"task": name, "n_prompts": 0, "models": have}
    if len(have) < MIN_MODELS:
        return res
    q = [[_num(r.get(m)) for m in have] for r in rows]
    q = np.array([v for v in q if all(x is not None for x in v)], dtype=float).reshape(-1, len(have))
    res["n_prompts"] = int(q.shape[0])
    if q.shape[0] == 0:
        return res
    sv = {k: np.array([scores[m][k] for m in have], dtype=float) for k in need}
    z = lambda v: (v - v.mean()) / (v.std() or 1.0)  # noqa: E731
    if "mmlu" in need:
        sv["z_ar_mm"] = (z(sv["arena"]) + z(sv["mmlu"])) / 2
    means = q.mean(axis=0)
    n = q.shape[0]
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=RESAMPLES).astype(float)
    boot = (w @ q) / n
    res["realised"] = dict(zip(have, means.round(4).tolist()))
    for k in sv:
        point = float(spearman(sv[k], means[None, :])[0])
        b = spearman(sv[k], boot)
        res[k] = (point, *np.nanpercentile(b, [2.5, 97.5]).tolist())
        if k != "arena":
            d = b - spearman(sv["arena"], boot)
            res[k + "-arena"] = tuple(np.nanpercentile(d, [2.5, 97.5]).tolist())
        top = np.flatnonzero(sv[k] == sv[k].max())
        best = set(np.flatnonzero(means == means.max()).tolist())
        res["top1_" + k] = bool(len(top) == 1 and int(top[0]) in best)
    return res


def fmt(t) -> str:
    return f"{t[0]:+.2f} [{t[1]:+.2f}, {t[2]:+.2f}]" if t[0] == t[0] else "nan"


def main(root: Path, v1_path: Path) -> None:
    load(root)
    scores = board_scores(v1_path)
    rng = np.random.default_rng(0)
    print("## Scores per model (every score the model has)\n")
    print("| set | model | " + " | ".join(SCORES[:-1]) + " |\n|---|---|" + "---|" * (len(SCORES) - 1))
    for s in SETS:
        for m in models_of(s):
            g = scores.get(m, {})
            print(f"| {s} | {m} | " + " | ".join(f"{g[k]:.4g}" if k in g else "-" for k in SCORES[:-1]) + " |")
    above: dict[str, dict[str, int]] = {}
    print("\n## Spearman with realised mean quality, models with every score\n")
    print("| set | task | prompts | models | " + " | ".join(SCORES) + " | top-1 hits (" + ",".join(SCORES) + ") |")
    print("|---|---|---|---|" + "---|" * (len(SCORES) + 1))
    for s in SETS:
        if s not in _TABLES:
            print(f"| {s} | (not prepared) |")
            continue
        models, rows = _TABLES[s]
        tasks = sorted({r["task"] for r in rows})
        above[s] = {k: 0 for k in SCORES[1:]}
        above[s]["_tasks"] = len(tasks)
        for t in tasks + ["(whole set)"]:
            sub = rows if t == "(whole set)" else [r for r in rows if r["task"] == t]
            res = look(t, models, sub, scores, rng)
            if "arena" not in res:
                print(f"| {s} | {t} | {res['n_prompts']} | {len(res['models'])} (n<{MIN_MODELS}) |"
                      + " - |" * (len(SCORES) + 1))
                continue
            cells = [fmt(res[k]) for k in SCORES]
            hits = "".join("1" if res["top1_" + k] else "0" for k in SCORES)
            print(f"| {s} | {t} | {res['n_prompts']} | {len(res['models'])} | " + " | ".join(cells) + f" | {hits} |")
            if t != "(whole set)":
                for k in SCORES[1:]:
                    above[s][k] += int(res[k][0] > res["arena"][0])
                above[s].setdefault("_top1", {k: 0 for k in SCORES})
                above[s].setdefault("_counted", 0)
                above[s]["_counted"] += 1
                for k in SCORES:
                    above[s]["_top1"][k] += int(res["top1_" + k])
            print(f"<!-- {s} {t} realised {res['realised']} diffs "
                  + " ".join(f"{k}-arena={res[k + '-arena'][0]:+.2f},{res[k + '-arena'][1]:+.2f}" for k in SCORES[1:])
                  + " -->")
    print("\n## The rule\n")
    print("| score | " + " | ".join(f"{s}: tasks above arena / all" for s in above) + " | sets with a majority | verdict |")
    print("|---|" + "---|" * (len(above) + 2))
    for k in SCORES[1:]:
        maj = [s for s in above if above[s][k] * 2 > above[s]["_tasks"]]
        print(f"| {k} | " + " | ".join(f"{above[s][k]}/{above[s]['_tasks']}" for s in above)
              + f" | {len(maj)} | {'worth a candidate' if len(maj) >= 2 else 'not worth a candidate'} |")
    print("\nTop-1 share (tasks with >= 4 compared models): "
          + "; ".join(f"{s}: " + ", ".join(f"{k} {above[s]['_top1'][k]}/{above[s]['_counted']}" for k in SCORES)
                      for s in above if above[s].get("_counted")))

    extra = ("mmlu", "v2avg", "mmlupro")
    if len(sys.argv) > 3:     # ZeroEval's own MMLU-Redux summary (added after the first run, see pairwise)
        import json
        for rec in json.loads(Path(sys.argv[3]).read_text(encoding="utf-8")):
            if (v := _num(rec.get("Acc"))) is not None:
                scores.setdefault(rec["Model"], {})["redux"] = v
        extra += ("redux",)
    pairwise(scores, np.random.default_rng(1), extra)
    pairs(scores, ("arena",) + extra)


PAIRS = (("zeroeval", "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18"),
         ("llmrouter", "llama-3.1-nemotron-51b-instruct", "llama-3.3-nemotron-super-49b-v1"))


def pairs(scores: dict[str, dict[str, float]], keys: tuple[str, ...]) -> None:
    """Added after the first run: the two orderings the brief names, realised per task vs each score."""
    print("\n## Added after the first run: the two pairs the arena prior orders wrongly\n")
    for s, a, b in PAIRS:
        if s not in _TABLES:
            continue
        _, rows = _TABLES[s]
        cells = []
        for t in sorted({r["task"] for r in rows}):
            qa = [(_num(r.get(a)), _num(r.get(b))) for r in rows if r["task"] == t]
            qa = [(x, y) for x, y in qa if x is not None and y is not None]
            if qa:
                cells.append(f"{t} {np.mean([x for x, _ in qa]):.3f} vs {np.mean([y for _, y in qa]):.3f}")
        ga, gb = scores.get(a, {}), scores.get(b, {})
        orders = [f"{k} {ga[k]:.4g} vs {gb[k]:.4g}" if k in ga and k in gb else f"{k} -" for k in keys]
        print(f"- {s}: {a} vs {b}: realised " + "; ".join(cells) + ". Scores: " + "; ".join(orders))


def pairwise(scores: dict[str, dict[str, float]], rng, extra: tuple[str, ...]) -> None:
    """ADDED AFTER THE FIRST RUN, not part of the declared rule: each second score against arena over
    the models that have both (more models per task than "every score"; a different model set per score).
    `redux` = MMLU-Redux accuracy from ZeroEval's own result_dirs/mmlu-redux.summary.json (the set's
    model names; same harness as the ZeroEval tasks, so not independent of them)."""
    print("\n## Added after the first run (not the rule): each score vs arena, models with both\n")
    print("| set | task | score | models | prompts | arena | score | score - arena 95% | top-1 arena/score |")
    print("|---|---|---|---|---|---|---|---|---|")
    tally: dict[tuple[str, str], list[int]] = {}
    for s in SETS:
        if s not in _TABLES:
            continue
        models, rows = _TABLES[s]
        tasks = sorted({r["task"] for r in rows})
        for k in extra:
            t_above = tally.setdefault((s, k), [0, 0, len(tasks)])
            for t in tasks + ["(whole set)"]:
                sub = rows if t == "(whole set)" else [r for r in rows if r["task"] == t]
                res = look(t, models, sub, scores, rng, need=("arena", k))
                if "arena" not in res:
                    if t == "(whole set)":
                        why = f"n<{MIN_MODELS}" if len(res["models"]) < MIN_MODELS else "no prompt all of them answered"
                        print(f"| {s} | all tasks | {k} | {len(res['models'])} ({why}) | | | | | |")
                    continue
                d = res[k + "-arena"]
                print(f"| {s} | {t} | {k} | {len(res['models'])} | {res['n_prompts']} | {fmt(res['arena'])} | "
                      f"{fmt(res[k])} | [{d[0]:+.2f}, {d[1]:+.2f}] | {int(res['top1_arena'])}/{int(res['top1_' + k])} |")
                if t != "(whole set)":
                    t_above[0] += int(res[k][0] > res["arena"][0])
                    t_above[1] += 1
    print("\nTasks where the score's point correlation is above arena's / tasks with >= 4 models / all tasks: "
          + "; ".join(f"{s} {k} {a}/{c}/{n}" for (s, k), (a, c, n) in tally.items()))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

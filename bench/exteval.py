"""How the SHIPPED `auto` does on external per-prompt sets it never saw (issue 16): a proxy for an
independent held-out evaluation with other models and prompts.

    .venv/bin/python bench/exteval.py --llmrouter SNAPSHOT --routerarena SNAPSHOT \
        [--work /tmp/exteval] [--bootstrap 1000] [--md bench/results/auto-external.md]

SNAPSHOT: a fetched snapshot of ulab-uiuc/LLMRouter / RouteWorks/RouterArena (the bare git dir the
`fetch` tool leaves under /work/.mirror/<owner>+<name>/repo, or a clone's .git; see README
"Reproducing the figures"). Nothing here trains or changes the router: every figure is the shipped
artefact scored without retraining, by the same code as `routerone eval-routing --router shipped`.

Steps (all outputs under --work; the report is written to --md):
1. prepare each set with `python -m routerone.routing.learned.train prepare --dataset NAME --source
   SNAPSHOT --out WORK/data/NAME` (skipped when WORK/data/NAME/all.csv exists; --reprepare redoes it).
   Prices: the prices.json that `prepare` writes, i.e. each source's own price list (LLMRouter
   `default_llm.json`, NVIDIA-hosted list prices; RouterArena `model_cost/cost.json`); each number's
   source is in that file and in the report, beside the genai-prices list price where the bundled
   genai-prices snapshot (the one Router One bills with) has the model.
2. whole set: `routerone eval-routing WORK/data/NAME/all.csv --router shipped --prices
   WORK/data/NAME/prices.json --decisions-out WORK/ev/NAME/decisions.csv --out WORK/ev/NAME`, run as a
   subprocess (the literal CLI), figures read from its eval.json. eval-routing does not drop rows whose
   `overlaps` column names an evaluation set (with --router nothing is trained, and the column is
   ignored), so the headline figures keep them; a sensitivity run on the rows overlapping none is
   reported beside (WORK/data/NAME-nooverlap.csv), and one without the models that get the "default"
   profile (no prior found; WORK/data/NAME-priors.csv).
3. per task (llmrouter: its 14 tasks; routerarena: benchmark families with >= MIN_TASK_ROWS rows, the
   family being the `task` name up to its first `_`): the same command on that task's rows.
4. decisions: the shipped router's choice per prompt at every willingness to pay of eval-routing's
   grid (eval_auto.predict + value.choose_matrix, what eval-routing scores), at 0 / 0.5 / 1 by model;
   whether wtp = 1 picks the strongest model by the data (highest mean quality on the set or task);
   how often a dominated model is chosen (another model is no dearer and no worse on that set's or
   task's mean realised cost and quality, and strictly better in one; "weakly" when it costs the same).
   The runtime BalancedStrategy.rank (what `model: auto` serves) is run on RUNTIME_SAMPLE prompts
   per set at 0 / 0.5 / 1 with the same prices, and its first choice compared with the evaluation's.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from routerone.routing import eval_auto as A  # noqa: E402
from routerone.routing.evaluation import cost_micros, load_prices, load_table, subset  # noqa: E402
from routerone.routing.learned.profiles import ARTEFACT_PATH, ProfileRouter  # noqa: E402
from routerone.routing.learned.value import choose_matrix  # noqa: E402

SETS = ("llmrouter", "routerarena")
MIN_TASK_ROWS = 20
RUNTIME_SAMPLE = 300
REPORT_WTPS = (0.0, 0.5, 1.0)
OPERATOR_ENV = ("ROUTERONE_ROUTER_MODEL", "ROUTERONE_MODEL_PRIORS")    # unset: the shipped state is scored
MARKER = "<!-- everything below is written by bench/exteval.py; text above this line is kept -->"
GENAI_PRICE_IDS = {   # model -> (genai-prices provider, model id) for the cross-check column
    "claude-3-haiku-20240307": ("anthropic", "claude-3-haiku-20240307"),
    "gemini-2.0-flash-001": ("google", "gemini-2.0-flash-001"),
    "qwen2.5-7b-instruct": ("openrouter", "qwen/qwen-2.5-7b-instruct"),
    "llama-3.1-8b-instruct": ("openrouter", "meta-llama/llama-3.1-8b-instruct"),
    "mistral-7b-instruct-v0.3": ("openrouter", "mistralai/mistral-7b-instruct-v0.3"),
    "gemma-2-9b-it": ("openrouter", "google/gemma-2-9b-it"),
    "llama-3.3-nemotron-super-49b-v1": ("openrouter", "nvidia/llama-3.3-nemotron-super-49b-v1"),
    "llama-3.1-nemotron-51b-instruct": ("openrouter", "nvidia/llama-3.1-nemotron-51b-instruct"),
    "codegemma-7b": ("openrouter", "google/codegemma-7b"),
    "llama3-chatqa-1.5-8b": ("openrouter", "nvidia/llama3-chatqa-1.5-8b"),
    "llama3-chatqa-1.5-70b": ("openrouter", "nvidia/llama3-chatqa-1.5-70b"),
}


def _py() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _env() -> dict:
    """This checkout's code (not an installed copy), without an operator's artefact or priors."""
    return {**{k: v for k, v in os.environ.items() if k not in OPERATOR_ENV}, "PYTHONPATH": str(ROOT / "src")}


def _read_rows(path: Path) -> tuple[list[str], list[dict]]:
    csv.field_size_limit(sys.maxsize)
    with open(path, newline="", encoding="utf-8") as fh:
        r = csv.DictReader(fh)
        return list(r.fieldnames or []), list(r)


def _write_rows(path: Path, fields: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def prepare(name: str, source: Path, work: Path, again: bool) -> Path:
    out = work / "data" / name
    if again or not (out / "all.csv").is_file():
        cmd = [_py(), "-m", "routerone.routing.learned.train", "prepare", "--dataset", name,
               "--source", str(source), "--out", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env())
    return out


def eval_cli(csv_path: Path, prices: Path, out: Path, n_boot: int, decisions: bool = False) -> dict:
    """`routerone eval-routing CSV --router shipped --prices P --out OUT`; its eval.json."""
    cmd = [_py(), "-m", "routerone", "eval-routing", str(csv_path), "--router", "shipped",
           "--prices", str(prices), "--out", str(out), "--bootstrap", str(n_boot)]
    if decisions:
        cmd += ["--decisions-out", str(out / "decisions.csv")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stdout}{r.stderr}")
    res = json.loads((out / "eval.json").read_text())
    res["_command"] = "routerone " + " ".join(cmd[3:])
    res["_stdout"] = r.stdout
    return res


def figures(res: dict) -> dict:
    """The headline numbers of one eval.json."""
    mm = res["multi_model"]
    r = mm["routers"]
    best = mm["best_single_model"]
    out = {"n": res["n_test"], "auto": r["auto"]["aiq"], "auto_ci": r["auto"]["aiq_ci"],
           "zero": r["zero_router"]["aiq"], "zero_ci": r["zero_router"]["aiq_ci"],
           "random": r["random_same_mix"]["aiq"], "random_ci": r["random_same_mix"]["aiq_ci"],
           "auto_minus_zero": mm["auto_minus_zero_aiq"], "auto_minus_zero_ci": r["auto"]["aiq_minus_zero_ci"],
           "auto_minus_random_ci": r["auto"]["aiq_minus_random_ci"],
           "best": best, "best_quality": mm["single_models"][best]["quality"],
           "best_cost_micros": mm["single_models"][best]["cost_micros_per_prompt"],
           "picks_by_wtp": mm["picks_by_wtp"]}
    two = res.get("two_model")
    if two:
        a = two["routers"]["auto"]
        out["apgr"] = a["apgr"]
        out["apgr_ci"] = a.get("apgr_ci")
        out["apgr_minus_random_ci"] = a.get("apgr_minus_random_ci")
        out["random_apgr"] = two["routers"]["random"]["apgr"]
    return out


def dominated(cost: dict[str, float], quality: dict[str, float]) -> dict[str, str]:
    """{model: "strictly" | "weakly" (same cost) + by whom} for the dominated models."""
    out = {}
    for m in cost:
        for o in cost:
            if o == m or cost[o] > cost[m] or quality[o] < quality[m]:
                continue
            if cost[o] < cost[m] or quality[o] > quality[m]:
                kind = "strictly" if cost[o] < cost[m] else "weakly (same cost)"
                if m not in out or out[m].startswith("weakly"):
                    out[m] = f"{kind} by {o}"
    return out


def decision_stats(table, prices, router, idx: np.ndarray) -> dict:
    """Choices of the shipped router on rows `idx` across the WTP grid, vs the data."""
    t = subset(table, idx)
    models = [m for m in t.models if m in prices]
    pred_q, pred_c = A.predict(router, t.prompts, t.prompt_tokens, models, prices)
    choice = choose_matrix(pred_q, pred_c, A.WTP_GRID)                     # (n, K)
    true_q = t.quality[:, [t.models.index(m) for m in models]]
    true_c = cost_micros(t, prices, models)
    mean_q = dict(zip(models, true_q.mean(axis=0).tolist()))
    mean_c = dict(zip(models, true_c.mean(axis=0).tolist()))
    dom = dominated(mean_c, mean_q)
    dom_idx = np.array([m in dom for m in models])
    strict_idx = np.array([dom.get(m, "").startswith("strictly") for m in models])
    strongest = max(models, key=lambda m: (mean_q[m], -mean_c[m]))
    at = {}
    for w in REPORT_WTPS:
        k = int(round(w * (len(A.WTP_GRID) - 1)))
        c = Counter(models[j] for j in choice[:, k])
        at[f"{w:.1f}"] = {"picks": dict(c.most_common()),
                          "dominated_share": float(dom_idx[choice[:, k]].mean()),
                          "strictly_dominated_share": float(strict_idx[choice[:, k]].mean()),
                          "realised_quality": float(true_q[np.arange(len(t.prompts)), choice[:, k]].mean()),
                          "realised_cost_micros": float(true_c[np.arange(len(t.prompts)), choice[:, k]].mean())}
    ranges = []                 # (model, first wtp, last wtp) where it is the most chosen
    for k, w in enumerate(A.WTP_GRID):
        top = models[int(np.bincount(choice[:, k], minlength=len(models)).argmax())]
        if ranges and ranges[-1][0] == top:
            ranges[-1][2] = float(w)
        else:
            ranges.append([top, float(w), float(w)])
    # the trade: the predicted strongest model vs the predicted cheapest (else the predicted weakest)
    hi, lo = int(pred_q.mean(axis=0).argmax()), int(pred_c.mean(axis=0).argmin())
    if hi == lo:
        lo = int(pred_q.mean(axis=0).argmin())
    signal = {"mean_quality": _corr_ci(pred_q.mean(axis=1), true_q.mean(axis=1)),
              "gap": _corr_ci(pred_q[:, hi] - pred_q[:, lo], true_q[:, hi] - true_q[:, lo]),
              "gap_models": [models[hi], models[lo]]}
    return {"n": len(t.prompts), "mean_quality": mean_q, "majority_pick_ranges": ranges,
            "signal": signal, "mean_cost_micros": mean_c, "dominated": dom,
            "strongest_by_data": strongest,
            "wtp1_picks_strongest_share": float((choice[:, -1] == models.index(strongest)).mean()),
            "dominated_share_over_grid": float(dom_idx[choice].mean()),
            "strictly_dominated_share_over_grid": float(strict_idx[choice].mean()),
            "wtps_with_any_dominated_pick": int(dom_idx[choice].any(axis=0).sum()),
            "at": at, "profile_sources": {m: router.profile(m).source for m in models}}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant."""
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _corr_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 1000) -> list[float]:
    """[Pearson r, 2.5 and 97.5 percentiles over prompt resamples (numpy default_rng(0))]."""
    rng = np.random.default_rng(0)
    boots = [_corr(a[i], b[i]) for i in (rng.integers(0, len(a), len(a)) for _ in range(n_boot))]
    if all(v != v for v in boots):
        return [_corr(a, b), float("nan"), float("nan")]
    return [_corr(a, b), float(np.nanpercentile(boots, 2.5)), float(np.nanpercentile(boots, 97.5))]


def runtime_check(table, prices, router, n: int) -> dict:
    """The runtime BalancedStrategy.rank's first choice vs eval's choose_matrix on n prompts."""
    from routerone.billing.prices import Price
    from routerone.catalog import load_catalog
    from routerone.routing.base import RouteContext
    from routerone.routing.health import Health
    from routerone.routing.strategies import BalancedStrategy
    from routerone.settings import Settings
    from routerone.wire.chat import validate_body
    models = [m for m in table.models if m in prices]
    base = next(iter(load_catalog(Settings()).models.values()))
    infos = [dataclasses.replace(base, id=m, price=Price(round(prices[m][0] * 1e6), round(prices[m][1] * 1e6)))
             for m in models]
    strategy, health = BalancedStrategy(router), Health()
    rows = np.random.default_rng(0).permutation(len(table.prompts))[:n]
    t = subset(table, rows)
    pred_q, pred_c = A.predict(router, t.prompts, t.prompt_tokens, models, prices)
    eval_choice = choose_matrix(pred_q, pred_c, REPORT_WTPS)
    agree = Counter()
    for i, p in enumerate(t.prompts):
        req = validate_body({"model": "auto", "messages": [{"role": "user", "content": p}]})
        for k, w in enumerate(REPORT_WTPS):
            ranked, _ = strategy.rank(req, infos, RouteContext(health, w, int(t.prompt_tokens[i])))
            agree[f"{w:.1f}"] += ranked[0].id == models[eval_choice[i, k]]
    return {"prompts": len(rows), "agree": dict(agree)}


def price_table(prices_json: Path) -> list[dict]:
    from routerone.billing.pricebook import lookup_price
    raw = json.loads(prices_json.read_text())
    out = []
    for m, p in raw.items():
        gp = GENAI_PRICE_IDS.get(m)
        found = lookup_price(*gp) if gp else None
        out.append({"model": m, "in": p["input_token_price_per_million"],
                    "out": p["output_token_price_per_million"], "source": p.get("source", "?"),
                    "genai": None if found is None else (found.input_micros_per_mtok / 1e6,
                                                         found.output_micros_per_mtok / 1e6, f"{gp[0]}:{gp[1]}")})
    return out


def task_of(name: str, task: str) -> str:
    return task if name == "llmrouter" else task.split("_", 1)[0]


def run_set(name: str, data: Path, work: Path, n_boot: int) -> dict:
    all_csv, prices_json = data / "all.csv", data / "prices.json"
    fields, rows = _read_rows(all_csv)
    ev = work / "ev" / name
    res = {"whole": figures(eval_cli(all_csv, prices_json, ev, n_boot, decisions=True))}
    res["command"] = f"routerone eval-routing {all_csv} --router shipped --prices {prices_json} " \
                     f"--decisions-out {ev}/decisions.csv --out {ev}"
    clean = [r for r in rows if not r.get("overlaps")]
    _write_rows(data.parent / f"{name}-nooverlap.csv", fields, clean)
    res["no_overlap"] = figures(eval_cli(data.parent / f"{name}-nooverlap.csv", prices_json,
                                         work / "ev" / f"{name}-nooverlap", n_boot))
    res["overlap_rows"] = len(rows) - len(clean)
    router = ProfileRouter.load(ARTEFACT_PATH)
    default = {m for m in load_table(all_csv).models if router.profile(m).source == "default"}
    if default:          # sensitivity: only the models the router has a published prior for
        keep = [f for f in fields if f.split("|", 1)[0] not in default]
        _write_rows(data.parent / f"{name}-priors.csv", keep, [{f: r[f] for f in keep} for r in rows])
        res["prior_models_only"] = figures(eval_cli(data.parent / f"{name}-priors.csv", prices_json,
                                                    work / "ev" / f"{name}-priors", n_boot))
        res["default_profile_models"] = sorted(default)
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(task_of(name, r.get("task", "")), []).append(r)
    res["tasks"] = {}
    table = load_table(all_csv)
    prices = load_prices(prices_json, table.models)
    res["decisions"] = {"all": decision_stats(table, prices, router, np.arange(len(table.prompts)))}
    tasks_col = [task_of(name, r.get("task", "")) for r in rows]
    for task, trows in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        if len(trows) < MIN_TASK_ROWS:
            continue
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in task)
        tcsv = data.parent / "tasks" / name / f"{safe}.csv"
        _write_rows(tcsv, fields, trows)
        res["tasks"][task] = figures(eval_cli(tcsv, prices_json, work / "ev" / f"{name}-tasks" / safe, n_boot))
        idx = np.array([i for i, t in enumerate(tasks_col) if t == task])
        res["decisions"][task] = decision_stats(table, prices, router, idx)
    res["small_tasks"] = {t: len(v) for t, v in groups.items() if len(v) < MIN_TASK_ROWS}
    res["runtime_check"] = runtime_check(table, prices, router, RUNTIME_SAMPLE)
    res["prices"] = price_table(prices_json)
    res["models"] = table.models
    return res


# ---------------------------------------------------------------------------------------------
# report

def _ci(v, fmt="{:.4f}") -> str:
    return f"[{fmt.format(v[0])}, {fmt.format(v[1])}]" if v else "-"


def _fig_row(label: str, f: dict) -> str:
    return (f"| {label} | {f['n']} | {f['auto']:.4f} {_ci(f['auto_ci'])} | {f['zero']:.4f} {_ci(f['zero_ci'])} "
            f"| {f['random']:.4f} {_ci(f['random_ci'])} | {f['auto_minus_zero']:+.4f} "
            f"{_ci(f['auto_minus_zero_ci'], '{:+.4f}')} | {_ci(f['auto_minus_random_ci'], '{:+.4f}')} "
            f"| {f['best']} {f['best_quality']:.3f} @ {f['best_cost_micros']:.0f} |")


FIG_HEAD = ("| rows | n | AIQ auto [95%] | AIQ zero router [95%] | AIQ random router (same mix) [95%] "
            "| AIQ auto - zero [95%] | auto - random [95%] | best single model: quality @ micro-USD/prompt |\n"
            "|---|---|---|---|---|---|---|---|")


def _r(v: list[float]) -> str:
    return "-" if v[0] != v[0] else f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


def _picks(at: dict, w: str) -> str:
    p = at[w]["picks"]
    n = sum(p.values())
    return ", ".join(f"{m} {100 * c / n:.0f}%" for m, c in p.items())


def report(results: dict, args) -> str:
    L = ["# The shipped `auto` on external per-prompt sets it never saw (issue 16 proxy)", "",
         "Written by `bench/exteval.py` (re-run: `.venv/bin/python bench/exteval.py --llmrouter "
         f"{args.llmrouter} --routerarena {args.routerarena} --work {args.work}`). The shipped artefact "
         "(`router_model.npz`, trained on MMLU, GSM8K, MT-Bench and arena-bench-v1 only) is scored without "
         "retraining (`eval-routing --router shipped`). None of these sets' models is in its training "
         "data; their profiles come from the LMArena prior or the default (table below). "
         f"Intervals: eval-routing's paired bootstrap, {args.bootstrap} resamples, 2.5-97.5 percentiles. "
         "AIQ = average quality of the cost-quality hull over the cost range of the single models "
         "(metrics.py); zero router = hull of the single models; random router = each willingness-to-pay "
         "setting's choices shuffled across prompts (same model mix, no per-prompt knowledge). "
         "No RouterBench or AlpacaEval data is read.", ""]
    for name, r in results.items():
        L += [f"## {name}", "", "Commands:", "```", r["command"],
              f"# per task / without overlapping rows: the same command on WORK/data/tasks/{name}/<task>.csv "
              f"and WORK/data/{name}-nooverlap.csv", "```", ""]
        L += ["Prices (USD per 1M tokens, input/output) and profiles:", "",
              "| model | price used | source of that price | genai-prices list price (cross-check) | shipped profile |",
              "|---|---|---|---|---|"]
        src = r["decisions"]["all"]["profile_sources"]
        for p in r["prices"]:
            g = p["genai"]
            genai = "not in genai-prices" if g is None else f"{g[0]:g}/{g[1]:g} ({g[2]})"
            L.append(f"| {p['model']} | {p['in']:g}/{p['out']:g} | {p['source']} | {genai} "
                     f"| {src.get(p['model'], '-')} |")
        L += ["", FIG_HEAD, _fig_row("all rows (what eval-routing scores)", r["whole"]),
              _fig_row(f"rows overlapping no evaluation set (sensitivity; {r['overlap_rows']} dropped)",
                       r["no_overlap"])]
        if "prior_models_only" in r:
            L.append(_fig_row("only the models with an LMArena prior (sensitivity; without the default-profile "
                              + ", ".join(r["default_profile_models"]) + ")", r["prior_models_only"]))
        if "apgr" in r["whole"]:
            w = r["whole"]
            L += ["", f"Two models: the predicted quality gap as a RouteLLM router: APGR {w['apgr']:.3f} "
                      f"{_ci(w['apgr_ci'], '{:.3f}')} vs random {w['random_apgr']:.3f}; APGR - random "
                      f"{_ci(w['apgr_minus_random_ci'], '{:+.3f}')}."]
        L += ["", "Per task (the shipped router scored on that task's rows; " + (
            "llmrouter's 14 tasks)" if name == "llmrouter" else
            f"RouterArena benchmark families with >= {MIN_TASK_ROWS} rows)") + ":", "", FIG_HEAD]
        for task, f in r["tasks"].items():
            L.append(_fig_row(task, f))
        if r["small_tasks"]:
            L += ["", f"Families under {MIN_TASK_ROWS} rows (in the whole-set figures only): " + ", ".join(
                f"{t} {n}" for t, n in sorted(r["small_tasks"].items(), key=lambda kv: -kv[1]))]
        L += ["", "Choices at willingness to pay 0 / 0.5 / 1 (share of prompts), strongest model by the data, "
                  "dominated picks (share of the prompts at that setting whose chosen model is dominated on "
                  "that set's or task's mean realised cost and quality; 'grid' = over all 101 settings):", "",
              "| rows | wtp 0 | wtp 0.5 | wtp 1 | strongest by data (mean q) | wtp 1 picks it | dominated models "
              "| dominated picks wtp 0 / 0.5 / 1 / grid | of them strictly (dearer and worse) |",
              "|---|---|---|---|---|---|---|---|---|"]
        for key, d in r["decisions"].items():
            dom = "; ".join(f"{m} ({why})" for m, why in d["dominated"].items()) or "none"
            s = d["strongest_by_data"]
            L.append(f"| {key} | {_picks(d['at'], '0.0')} | {_picks(d['at'], '0.5')} | {_picks(d['at'], '1.0')} "
                     f"| {s} ({d['mean_quality'][s]:.3f}) | {100 * d['wtp1_picks_strongest_share']:.0f}% | {dom} "
                     f"| {' / '.join(_pct(d['at'][w]['dominated_share']) for w in ('0.0', '0.5', '1.0'))}"
                     f" / {_pct(d['dominated_share_over_grid'])} "
                     f"| {' / '.join(_pct(d['at'][w]['strictly_dominated_share']) for w in ('0.0', '0.5', '1.0'))}"
                     f" / {_pct(d['strictly_dominated_share_over_grid'])} |")
        L += ["", "Per-prompt signal: Pearson r between the shipped router's prediction and the data, over the "
                  "prompts, with a 95% bootstrap interval: (a) mean quality over the set's models (does it "
                  "know which prompts are hard?), (b) the quality difference between its predicted strongest "
                  "model and its predicted cheapest (else weakest) one: the trade it makes between wtp 0 "
                  "and 1. Which model is the majority pick "
                  "along the willingness-to-pay grid:", "",
              "| rows | r mean quality [95%] | r gap [95%] (models) | majority pick by wtp |", "|---|---|---|---|"]
        for key, d in r["decisions"].items():
            sg = d["signal"]
            L.append(f"| {key} | {_r(sg['mean_quality'])} | {_r(sg['gap'])} ({' - '.join(sg['gap_models'])}) | "
                     + "; ".join(f"{m} {a:.2f}-{b:.2f}" for m, a, b in d["majority_pick_ranges"]) + " |")
        rc = r["runtime_check"]
        L += ["", f"Runtime check: `BalancedStrategy.rank` (what `model: auto` serves) with these prices on "
                  f"{rc['prompts']} sampled prompts chose the same first model as the evaluation at wtp "
              + ", ".join(f"{w}: {a}/{rc['prompts']}" for w, a in rc["agree"].items()) + ".", ""]
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llmrouter", type=Path, required=True, help="LLMRouter snapshot (bare git dir)")
    ap.add_argument("--routerarena", type=Path, required=True, help="RouterArena snapshot (bare git dir)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/exteval"))
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--reprepare", action="store_true")
    ap.add_argument("--md", type=Path, default=ROOT / "bench" / "results" / "auto-external.md")
    ap.add_argument("--json", type=Path, default=None, help="all figures (default WORK/auto-external.json)")
    args = ap.parse_args(argv)
    for k in OPERATOR_ENV:
        os.environ.pop(k, None)
    results = {}
    for name in SETS:
        data = prepare(name, getattr(args, name), args.work, args.reprepare)
        results[name] = run_set(name, data, args.work, args.bootstrap)
    (args.json or args.work / "auto-external.json").write_text(json.dumps(results, indent=2))
    keep = ""
    if args.md.is_file() and MARKER in args.md.read_text():
        keep = args.md.read_text().split(MARKER)[0]      # the hand-written findings above the marker
    args.md.write_text(keep + MARKER + "\n\n" + report(results, args))
    print(f"wrote {args.md} and {args.json or args.work / 'auto-external.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

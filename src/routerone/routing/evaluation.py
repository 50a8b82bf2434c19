"""Offline evaluation of routing strategies: `run_eval(train_csv, test_csv, prices_json, out_dir)`.

CSV format (one row per prompt; header required):
  * `prompt` (required): the prompt text;
  * one quality column per model, named by the model: True/False (-> 1/0) or a number (judge
    scores as given); an empty cell or -1 (the arena judge's "unparsable") means missing;
  * optional `<model>|output_tokens`: that model's answer length in tokens on that prompt (cost);
  * optional `prompt_tokens...` (first column whose name starts so): prompt length in tokens;
  * optional `fold` (integer >= 0): cross-fitting folds when the same CSV is passed as train and test.
  * optional `overlaps`: the evaluation sets (mmlu;gsm8k;mtbench;arena) the prompt overlaps, as
    written for external data (learned/overlap.py); rows overlapping the test CSV's prompts are
    dropped from `--extra-train` CSVs, and leave-one-dataset-out drops them when that set is
    held out;
  Ignored, and listed under `ignored_columns` in eval.json: `question_id`, `id`, `category`,
  `cluster`, `subject`, `overlaps`, `task` (an external source's task name), any other name
  containing `|` (e.g. `<model>|total_cost`), names ending in `_id` or `_response`, and any column
  with a non-numeric value. (`overlaps` is ignored by name: it is empty, hence "numeric", when no
  row overlaps.)
Token counts must be finite and >= 0, and scores finite (`nan` reads as missing); anything else,
like a prices file that is not {model: {input_token_price_per_million, output_token_price_per_million}}
with finite prices >= 0, is a ValueError naming the file, the column and the data row.
Missing quality (empty cell or -1, the arena judge's "unparsable") is handled so:
  * training: a missing score only drops that (prompt, model) pair from that model's fit;
  * testing: prompts missing a score of any evaluated model are dropped (counted in the JSON).
Cost of a prompt on a model, in micro-dollars: prompt tokens x input price + output tokens x
output price (USD per 1M tokens x tokens = micro-USD). Prompt tokens come from the
`prompt_tokens...` column, else len(prompt) / 4; output tokens from `<model>|output_tokens`,
else that model's mean in the file, else DEFAULT_OUTPUT_TOKENS. Models without a price in the
prices JSON are left out of the cost metrics (listed under `unpriced_models`).

Strategy "auto" (default; eval_auto.py) is what `model: auto` runs, with paired bootstrap 95%
intervals (bootstrap.py) and the zero router (the hull of the single models) and a random router
beside it. Strategy "learned" is the older offline-only per-model ridge (learned/strategy.py):
for two models the gain threshold sweep, for more the per-model quality ridge with a cost-penalty
sweep, with baselines random, oracle, always-weak/strong and the zero router.

Outputs in out_dir: `eval.json` (all figures) and `cost_quality.png` (plus `routellm_curve.png`
for two models). See metrics.py for the definitions of APGR, CPT and AIQ.
"""
from __future__ import annotations

import csv
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..nested_parse import NestedTooDeep, parse_json
from . import metrics as M
from .learned import strategy as S

DEFAULT_OUTPUT_TOKENS = 256
IGNORED_COLUMNS = {"prompt", "question_id", "id", "category", "cluster", "fold", "subject",
                   "overlaps", "task"}
RANDOM_SEED = 0
STRATEGIES = ("auto", "balanced", "learned")


@dataclass
class Table:
    prompts: list[str]
    models: list[str]
    quality: np.ndarray            # (n, M), NaN = missing
    prompt_tokens: np.ndarray      # (n,)
    output_tokens: np.ndarray      # (n, M), NaN = unknown
    folds: np.ndarray | None = None   # (n,) from a `fold` column, for cross-fitting
    ignored_columns: list[str] = field(default_factory=list)


def subset(table: Table, idx: np.ndarray) -> Table:
    return Table([table.prompts[i] for i in idx], table.models, table.quality[idx],
                 table.prompt_tokens[idx], table.output_tokens[idx],
                 None if table.folds is None else table.folds[idx], table.ignored_columns)


def _number(cell: str) -> float | None:
    c = cell.strip()
    if c.lower() in ("true", "false"):
        return 1.0 if c.lower() == "true" else 0.0
    if c == "":
        return math.nan
    try:
        return float(c)
    except ValueError:
        return None


MAX_COLUMNS = 10_000       # a few per model; far more is not a routing CSV


def load_table(path: str | Path) -> Table:
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:    # -sig: a spreadsheet's BOM
            reader = csv.DictReader(fh)
            if len(reader.fieldnames or ()) > MAX_COLUMNS:    # 10^6 columns ran for minutes
                raise ValueError(f"{path}: {len(reader.fieldnames)} columns, more than {MAX_COLUMNS}")
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc})") from None
    return table_from_rows(rows, str(path))


def _checked(values: np.ndarray, cells: list[str], where: str, column: str, *, missing_ok: bool) -> np.ndarray:
    """`values` (one column) unless one is infinite or negative (or missing when that is not
    allowed): then a ValueError naming the file, the column and the data row (1 = first row)."""
    bad = np.isinf(values) | (values < 0) | (np.zeros_like(values, bool) if missing_ok else np.isnan(values))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where}: column {column!r}, data row {i + 1}: {cells[i][:40]!r} is not "
                         f"{'a count' if column != 'fold' else 'a fold number'} (a finite number >= 0)")
    return values


def model_columns(columns: list[str], rows: list[dict]) -> tuple[list[str], dict[str, str], list[str]]:
    """(model columns, {model: its output-tokens column}, ignored columns) by the CSV rules in the
    module docstring."""
    prompt_tok_col = next((c for c in columns if c.startswith("prompt_tokens")), None)
    models, out_cols, ignored = [], {}, []
    for c in columns:
        if c.endswith("|output_tokens"):
            out_cols[c[: -len("|output_tokens")]] = c
        elif c == "prompt" or c == prompt_tok_col:
            continue
        elif (c in IGNORED_COLUMNS or "|" in c or c.endswith("_id") or c.endswith("_response")
              or not all(_number(str(r.get(c) if r.get(c) is not None else "")) is not None for r in rows)):
            ignored.append(c)
        else:
            models.append(c)
    return models, {m: c for m, c in out_cols.items() if m in models}, ignored


def table_from_rows(rows: list[dict], where: str = "data") -> Table:
    """A Table from CSV-like rows (dicts of strings or numbers); see the module docstring."""
    if not rows or "prompt" not in rows[0]:
        raise ValueError(f"{where}: needs a header with a `prompt` column and at least one row")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    prompt_tok_col = next((c for c in columns if c.startswith("prompt_tokens")), None)
    models, out_cols, ignored = model_columns(columns, rows)
    if not models:
        raise ValueError(f"{where}: no numeric model columns")

    def cell(r: dict, c: str) -> str:
        v = r.get(c)
        return "" if v is None else str(v)
    quality = np.array([[_number(cell(r, m)) for m in models] for r in rows], dtype=np.float64)
    quality[quality == -1.0] = np.nan
    if np.isinf(quality).any():       # "inf" parses as a number; NaN ("nan", "") is a missing score
        i, j = (int(v) for v in np.argwhere(np.isinf(quality))[0])
        raise ValueError(f"{where}: column {models[j]!r}, data row {i + 1}: a score must be a finite "
                         "number (an empty cell or -1 means missing)")
    prompts = [cell(r, "prompt") for r in rows]
    if prompt_tok_col:
        cells = [cell(r, prompt_tok_col) for r in rows]
        ptok = _checked(np.array([_number(c) for c in cells], dtype=np.float64), cells, where, prompt_tok_col,
                        missing_ok=True)
    else:
        ptok = np.full(len(rows), np.nan)
    est = np.array([len(p) / 4.0 for p in prompts])
    ptok = np.where(np.isnan(ptok), est, ptok)
    otok = np.full((len(rows), len(models)), np.nan)
    for j, m in enumerate(models):
        if m in out_cols:
            cells = [cell(r, out_cols[m]) for r in rows]
            col = _checked(np.array([_number(c) for c in cells], dtype=np.float64), cells, where, out_cols[m],
                           missing_ok=True)
            col[col == 0] = np.nan          # 0 tokens: unknown, as before (the model's mean is used)
            otok[:, j] = col
    folds = None
    if "fold" in columns:
        cells = [cell(r, "fold") or "0" for r in rows]
        fold_f = _checked(np.array([_number(c) for c in cells], dtype=np.float64), cells, where, "fold",
                          missing_ok=False)
        if (fold_f != np.floor(fold_f)).any():
            i = int(np.argmax(fold_f != np.floor(fold_f)))
            raise ValueError(f"{where}: column 'fold', data row {i + 1}: {cells[i][:40]!r} is not a fold number")
        folds = fold_f.astype(np.int64)
    t = Table(prompts, models, quality, ptok, otok, folds)
    t.ignored_columns = ignored
    return t


def _price_key(name: str) -> str:
    n = name.lower().rsplit("/", 1)[-1]
    n = re.sub(r"^open-", "", n)
    n = re.sub(r"-(instruct|v0\.\d)", "", n)
    return n


def load_prices(path: str | Path, models: list[str]) -> dict[str, tuple[float, float]]:
    """{model: (input, output) USD per 1M tokens} for the models that have a price."""
    try:
        raw = parse_json(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, NestedTooDeep) as exc:
        raise ValueError(f"{path}: not a JSON prices file ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object {{model: {{input_token_price_per_million: ..., "
                         "output_token_price_per_million: ...}}")
    by_key = {}
    for name, p in raw.items():
        try:
            given = (p["input_token_price_per_million"], p["output_token_price_per_million"])
            if any(isinstance(x, bool) for x in given):     # float(true) is 1.0: a silently wrong price
                raise TypeError
            price = (float(given[0]), float(given[1]))
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{path}: {name!r} needs input_token_price_per_million and "
                             "output_token_price_per_million as numbers") from None
        if not all(math.isfinite(x) and x >= 0 for x in price):
            raise ValueError(f"{path}: {name!r}: prices must be finite numbers >= 0 (USD per 1M tokens)")
        by_key.setdefault(name, price)
        by_key.setdefault(_price_key(name), price)
    out = {}
    for m in models:
        for key in (m, _price_key(m), re.sub(r"-\d{4}$", "", _price_key(m))):
            if key in by_key:
                out[m] = by_key[key]
                break
    return out


def _fill_output_tokens(table: Table) -> np.ndarray:
    otok = table.output_tokens.copy()
    for j in range(otok.shape[1]):
        col = otok[:, j]
        mean = float(np.nanmean(col)) if np.any(~np.isnan(col)) else DEFAULT_OUTPUT_TOKENS
        otok[:, j] = np.where(np.isnan(col), mean, col)
    return otok


def cost_micros(table: Table, prices: dict[str, tuple[float, float]], models: list[str],
                output_tokens: np.ndarray | None = None) -> np.ndarray:
    """(n, len(models)) cost of each prompt on each model, micro-dollars."""
    otok = _fill_output_tokens(table) if output_tokens is None else output_tokens
    cols = [table.models.index(m) for m in models]
    pin = np.array([prices[m][0] for m in models])
    pout = np.array([prices[m][1] for m in models])
    return table.prompt_tokens[:, None] * pin[None, :] + otok[:, cols] * pout[None, :]


def _strong_index(train: Table, models: list[str]) -> int:
    return int(np.argmax(np.nanmean(train.quality[:, [train.models.index(m) for m in models]], axis=0)))


def _two_model(learned_scores: np.ndarray, strong_i: int, q: np.ndarray, models: list[str]) -> dict:
    strong, weak = models[strong_i], models[1 - strong_i]
    s_q, w_q = q[:, strong_i], q[:, 1 - strong_i]
    scores = {
        "learned": learned_scores,
        "random": np.random.default_rng(RANDOM_SEED).random(len(s_q)),
        "oracle": s_q - w_q,
    }
    w_mean, s_mean = float(np.mean(w_q)), float(np.mean(s_q))
    out = {"strong_model": strong, "weak_model": weak, "weak_quality": w_mean,
           "strong_quality": s_mean, "routers": {}}
    for name, sc in scores.items():
        out["routers"][name] = M.routellm_summary(sc, w_q, s_q)
    out["routers"]["always_weak"] = {"apgr": 0.0, "strong_call_pct": 0.0, "quality": w_mean,
                                     "cpt_50_pct": None, "cpt_80_pct": None,
                                     "note": "never reaches any part of the gap"}
    out["routers"]["always_strong"] = {"apgr": None, "strong_call_pct": 100.0, "quality": s_mean,
                                       "pgr": 1.0, "cpt_50_pct": 100.0, "cpt_80_pct": 100.0,
                                       "note": "a single point at 100% strong calls"}
    return out


def _multi_model(test: Table, q: np.ndarray, models: list[str],
                 prices: dict[str, tuple[float, float]], pred: dict, strong_i: int) -> dict:
    cost = cost_micros(test, prices, models)
    singles = {m: (float(cost[:, j].mean()), float(q[:, j].mean())) for j, m in enumerate(models)}
    zero_hull = M.upper_hull(list(singles.values()))
    rows = np.arange(len(q))
    if "choice" in pred:     # balanced: the runtime decision at each willingness to pay
        learned_pts = [(float(cost[rows, c].mean()), float(q[rows, c].mean())) for c in pred["choice"].T]
    elif "quality" in pred:
        learned_pts = S.sweep_cost_penalty(pred["quality"], pred["cost"], q, cost)
    else:    # two models: the gain model's threshold sweep
        learned_pts = S.sweep_gain_threshold(pred["gain"], strong_i, q, cost)
    oracle_pts = S.sweep_cost_penalty(q, cost, q, cost)
    curves = {"learned": learned_pts, "oracle": oracle_pts}
    hulls = {name: M.upper_hull(pts) for name, pts in curves.items()}
    hulls["zero_router"] = zero_hull
    cost_lo = min(c for c, _ in singles.values())
    cost_hi = max([c for c, _ in singles.values()] + [c for pts in curves.values() for c, _ in pts])
    best_model = max(models, key=lambda m: (singles[m][1], -singles[m][0]))
    best_cost, best_q = singles[best_model]
    out = {"single_models": {m: {"cost_micros_per_prompt": c, "quality": v}
                             for m, (c, v) in singles.items()},
           "best_single_model": best_model, "aiq_cost_range_micros": [cost_lo, cost_hi],
           "routers": {}}
    for name, hull in hulls.items():
        entry = {"aiq": M.aiq(hull, cost_lo, cost_hi), "hull": [[c, v] for c, v in hull]}
        for frac in (0.25, 0.5):
            kept = M.hull_quality(hull, frac * best_cost)
            entry[f"quality_at_{int(frac * 100)}pct_best_cost"] = kept
            entry[f"quality_kept_at_{int(frac * 100)}pct_best_cost"] = kept / best_q if best_q else None
        if name in curves:
            entry["points"] = [[c, v] for c, v in curves[name]]
        out["routers"][name] = entry
    out["learned_beats_zero_router_aiq"] = out["routers"]["learned"]["aiq"] > out["routers"]["zero_router"]["aiq"]
    return out


def _learned(train: Table, test: Table, models: list[str], priced: list[str],
             prices: dict[str, tuple[float, float]], strategy: str = "learned") -> dict:
    """Fit the strategy on `train`, predict on `test`."""
    out = {}
    if len(models) == 2:
        strong_i = _strong_index(train, models)
        gain = S.fit_gain(train, models[strong_i], models[1 - strong_i])
        out["gain"] = gain.predict(test.prompts)
    if len(priced) >= 2 and len(models) > 2:
        qm = S.fit_quality_models(train, priced, prices)
        out["quality"] = qm.predict(test.prompts)
        out["cost"] = qm.predicted_cost_micros(test.prompt_tokens)
    return out


def _cross_fitted(table: Table, models, priced, prices, strategy: str) -> dict:
    """Each row predicted by a strategy trained on the other folds."""
    out: dict = {}
    for k in np.unique(table.folds):
        te = np.flatnonzero(table.folds == k)
        part = _learned(subset(table, np.flatnonzero(table.folds != k)), subset(table, te),
                        models, priced, prices, strategy)
        for key, v in part.items():
            if key not in out:
                out[key] = np.zeros((len(table.prompts),) + v.shape[1:], dtype=v.dtype)
            out[key][te] = v
    return out


def run_eval(train_csv, test_csv, prices_json, out_dir, *, strategy: str = "auto",
             router: str | None = None, decisions_out: str | None = None, extra_train=(),
             n_boot: int | None = None) -> dict:
    """Evaluate a strategy on test_csv; write eval.json and PNG plots.

    strategy "auto" (alias "balanced"): exactly what `model: auto` runs (eval_auto.py), with
    bootstrap intervals and the zero and random routers beside it; `router` = "shipped" or an
    artefact path scores that artefact without training (train_csv may then be None);
    `extra_train` = more CSVs to train on; `decisions_out` = per-prompt decisions CSV.
    strategy "learned": the older offline-only per-model ridge heads with a cost-penalty sweep
    (gain threshold for two models), kept for comparison.

    If train_csv and test_csv are the same file and it has a `fold` column, the evaluation is
    cross-fitted: each prompt is scored by a strategy trained on the other folds.
    """
    if strategy in ("auto", "balanced"):
        return _run_auto(train_csv, test_csv, prices_json, out_dir, router=router,
                         decisions_out=decisions_out, extra_train=extra_train, n_boot=n_boot)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (available: {', '.join(STRATEGIES)})")
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    train, test = load_table(train_csv), load_table(test_csv)
    cross_fit = Path(train_csv).resolve() == Path(test_csv).resolve() and test.folds is not None
    models = [m for m in test.models if m in train.models]
    if len(models) < 2:
        raise ValueError("train and test CSVs must share at least two model columns")
    prices = load_prices(prices_json, models) if prices_json else {}
    priced = [m for m in models if m in prices]
    cols = [test.models.index(m) for m in models]
    scored = cols if len(models) == 2 or len(priced) < 2 else [test.models.index(m) for m in priced]
    complete = np.flatnonzero(~np.isnan(test.quality[:, scored]).any(axis=1))
    n_rows = len(test.prompts)
    if cross_fit:
        pred = _cross_fitted(test, models, priced, prices, strategy)
        pred = {k: v[complete] for k, v in pred.items()}
        test = subset(test, complete)
    else:
        test = subset(test, complete)
        pred = _learned(train, test, models, priced, prices, strategy)
    q = test.quality[:, cols]
    result: dict = {"strategy": strategy, "train_csv": str(train_csv), "test_csv": str(test_csv),
                    "split": "cross-fitted by fold" if cross_fit else "train/test",
                    "n_train": len(train.prompts), "n_test": len(test.prompts),
                    "n_test_dropped_missing_quality": n_rows - len(complete),
                    "models": models, "unpriced_models": [m for m in models if m not in prices]}
    strong_i = _strong_index(train, models)
    if len(models) == 2:
        result["two_model"] = _two_model(pred["gain"], strong_i, q, models)
    if len(priced) >= 2:
        pq = q[:, [models.index(m) for m in priced]]
        result["multi_model"] = _multi_model(test, pq, priced, prices, pred, strong_i)
    from . import evaluation_plot as P
    result["plots"] = P.write_plots(result, out_path)
    (out_path / "eval.json").write_text(json.dumps(result, indent=2, default=_json_default))
    return result


def _run_auto(train_csv, test_csv, prices_json, out_dir, *, router, decisions_out, extra_train,
              n_boot) -> dict:
    from . import bootstrap as B
    from . import eval_auto as A
    from .learned.profiles import ARTEFACT_PATH, ProfileRouter
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    test = load_table(test_csv)
    prices = load_prices(prices_json, test.models) if prices_json else {}
    extra, extra_dropped = extra_tables(extra_train, test.prompts)
    kw = {"n_boot": n_boot or B.N_BOOT, "decisions_out": decisions_out, "extra_train": extra}
    if router:
        # "shipped" is the packaged artefact, not ROUTERONE_ROUTER_MODEL (an operator's, for serving)
        r = ProfileRouter.load(ARTEFACT_PATH if router == "shipped" else router)
        result = A.evaluate_table(test, prices, router=r, **kw)
        result["router"] = router
    elif train_csv and Path(train_csv).resolve() == Path(test_csv).resolve() and test.folds is not None:
        result = A.evaluate_table(test, prices, cross_fit=True, **kw)
    elif train_csv:
        result = A.evaluate_table(test, prices, train=load_table(train_csv), **kw)
    else:
        raise ValueError("give a TRAIN_CSV, or --router shipped|PATH to score an artefact without training")
    result.update({"train_csv": None if router else str(train_csv), "test_csv": str(test_csv),
                   "extra_train": [str(p) for p in extra_train],
                   "extra_train_dropped_overlapping_test": extra_dropped,
                   "ignored_columns": test.ignored_columns})
    from . import evaluation_plot as P
    result["plots"] = P.write_plots(result, out_path)
    (out_path / "eval.json").write_text(json.dumps(result, indent=2, default=_json_default))
    return result


def extra_tables(paths, test_prompts: list[str]) -> tuple[list[Table], dict[str, int]]:
    """The extra training CSVs as tables, without their rows that overlap a test prompt (exact,
    normalised or shared distinctive 8-grams; learned/overlap.py), so that extra data never
    trains on the prompts it is tested on (nor, when cross-fitting, on test-fold prompts).
    Returns (tables, {csv: rows dropped})."""
    if not paths:
        return [], {}
    from .learned.overlap import OverlapIndex
    index = OverlapIndex({"test": list(test_prompts)})
    csv.field_size_limit(sys.maxsize)
    tables, dropped = [], {}
    for p in paths:
        with open(p, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        kept = [r for r in rows if not index.match(r.get("prompt") or "")]
        dropped[str(p)] = len(rows) - len(kept)
        if kept:
            tables.append(table_from_rows(kept, str(p)))
    return tables, dropped


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)

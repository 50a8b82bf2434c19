"""Offline routing evaluation: metrics on hand-checkable data and eval-routing end to end."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from routerone.routing import commands
from routerone.routing import metrics as M
from routerone.routing.evaluation import load_prices, load_table, run_eval

WEAK = np.zeros(10)
STRONG = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=float)


def test_perfect_ranking_curve_apgr_and_cpt_by_hand():
    # strong is right on prompts 0-4, weak never; the router ranks those five first.
    scores = np.arange(10, 0, -1, dtype=float)
    curve = M.routellm_curve(scores, WEAK, STRONG)
    assert curve[0] == (0.0, 0.0) and curve[-1] == (100.0, 0.5)
    assert (50.0, 0.5) in curve and (20.0, 0.2) in curve
    # area: triangle 0.5 * 0.5 * 0.5 + rectangle 0.5 * 0.5 = 0.375; gap 0.5 over x-range 1
    assert M.apgr(curve, 0.0, 0.5) == pytest.approx(0.75)
    assert M.cpt(curve, 0.0, 0.5, 0.5) == pytest.approx(25.0)
    assert M.cpt(curve, 0.0, 0.5, 0.8) == pytest.approx(40.0)


def test_worst_ranking_and_oracle_above_one():
    worst = M.routellm_curve(np.arange(1, 11, dtype=float), WEAK, STRONG)
    assert M.apgr(worst, 0.0, 0.5) == pytest.approx(0.25)
    # weak right where strong is wrong: the oracle beats both models in the middle, APGR > 1
    weak = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0, 0], dtype=float)
    oracle = M.routellm_curve(STRONG - weak + np.linspace(0, 1e-3, 10), weak, STRONG)
    assert M.apgr(oracle, weak.mean(), STRONG.mean()) > 1.0


def test_random_router_is_about_half():
    rng = np.random.default_rng(1)
    weak = (rng.random(20000) < 0.6).astype(float)
    strong = np.maximum(weak, (rng.random(20000) < 0.5).astype(float))
    summary = M.routellm_summary(rng.random(20000), weak, strong)
    assert summary["apgr"] == pytest.approx(0.5, abs=0.03)
    assert summary["cpt_50_pct"] == pytest.approx(50.0, abs=4.0)


def test_upper_hull_and_aiq_by_hand():
    pts = [(1.0, 1.0), (2.0, 3.0), (3.0, 3.5), (4.0, 3.2), (2.5, 1.0), (1.5, 1.5)]
    assert M.upper_hull(pts) == [(1.0, 1.0), (2.0, 3.0), (3.0, 3.5)]
    assert M.aiq([(0.0, 0.0), (1.0, 1.0)], 0.0, 2.0) == pytest.approx(0.75)
    assert M.aiq([(1.0, 1.0), (2.0, 1.0)], 0.0, 2.0) == pytest.approx(0.5)   # 0 below its start
    assert M.hull_quality([(1.0, 1.0), (2.0, 3.0)], 0.5) == 0.0
    assert M.hull_quality([(1.0, 1.0), (2.0, 3.0)], 1.5) == pytest.approx(2.0)
    assert M.hull_quality([(1.0, 1.0), (2.0, 3.0)], 9.0) == pytest.approx(3.0)


def _write(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _toy_rows(n: int, seed: int, three: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        hard = i % 3 == 0
        topic = rng.choice(["integral", "matrix", "theorem"]) if hard else rng.choice(["hello", "weather", "recipe"])
        row = {"prompt": f"{'prove the' if hard else 'tell me about'} {topic} {i}",
               "weak": "False" if hard else "True", "strong": "True",
               "weak|output_tokens": 20, "strong|output_tokens": 40}
        if three:
            row = {"prompt": row["prompt"], "small": 2 if hard else 7, "medium": 5 if hard else 8,
                   "large": 9, "small|output_tokens": 100, "large|output_tokens": 300}
        rows.append(row)
    return rows


PRICES = {"weak": {"input_token_price_per_million": 0.2, "output_token_price_per_million": 0.6},
          "strong": {"input_token_price_per_million": 10, "output_token_price_per_million": 30},
          "small": {"input_token_price_per_million": 0.1, "output_token_price_per_million": 0.1},
          "medium": {"input_token_price_per_million": 1, "output_token_price_per_million": 2},
          "large": {"input_token_price_per_million": 10, "output_token_price_per_million": 30}}


def test_run_eval_two_models_end_to_end(tmp_path):
    train = _write(tmp_path / "train.csv", _toy_rows(60, 0))
    test = _write(tmp_path / "test.csv", _toy_rows(30, 1))
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    result = run_eval(train, test, prices, tmp_path / "out", n_boot=200)
    two = result["two_model"]
    assert two["strong_model"] == "strong" and two["weak_model"] == "weak"
    auto, rnd = two["routers"]["auto"], two["routers"]["random"]
    assert auto["apgr"] > 0.8 > rnd["apgr"]
    lo, hi = auto["apgr_ci"]
    assert lo <= auto["apgr"] <= hi and lo > 0.5           # an interval, and it excludes a coin
    assert auto["apgr_minus_random_ci"][0] > 0
    assert "multi_model" in result
    saved = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert saved["two_model"]["routers"]["auto"]["apgr"] == pytest.approx(auto["apgr"])
    for name in ("routellm_curve.png", "cost_quality.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    legacy = run_eval(train, test, prices, tmp_path / "out2", strategy="learned")
    assert legacy["two_model"]["routers"]["learned"]["apgr"] > 0.8


def test_run_eval_many_models_missing_scores_and_cross_fit(tmp_path):
    rows = _toy_rows(50, 2, three=True)
    rows[4]["medium"] = -1
    rows[5]["large"] = ""
    for i, r in enumerate(rows):
        r["fold"] = i % 5
        r["large|total_cost"] = 0.5        # not a model: ignored explicitly
    data = _write(tmp_path / "all.csv", rows)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    decisions = tmp_path / "decisions.csv"
    result = run_eval(data, data, prices, tmp_path / "out", n_boot=200, decisions_out=str(decisions))
    assert result["split"] == "cross-fitted by fold"
    assert result["models"] == ["small", "medium", "large"]
    assert "large|total_cost" in result["ignored_columns"]
    assert result["n_test_dropped_missing_quality"] == 2 and result["n_test"] == 48
    multi = result["multi_model"]
    assert multi["best_single_model"] == "large"
    auto, zero = multi["routers"]["auto"], multi["routers"]["zero_router"]
    assert auto["aiq"] > zero["aiq"] and auto["aiq_minus_zero_ci"][0] > 0
    assert "random_same_mix" in multi["routers"] and len(auto["points"]) == 101
    assert multi["picks_by_wtp"]["0.00"] == {"small": 48} and multi["picks_by_wtp"]["1.00"] == {"large": 48}
    assert (tmp_path / "out" / "cost_quality.png").exists()
    with open(decisions, newline="") as fh:
        rows_out = list(csv.DictReader(fh))
    assert len(rows_out) == 48 and rows_out[0]["choice@wtp=1.00"] == "large"
    assert "predicted_quality|medium" in rows_out[0]


def test_run_eval_scores_an_artefact_without_training(tmp_path):
    from routerone.routing.learned.train import train_artefact
    rows = _toy_rows(60, 7, three=True)
    data = _write(tmp_path / "mine.csv", rows)
    info = train_artefact(data, tmp_path / "mine.npz")
    assert info["models"] == ["small", "medium", "large"] and (tmp_path / "mine.npz").is_file()
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    test = _write(tmp_path / "test.csv", _toy_rows(30, 8, three=True))
    result = run_eval(None, test, prices, tmp_path / "out", router=str(tmp_path / "mine.npz"), n_boot=100)
    assert result["split"] == "shipped artefact (no training)" and result["train_csv"] is None
    assert result["multi_model"]["routers"]["auto"]["aiq"] > result["multi_model"]["routers"]["zero_router"]["aiq"]
    with pytest.raises(ValueError):
        train_artefact(data, None)      # never the shipped artefact by default


def test_router_shipped_is_the_packaged_artefact_whatever_the_environment(tmp_path, monkeypatch):
    """`--router shipped` scores the artefact in the package, even when ROUTERONE_ROUTER_MODEL (the
    serving setting) names an operator's artefact: it used to score that one, labelled "shipped"."""
    from routerone.routing.learned.profiles import ARTEFACT_PATH
    from routerone.routing.learned.train import train_artefact
    mine = tmp_path / "mine.npz"
    train_artefact(_write(tmp_path / "mine.csv", _toy_rows(60, 7, three=True)), mine)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    test = _write(tmp_path / "test.csv", _toy_rows(30, 8, three=True))

    def points(router: str, out: str) -> list:
        return run_eval(None, test, prices, tmp_path / out, router=router, n_boot=20)["multi_model"]["routers"]["auto"]["points"]
    packaged, operators = points(str(ARTEFACT_PATH), "packaged"), points(str(mine), "mine")
    assert packaged != operators                  # the two artefacts route these prompts differently
    monkeypatch.setenv("ROUTERONE_ROUTER_MODEL", str(mine))
    assert points("shipped", "shipped") == packaged


def test_load_table_and_prices(tmp_path):
    path = _write(tmp_path / "t.csv", [{"question_id": "abc", "prompt": "x", "m1": "True", "m2": "7.5",
                                        "m2|output_tokens": "12", "notes": "free text"}])
    table = load_table(path)
    assert table.models == ["m1", "m2"]
    assert table.quality.tolist() == [[1.0, 7.5]]
    assert table.output_tokens[0, 1] == 12
    prices = tmp_path / "p.json"
    prices.write_text(json.dumps({"open-mixtral-8x7b": {"input_token_price_per_million": 0.7,
                                                        "output_token_price_per_million": 0.7},
                                  "gpt-4": {"input_token_price_per_million": 30,
                                            "output_token_price_per_million": 60}}))
    got = load_prices(prices, ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-0314", "claude-1"])
    assert got == {"mistralai/Mixtral-8x7B-Instruct-v0.1": (0.7, 0.7), "gpt-4-0314": (30.0, 60.0)}


def test_commands_register_and_run(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="cmd"))
    train = _write(tmp_path / "train.csv", _toy_rows(30, 3))
    test = _write(tmp_path / "test.csv", _toy_rows(15, 4))
    args = parser.parse_args(["eval-routing", str(train), str(test), "--out", str(tmp_path / "o"),
                              "--bootstrap", "50"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "APGR" in out and "95% interval" in out
    assert (tmp_path / "o" / "eval.json").exists()
    args = parser.parse_args(["eval-routing", str(test)])
    assert args.func(args) == 2                       # one CSV needs --router
    with pytest.raises(SystemExit) as exit_:       # a usage error naming --data (errors go to stderr)
        parser.parse_args(["train-router", "--data", str(tmp_path / "missing"), "--out", "x.npz"])
    assert exit_.value.code == 2 and "--data" in capsys.readouterr().err
    args = parser.parse_args(["train-router", "--data", str(train)])
    assert args.func(args) == 2 and "--out" in capsys.readouterr().err
    args = parser.parse_args(["train-router", "--data", str(train), "--out", str(tmp_path / "r.npz")])
    assert args.func(args) == 0 and (tmp_path / "r.npz").is_file()
    assert "ROUTERONE_ROUTER_MODEL=" in capsys.readouterr().out


def test_lodo_held_out_sets(tmp_path, capsys, monkeypatch):
    """`eval-routing --lodo --held-out SET` (repeatable) runs only those held-out sets; an unknown
    set or --held-out without --lodo is a usage error (exit 2), not a traceback."""
    from routerone.routing import eval_auto
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="cmd"))
    seen = {}

    def fake_run_lodo(data, out, *, n_boot, datasets, extra_data):
        seen["datasets"] = datasets
        return {"results": {}}
    monkeypatch.setattr(eval_auto, "run_lodo", fake_run_lodo)
    args = parser.parse_args(["eval-routing", "--lodo", "--held-out", "arena", "--held-out", "mtbench",
                              "--out", str(tmp_path / "o")])
    assert args.func(args) == 0 and seen["datasets"] == ["arena", "mtbench"]
    monkeypatch.undo()
    args = parser.parse_args(["eval-routing", "--lodo", "--held-out", "alpaca", "--out", str(tmp_path / "o")])
    assert args.func(args) == 2 and "'alpaca': not one of mmlu, gsm8k, arena, mtbench" in capsys.readouterr().err
    args = parser.parse_args(["eval-routing", "--held-out", "arena"])
    assert args.func(args) == 2 and "--held-out goes with --lodo" in capsys.readouterr().err


SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "routing"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/routing not present")
def test_prepare_gsm8k_from_shared_data(tmp_path):
    from routerone.routing.learned.train import prepare
    info = prepare("gsm8k", tmp_path, SHARED)
    assert info["rows"] == 1307 and info["test_rows"] == 262    # 1319 minus 12 contaminated
    table = load_table(tmp_path / "test.csv")
    assert len(table.prompts) == 262 and set(table.folds.tolist()) == {0}


def test_plot_falls_back_to_plain_png_without_matplotlib(tmp_path, monkeypatch):
    from routerone.routing import evaluation_plot as P

    def no_matplotlib(*args, **kwargs):
        raise ImportError("matplotlib")
    monkeypatch.setattr(P, "_matplotlib", no_matplotlib)
    result = {"two_model": {"weak_quality": 0.5, "strong_quality": 0.8,
                            "routers": {"learned": {"curve": [[0, 0.5], [50, 0.75], [100, 0.8]]}}}}
    written = P.write_plots(result, tmp_path)
    assert written == [str(tmp_path / "routellm_curve.png")]
    assert (tmp_path / "routellm_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_strategy(tmp_path):
    train = _write(tmp_path / "train.csv", _toy_rows(45, 5, three=True))
    with pytest.raises(ValueError):
        run_eval(train, train, None, tmp_path / "out2", strategy="nope")


def test_a_prices_file_nested_too_deep_is_a_value_error_not_a_traceback(tmp_path):
    """`eval-routing --prices` with 100,000 nested arrays: json raised RecursionError (a traceback)."""
    prices = tmp_path / "p.json"
    prices.write_text('{"gpt-4": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match="not a JSON prices file.*nested too deep"):
        load_prices(prices, ["gpt-4"])

"""ZeroEval adapter (learned/zeroeval.py): the repository's judging rules re-implemented, on a tiny
hand-written fixture snapshot in ZeroEval's `result_dirs/<task>/<model>.json` format."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from routerone.routing import evaluation as E
from routerone.routing.learned import external as X
from routerone.routing.learned import overlap as O
from routerone.routing.learned import zeroeval as Z

FIX = Path(__file__).parent / "fixtures" / "external" / "zeroeval"
GSM_DUCKS = ("Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
             "muffins for her friends every day with four. She sells the remainder at the farmers' market "
             "daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?")


def _index() -> O.OverlapIndex:
    return O.OverlapIndex({"mmlu": ["What is the capital of France?\nA. Paris\nB. Rome\nAnswer:"],
                           "gsm8k": [GSM_DUCKS], "mtbench": [], "arena": []})


@pytest.fixture(autouse=True)
def _few_scores_ok(monkeypatch):
    monkeypatch.setattr(X, "MIN_SCORES", 1)


def test_answer_extraction_follows_the_repository_order():
    # the first complete JSON object (newlines inside removed before parsing)
    assert Z.extract_answer("m", 'text {"reasoning": "r",\n "answer": "18"} {"answer": "19"}') == "18"
    # invalid JSON: quoted, then unquoted value, then unquoted key
    assert Z.extract_answer("m", '{"reasoning": "r", "answer": "7" oops') == "7"
    assert Z.extract_answer("m", '{"reasoning": "r", "answer": 18 dollars}') == "18"
    assert Z.extract_answer("m", "reasoning: r\nanswer: 42, done") == "42"
    # a JSON null answer is an answer (None); no answer at all is NO_ANSWER
    assert Z.extract_answer("m", '{"answer": null}') is None
    assert Z.extract_answer("m", "I think it is 800.") is Z.NO_ANSWER
    # \boxed{} only for Llama-3.1 files, and only when "boxed" is in the last 30 characters
    assert Z.extract_answer("Meta-Llama-3.1-8B-Instruct", "So it is $\\boxed{18}$") == "18"
    assert Z.extract_answer("Qwen2-7B-Instruct", "So it is $\\boxed{18}$") is Z.NO_ANSWER
    assert Z.extract_answer("Meta-Llama-3.1-8B-Instruct", "$\\boxed{18}$" + " and more words" * 3) is Z.NO_ANSWER


def test_math_judge_compares_first_numbers_after_sanitising():
    assert Z.judge_math("$18", "# 18")
    assert Z.judge_math(18, "#### 18")
    assert Z.judge_math("1/2", "0.5") and Z.judge_math("0.50", "0.5")
    assert Z.judge_math("1,024 marbles", "1024")
    assert not Z.judge_math("1,200 - 300 = 900", "# 900")     # the first number counts
    assert not Z.judge_math(None, "0") and not Z.judge_math(Z.NO_ANSWER, "18")
    assert not Z.judge_math("", "18")
    # arithmetic only: a model's answer is never executed (the repository eval()s it)
    assert Z.sanitize_math("len('abc')*300/1") == "len('abc')*300/1"
    assert Z.sanitize_math("__import__('os').getcwd()/1") == "__import__('os').getcwd()/1"
    assert Z.sanitize_math("3/0") == "3/0" and Z.sanitize_math("(1+2)/4") == "0.75"


def test_crux_judge_head_rules_and_the_rules_before_the_fixes():
    assert Z.judge_crux("'abc'", "'abc'") and Z.judge_crux('"abc"', "'abc'")
    assert Z.judge_crux("''", "''")                                  # both empty: correct at HEAD
    assert not Z.judge_crux("''", "''", before_fixes=True)           # ... not before f37c3f9
    assert Z.judge_crux("'x\ny'", "'x\\ny'")                         # newline written \n (e200bab)
    assert not Z.judge_crux("'x\ny'", "'x\\ny'", before_fixes=True)
    assert Z.judge_crux(None, "None") and not Z.judge_crux(Z.NO_ANSWER, "None")
    assert not Z.judge_crux("' '", "''")


def test_prepare_zeroeval_fixture(tmp_path):
    out = tmp_path / "ze"
    s = X.prepare_external("zeroeval", FIX, out, _index())
    assert s["rows"] == 6 and s["tasks"] == {"gsm": 2, "math-l5": 2, "crux": 2}
    # deepseek-chat (gsm, math-l5) and deepseek-v2-chat-0628 (crux) are one model, as the summaries name it
    assert sorted(s["models"]) == ["Meta-Llama-3.1-8B-Instruct", "deepseek-v2-chat-0628", "gpt-4o-mini-2024-07-18"]
    assert s["overlap_rows"] == {"mmlu": 0, "gsm8k": 1, "mtbench": 0, "arena": 0}
    with open(out / "all.csv", newline="", encoding="utf-8") as fh:
        rows = {(r["task"], " ".join(r["prompt"].split()[:3])): r for r in csv.DictReader(fh)}
    ducks = rows[("gsm", "Janet’s ducks lay")]
    assert ducks["overlaps"] == "gsm8k"
    assert {m: ducks[m] for m in s["models"]} == {"gpt-4o-mini-2024-07-18": "1.0", "deepseek-v2-chat-0628": "1.0",
                                                 "Meta-Llama-3.1-8B-Instruct": "1.0"}
    tank = rows[("gsm", "A tank holds")]
    assert tank["overlaps"] == "" and tank["deepseek-v2-chat-0628"] == "0.0"      # no answer = wrong
    assert tank["Meta-Llama-3.1-8B-Instruct"] == "0.0"
    assert rows[("math-l5", "What is $\\frac{3}{6}$")]["gpt-4o-mini-2024-07-18"] == "1.0"
    blank = rows[("crux", "def f(s): return")]
    assert blank["gpt-4o-mini-2024-07-18"] == "1.0" and blank["deepseek-v2-chat-0628"] == "0.0"
    assert blank["Meta-Llama-3.1-8B-Instruct"] == ""                              # no crux file: missing
    assert int(blank["gpt-4o-mini-2024-07-18|output_tokens"]) > 0
    table = E.load_table(out / "all.csv")
    assert sorted(table.models) == sorted(s["models"])
    # genai-prices list prices, only for the models it knows (deepseek-v2-chat-0628: not priced)
    prices = json.loads((out / "prices.json").read_text())
    assert set(prices) == {"gpt-4o-mini-2024-07-18", "Meta-Llama-3.1-8B-Instruct"}
    assert (prices["gpt-4o-mini-2024-07-18"]["input_token_price_per_million"],
            prices["gpt-4o-mini-2024-07-18"]["output_token_price_per_million"]) == (0.15, 0.6)
    assert prices["gpt-4o-mini-2024-07-18"]["source"].startswith("genai-prices ")
    prov = (out / "PROVENANCE.md").read_text()
    assert "yuchenlin/ZeroEval" in prov and "Apache-2.0" in prov and "mmlu-redux left out" in prov
    assert "alpaca_eval" not in prov.split("Not used in any form")[0]


def test_alpaca_eval_folder_is_never_read(tmp_path, monkeypatch):
    read: list[str] = []
    real = X.Source.read
    monkeypatch.setattr(X.Source, "read", lambda self, rel, commit=None: read.append(rel) or real(self, rel, commit))
    X.prepare_external("zeroeval", FIX, tmp_path, _index())
    assert read and not [r for r in read if "alpaca" in r]


def test_accuracies_reproduce_the_summaries():
    head = Z.summary_check(X.Source(FIX))
    assert head["gsm"] == {"gpt-4o-mini-2024-07-18": (50.0, 50.0), "deepseek-v2-chat-0628": (50.0, 50.0),
                           "Meta-Llama-3.1-8B-Instruct": (50.0, 50.0)}
    assert head["math-l5"] == {"gpt-4o-mini-2024-07-18": (50.0, 50.0), "deepseek-v2-chat-0628": (100.0, 100.0)}
    # the fixture's crux summary, like the real one, predates crux_eval.py's two fixes
    assert head["crux"]["gpt-4o-mini-2024-07-18"] == (100.0, 0.0)
    assert Z.summary_check(X.Source(FIX), before_fixes=True)["crux"] == {
        "gpt-4o-mini-2024-07-18": (0.0, 0.0), "deepseek-v2-chat-0628": (50.0, 50.0)}

"""External routing data: adapters on tiny fixtures in each source's real format, the overlap
detection against the evaluation sets, and the `overlaps` column's handling downstream."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from routerone.routing import evaluation as E
from routerone.routing.learned import external as X
from routerone.routing.learned import overlap as O
from routerone.routing.learned import train as T

FIX = Path(__file__).parent / "fixtures" / "external"
GSM_DUCKS = ("Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
             "muffins for her friends every day with four. She sells the remainder at the farmers' market "
             "daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?")
GSM_PENS = ("Janet had 22 green pens and 10 yellow pens. Then she bought 6 bags of blue pens and 2 bags of "
            "red pens. There were 9 pens in each bag of blue and 6 pens in each bag of red. How many pens "
            "does Janet have now?")
MMLU_SUBWAY = "WHERE do movies  often\ndepict a subway station?"


def _index() -> O.OverlapIndex:
    return O.OverlapIndex({"mmlu": [MMLU_SUBWAY, "What is the capital of France?\nA. Paris\nB. Rome\nAnswer:"],
                           "gsm8k": [GSM_DUCKS, GSM_PENS], "mtbench": [], "arena": ["Write a haiku about rust."]},
                          ids={"arena": {"66c00ddde3dc4128a14d6afd5e899342"}})


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(autouse=True)
def _few_scores_ok(monkeypatch):
    monkeypatch.setattr(X, "MIN_SCORES", 1)


def test_overlap_kinds_exact_normalised_ngram_id():
    idx = _index()
    assert idx.match(GSM_DUCKS) == {"gsm8k": "exact"}
    assert idx.match("where do movies often depict a subway STATION?") == {"mmlu": "normalised"}
    # the same GSM8K item under another template: shared distinctive 8-grams
    assert idx.match("Solve step by step.\nQuestion: " + GSM_PENS + "\nPut the answer in \\boxed{}.") == {"gsm8k": "ngram"}
    assert idx.match("anything", qid="66c00ddde3dc4128a14d6afd5e899342") == {"arena": "id"}
    assert idx.match("Where do trains often stop in a city at night?") == {}
    assert idx.match("") == {}


def test_overlap_ignores_shared_template_ngrams():
    template = "Please read the following multiple-choice question and provide the most likely correct answer. "
    evals = [template + f"Question: item number {w} about topic {w}?" for w in ("one", "two", "three", "four", "five")]
    idx = O.OverlapIndex({"mmlu": evals})
    # the template alone (in 5 evaluation prompts, more than MAX_OWNERS) is no overlap ...
    assert idx.match(template + "Question: which planet is largest in our solar system today?") == {}
    # ... but the template with one of the evaluation questions is
    assert idx.match(template + "Question: item number three about topic three? Answer briefly.") == {"mmlu": "ngram"}


def test_overlap_needs_a_fraction_of_long_prompts():
    stock = "which of the following is a correct description of the motion"   # 3 word 8-grams
    long_eval = stock + " " + " ".join(f"e{i}" for i in range(60))
    idx = O.OverlapIndex({"mmlu": [long_eval]})
    # a long external prompt sharing only the stock phrase is another question ...
    assert idx.match(stock + " " + " ".join(f"x{i}" for i in range(60))) == {}
    # ... a short one that is mostly that phrase, or a long one sharing much of the text, is not
    assert idx.match(stock + "?") == {"mmlu": "ngram"}
    assert idx.match(long_eval[:200] + " and more words here") == {"mmlu": "ngram"}


def test_prepare_llmrouter_fixture(tmp_path):
    out = tmp_path / "llmrouter"
    s = X.prepare_llmrouter(FIX / "llmrouter", out, _index())
    assert s["rows"] == 4                 # duplicate question and blank prompt dropped
    assert s["models"] == ["qwen2.5-7b-instruct", "llama3-chatqa-1.5-8b", "gemma-2-9b-it"]
    assert s["overlap_rows"] == {"mmlu": 1, "gsm8k": 1, "mtbench": 0, "arena": 0}
    rows = _rows(out / "all.csv")
    by = {" ".join(r["prompt"].split()[:4]): r for r in rows}
    assert by["Where do movies often"]["overlaps"] == "mmlu"
    assert by["Where do movies often"]["task"] == "commonsense_qa"
    assert float(by["Where do movies often"]["llama3-chatqa-1.5-8b"]) == 0.0   # first occurrence kept
    assert by["Janet had 22 green"]["overlaps"] == "gsm8k"
    assert float(by["Janet had 22 green"]["gemma-2-9b-it"]) == 0.5
    assert by["Write a python function"]["task"] == "mbpp" and by["Write a python function"]["overlaps"] == ""
    assert float(by["Q: There are 2"]["qwen2.5-7b-instruct"]) == pytest.approx(0.57)
    assert all(int(r["prompt_tokens_o200k"]) > 0 and r["fold"] in {"0", "1", "2", "3", "4"} for r in rows)
    prov = (out / "PROVENANCE.md").read_text()
    assert "ulab-uiuc/LLMRouter" in prov and "MIT" in prov and "mmlu 1, gsm8k 1" in prov
    table = E.load_table(out / "all.csv")
    assert table.models == s["models"]
    # the source's own prices, for the models it scores (llama3-chatqa has none there)
    prices = E.load_prices(out / "prices.json", table.models)
    assert prices == {"qwen2.5-7b-instruct": (0.2, 0.2), "gemma-2-9b-it": (0.1, 0.1)}
    assert {"overlaps", "task"} <= set(table.ignored_columns)


def test_prepare_routerarena_fixture(tmp_path):
    out = tmp_path / "ra"
    s = X.prepare_routerarena(FIX / "routerarena", out, _index())
    assert s["rows"] == 3                 # the unevaluated AIME answer gives no row
    assert set(s["models"]) == {"gemini-2.0-flash-001", "claude-3-haiku-20240307"}
    assert s["scores_per_model"] == {"claude-3-haiku-20240307": 2, "gemini-2.0-flash-001": 3}
    rows = {r["question_id"]: r for r in _rows(out / "all.csv")}
    assert rows["GSM8K_12"]["overlaps"] == "gsm8k" and rows["GSM8K_12"]["task"] == "GSM8K"
    assert rows["WMT19-de-en_3"]["claude-3-haiku-20240307"] == ""     # failed answer = missing
    assert float(rows["WMT19-de-en_3"]["gemini-2.0-flash-001"]) == pytest.approx(0.83)
    assert rows["ArcMMLU_631"]["gemini-2.0-flash-001|output_tokens"] == "63"
    table = E.load_table(out / "all.csv")
    assert sorted(table.models) == sorted(s["models"])
    j = table.models.index("claude-3-haiku-20240307")
    assert np.isnan(table.quality[:, j]).sum() == 1
    assert E.load_prices(out / "prices.json", table.models) == {
        "claude-3-haiku-20240307": (0.25, 1.25), "gemini-2.0-flash-001": (0.1, 0.4)}


def test_models_with_too_few_scores_are_left_out(tmp_path, monkeypatch):
    monkeypatch.setattr(X, "MIN_SCORES", 3)
    s = X.prepare_routerarena(FIX / "routerarena", tmp_path, _index())
    assert s["models"] == ["gemini-2.0-flash-001"]
    assert "claude-3-haiku-20240307 (2)" in (tmp_path / "PROVENANCE.md").read_text()
    assert "claude-3-haiku-20240307" not in _rows(tmp_path / "all.csv")[0]


def _git(cwd: Path, *args: str, date: str | None = None) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


def test_routerarena_from_a_bare_snapshot_reads_history(tmp_path):
    work = tmp_path / "work"
    shutil.copytree(FIX / "routerarena", work)
    mini = [json.loads(line) for line in (work / "cached_results/gemini-2.0-flash-001.jsonl").read_text().splitlines()]
    for r in mini:
        r["llm_selected"] = "gpt-4o-mini"
        r["evaluation_result"]["score"] = 0.25
    (work / "cached_results/gpt-4o-mini.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mini))
    _git(work, "init", "-q")
    _git(work, "add", ".")
    _git(work, "commit", "-qm", "old", date="2025-01-01T00:00:00")
    (work / "cached_results/gpt-4o-mini.jsonl").unlink()          # removed later ...
    g = work / "cached_results/gemini-2.0-flash-001.jsonl"
    g.write_text(g.read_text().replace('"score": 0.0', '"score": 1.0'))   # ... and a score revised
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "new", date="2025-02-01T00:00:00")
    bare = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    s = X.prepare_external("routerarena", bare, tmp_path / "out", _index())
    assert s["scores_per_model"]["gpt-4o-mini"] == 3                  # from the older commit
    rows = {r["question_id"]: r for r in _rows(tmp_path / "out" / "all.csv")}
    assert float(rows["GSM8K_12"]["gemini-2.0-flash-001"]) == 1.0     # the newest version wins
    assert float(rows["GSM8K_12"]["gpt-4o-mini"]) == 0.25
    prov = (tmp_path / "out" / "PROVENANCE.md").read_text()
    head = subprocess.run(["git", "--git-dir", str(bare), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert head in prov and "gpt-4o-mini.jsonl@" in prov


def test_lfs_pointer_and_missing_source(tmp_path):
    (tmp_path / "cached_results").mkdir()
    (tmp_path / "cached_results" / "m.jsonl").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 8212106\n")
    with pytest.raises(ValueError, match="no readable"):
        X.prepare_external("routerarena", tmp_path, tmp_path / "out", _index())
    with pytest.raises(ValueError, match="not a directory"):
        X.prepare_external("llmrouter", tmp_path / "nope", tmp_path / "out", _index())
    with pytest.raises(ValueError, match="unknown external dataset"):
        X.prepare_external("routerbench", tmp_path, tmp_path / "out", _index())


def test_overlaps_column_is_never_a_model(tmp_path):
    # an all-empty `overlaps` column reads as numeric (empty = missing): ignored by name
    p = tmp_path / "t.csv"
    p.write_text("prompt,overlaps,task,a,b\nx,,qa,1,0\ny,,qa,0,1\n")
    t = E.load_table(p)
    assert t.models == ["a", "b"] and {"overlaps", "task"} <= set(t.ignored_columns)


def test_external_tables_drop_rows_overlapping_the_held_out_set(tmp_path):
    X.prepare_llmrouter(FIX / "llmrouter", tmp_path / "sets" / "llmrouter", _index())
    X.prepare_routerarena(FIX / "routerarena", tmp_path / "sets" / "routerarena", _index())
    found = T.external_csvs([tmp_path / "sets"])
    assert set(found) == {"llmrouter", "routerarena"}
    assert T.external_csvs([tmp_path / "sets" / "llmrouter" / "all.csv"]) == {"llmrouter": found["llmrouter"]}
    all_rows = T.external_tables([tmp_path / "sets"])
    no_gsm = T.external_tables([tmp_path / "sets"], exclude=("gsm8k",))
    assert len(all_rows["ext:llmrouter"].prompts) == 4 and len(no_gsm["ext:llmrouter"].prompts) == 3
    assert len(no_gsm["ext:routerarena"].prompts) == 2
    assert not any("Janet" in p for t in no_gsm.values() for p in t.prompts)
    with pytest.raises(ValueError, match="no all.csv"):
        T.external_csvs([tmp_path / "nowhere"])


def test_extra_train_rows_overlapping_test_prompts_are_dropped(tmp_path):
    X.prepare_llmrouter(FIX / "llmrouter", tmp_path / "llmrouter", _index())
    extra = tmp_path / "llmrouter" / "all.csv"
    tables, dropped = E.extra_tables([extra], [GSM_PENS, "unrelated test prompt about cooking pasta"])
    assert dropped == {str(extra): 1}
    assert len(tables[0].prompts) == 3 and not any(p.startswith("Janet") for p in tables[0].prompts)


def test_prepare_cli_for_an_external_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(O, "evaluation_index", lambda data=None: _index())
    assert T.main(["prepare", "--dataset", "routerarena", "--source", str(FIX / "routerarena"),
                   "--out", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 3
    assert (tmp_path / "all.csv").is_file() and (tmp_path / "PROVENANCE.md").is_file()
    with pytest.raises(SystemExit):
        T.main(["prepare", "--dataset", "routerarena", "--out", str(tmp_path)])


def test_commands_take_extra_data(tmp_path, capsys):
    import argparse
    from routerone.routing import commands
    X.prepare_llmrouter(FIX / "llmrouter", tmp_path / "ext" / "llmrouter", _index())
    rows = [{"prompt": f"{'prove the theorem' if i % 3 == 0 else 'tell me about the weather'} {i}",
             "weak": 0.0 if i % 3 == 0 else 1.0, "strong": 1.0} for i in range(30)]
    rows.append({"prompt": GSM_PENS, "weak": 0.0, "strong": 1.0})     # also in the external set
    train = tmp_path / "train.csv"
    with open(train, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["train-router", "--data", str(train), "--extra-data", str(tmp_path / "ext"),
                              "--out", str(tmp_path / "r.npz")])
    assert args.func(args) == 0
    info = json.loads(capsys.readouterr().out.split("\nuse it with")[0])
    assert info["datasets"] == {"train": 31, "ext:llmrouter": 4}
    assert {"weak", "strong", "qwen2.5-7b-instruct", "gemma-2-9b-it"} <= set(info["models"])
    args = parser.parse_args(["eval-routing", str(train), str(train), "--extra-data", str(tmp_path / "ext"),
                              "--out", str(tmp_path / "o"), "--bootstrap", "20"])
    assert args.func(args) == 0
    saved = json.loads((tmp_path / "o" / "eval.json").read_text())
    assert saved["extra_train_dropped_overlapping_test"] == {str(tmp_path / "ext" / "llmrouter" / "all.csv"): 1}
    args = parser.parse_args(["eval-routing", "--lodo", "--extra-data", str(tmp_path / "nowhere")])
    assert args.func(args) == 2 and "no all.csv" in capsys.readouterr().err

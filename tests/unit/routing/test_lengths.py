"""The length set (answer lengths without quality labels): preparation from an arena-hard-auto
snapshot, overlap filtering, and what training with it may and may not change."""
from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest

from routerone.routing.eval_auto import length_set_for
from routerone.routing.learned import lengths as LS
from routerone.routing.learned import overlap as O
from routerone.routing.learned.profile_fit import fit_profiles
from routerone.routing.learned.profiles import ProfileArtefact, ProfileRouter, Prior, normalise_name
from routerone.routing.learned.train import shared_tables

ARENA_PROMPT = "Write a haiku about rust."


def _answer(qid: str, model: str, n: int, newer: bool = False) -> str:
    turn = {"content": "x" * n} if newer else {"content": "x" * n, "token_len": n}
    a = {"question_id": qid, "model_id": model, "choices": [{"index": 0, "turns": [turn]}]}
    if newer:
        a["conv_metadata"] = {"token_len": n}
    return json.dumps(a)


def _snapshot(root: Path) -> Path:
    d = root / "data" / "arena-hard-v0.1"
    (d / "model_answer").mkdir(parents=True)
    qs = {"q1": "Explain TCP slow start in detail.", "q2": ARENA_PROMPT, "q3": "Say hi."}
    (d / "question.jsonl").write_text("\n".join(json.dumps({"question_id": q, "turns": [{"content": p}]})
                                                for q, p in qs.items()) + "\n")
    (d / "model_answer" / "gpt-4-0314.jsonl").write_text(
        "\n".join(_answer(q, "gpt-4-0314", n) for q, n in (("q1", 600), ("q2", 40), ("q3", 5))))
    (d / "model_answer" / "o1-mini.jsonl").write_text(          # newer format: conv_metadata only
        "\n".join(_answer(q, "o1-mini", n, newer=True) for q, n in (("q1", 1800), ("q2", 90), ("q3", 20))))
    (d / "model_answer" / "krikri-dpo.jsonl").write_text(_answer("q1", "krikri-dpo", 10))
    (d / "model_answer" / "tiny.jsonl").write_text(_answer("q1", "tiny", 10))   # too few answers
    return root


def _index() -> O.OverlapIndex:
    return O.OverlapIndex({"mmlu": [], "gsm8k": [], "mtbench": [], "arena": [ARENA_PROMPT]})


def test_prepare_from_a_snapshot(tmp_path, monkeypatch):
    monkeypatch.setattr(LS, "MIN_ANSWERS", 2)
    src = _snapshot(tmp_path / "src")
    s = LS.prepare_arenahard_lengths(src, tmp_path / "out", _index())
    assert s["models"] == ["gpt-4-0314", "o1-mini"] and s["prompts"] == 3
    assert any(x.startswith("krikri-dpo") for x in s["left_out"]) and any(x.startswith("tiny") for x in s["left_out"])
    assert s["rows_overlapping"] == {"arena": 1}
    got = LS.load_length_set(tmp_path / "out" / LS.LENGTHS_PATH.name)
    assert got.models == ["gpt-4-0314", "o1-mini"]
    row = got.prompts.index(ARENA_PROMPT)
    assert got.out_tokens[row].tolist() == [40.0, 90.0] and got.overlaps[row] == {"arena"}
    first = (tmp_path / "out" / LS.LENGTHS_PATH.name).read_bytes()
    LS.prepare_arenahard_lengths(src, tmp_path / "out", _index())
    assert (tmp_path / "out" / LS.LENGTHS_PATH.name).read_bytes() == first     # byte-reproducible
    assert "krikri-dpo" in (tmp_path / "out" / "PROVENANCE.md").read_text()


def test_bad_token_counts_are_refused(tmp_path):
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["question_id", "prompt", "overlaps", "m|output_tokens"])
    w.writerow(["q", "hello", "", "-3"])
    p = tmp_path / "bad.csv.gz"
    p.write_bytes(gzip.compress(buf.getvalue().encode()))
    with pytest.raises(ValueError, match=r"row 1, column m\|output_tokens"):
        LS.load_length_set(p)


def test_shipped_set_and_overlap_filtering():
    ls = LS.load_length_set()
    assert len(ls.prompts) == 500 and len(ls.models) >= 60
    assert not any(m.startswith("krikri") for m in ls.models)
    flagged = sum(1 for o in ls.overlaps if "arena" in o)
    assert flagged >= 1
    kept, dropped = ls.excluding(held_out=("arena",))
    assert dropped == flagged and len(kept.prompts) == 500 - flagged
    kept, dropped = ls.excluding(test_prompts=[ls.prompts[7], "  " + ls.prompts[9].upper() + " "])
    assert dropped >= 2 and ls.prompts[7] not in kept.prompts and ls.prompts[9] not in kept.prompts
    kept, dropped = length_set_for(["nothing like any arena-hard prompt at all"])
    assert dropped == 0 and len(kept.prompts) == 500


@pytest.fixture(scope="module")
def arena_fits():
    table = shared_tables(datasets=("arena",))["arena"]
    ls = LS.load_length_set()
    return fit_profiles([table]), fit_profiles([table], lengths=ls), ls


def test_only_the_cost_side_changes(arena_fits):
    """The easy/gap columns, the profiles and the prior map are bit-identical with the length set;
    the length column is refitted on more rows."""
    a, b, ls = arena_fits
    assert np.array_equal(a.embeddings, b.embeddings) and np.array_equal(a.prior_map, b.prior_map)
    assert np.array_equal(a.scorer.coef_sparse[:, :2], b.scorer.coef_sparse[:, :2])
    assert np.array_equal(a.scorer.coef_dense[:, :2], b.scorer.coef_dense[:, :2])
    assert np.array_equal(a.scorer.bias[:2], b.scorer.bias[:2])
    assert not np.array_equal(a.scorer.coef_sparse[:, 2], b.scorer.coef_sparse[:, 2])
    assert b.meta["length_set"]["rows"] == len(ls.prompts) and b.meta["length_set"]["quality_rows"] == 300
    assert np.array_equal(a.output_tokens, b.output_tokens)     # every arena model has trained lengths


def test_verbosity_of_models_without_trained_lengths(arena_fits, tmp_path):
    _, b, ls = arena_fits
    path = tmp_path / "r.npz"
    b.save(path)
    art = ProfileArtefact.from_file(path)
    assert art.verbosity == pytest.approx(b.verbosity)
    priors = {"gpt-4o-2024-05-13": Prior(1280, "test"), "o1-preview-2024-09-12": Prior(1300, "test"),
              "gemma-2b-it": Prior(1000, "test"), "made-up-model": Prior(1100, "test")}
    router = ProfileRouter(art, {normalise_name(k): v for k, v in priors.items()})
    default = float(np.mean(art.output_tokens))
    for name in ("gpt-4o-2024-05-13", "o1-preview-2024-09-12", "gemma-2b-it"):
        p = router.profile(name)
        assert p.source == "prior:test" and p.output_tokens == pytest.approx(art.verbosity[normalise_name(name)])
    assert router.profile("made-up-model").output_tokens == pytest.approx(default)
    # o1-preview answers these prompts at length; gemma-2b much more briefly: the ratio survives
    assert router.profile("o1-preview-2024-09-12").output_tokens > 1.5 * router.profile("gemma-2b-it").output_tokens


def test_an_artefact_without_verbosity_still_loads(arena_fits, tmp_path):
    a, _, _ = arena_fits
    path = tmp_path / "old.npz"
    a.save(path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("verbosity")}
    np.savez_compressed(path, **arrays)
    art = ProfileArtefact.from_file(path)
    assert art.verbosity == {}


@pytest.mark.parametrize("case", ["no-dir", "no-questions", "bad-question", "bad-answer", "answer-shape"])
def test_prepare_cli_bad_snapshots_are_one_line(tmp_path, case, capsys):
    from routerone.routing.learned.train import main
    src = tmp_path / "src"
    if case != "no-dir":
        _snapshot(src)
        d = src / "data" / "arena-hard-v0.1"
        if case == "no-questions":
            (d / "question.jsonl").unlink()
        elif case == "bad-question":
            (d / "question.jsonl").write_text('{"question_id": "q1", "turns": []}\n')
        elif case == "bad-answer":
            (d / "model_answer" / "o1-mini.jsonl").write_text("{not json\n")
        else:
            (d / "model_answer" / "o1-mini.jsonl").write_text('{"question_id": "q1", "choices": 5}\n')
    rc = main(["prepare", "--dataset", "arenahard_lengths", "--source", str(src), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("python -m routerone.routing.learned.train prepare: ")


@pytest.mark.parametrize("tokens", [[float("nan"), 300.0], [-1.0, 300.0], [300.0], [0.0, 1.0]])
def test_an_artefact_with_broken_verbosity_is_refused(arena_fits, tmp_path, tokens):
    """An operator's artefact (ROUTERONE_ROUTER_MODEL) is input like any other: a verbosity that is
    not one positive finite token count per name is refused when loaded, never a NaN cost."""
    _, b, _ = arena_fits
    path = tmp_path / "r.npz"
    b.save(path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["verbosity_models"] = np.array(["m1", "m2"], dtype=np.str_)
    arrays["verbosity_tokens"] = np.array(tokens, np.float64)
    np.savez_compressed(path, **arrays)
    with pytest.raises(ValueError, match="verbosity"):
        ProfileArtefact.from_file(path)

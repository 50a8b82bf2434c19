"""Learned router: features, training helpers, the shipped artefact and the value ranking."""
from __future__ import annotations

import numpy as np
import pytest

from routerone.routing.learned import Candidate, LearnedRouter, rank_by_value
from routerone.routing.learned import features as F
from routerone.routing.learned import fit
from routerone.routing.learned.model import ARTEFACT_PATH, LinearScorer
from routerone.routing.learned.train import assign_folds
from routerone.routing.learned.value import REFERENCE_GAIN, price_aversion


def test_features_are_deterministic_and_bounded():
    text = "Prove that the sum of 12.5 and 7 is 19.5? A. yes\nB. no"
    ids1, counts1 = F.sparse_counts(text)
    ids2, counts2 = F.sparse_counts(text)
    assert np.array_equal(ids1, ids2) and np.array_equal(counts1, counts2)
    assert ids1.min() >= 0 and ids1.max() < F.N_BUCKETS
    assert np.all(np.diff(ids1) > 0)
    dense = F.dense_raw(text)
    assert dense.shape == (F.N_DENSE,) and np.all(np.isfinite(dense))
    assert F.sparse_counts("")[0].size == 0
    assert np.all(np.isfinite(F.dense_raw("")))


def test_shared_words_share_buckets():
    a, _ = F.sparse_counts("integral calculus")
    b, _ = F.sparse_counts("some integral calculus question")
    c, _ = F.sparse_counts("zzzz qqqq")
    assert len(np.intersect1d(a, b)) > len(np.intersect1d(a, c))


def test_long_prompt_only_hashes_a_window():
    long = "word " * 20000
    assert len(F.window(long)) == F.HEAD_CHARS + F.TAIL_CHARS + 1
    ids, counts = F.sparse_counts(long)
    assert counts.sum() < 6 * (F.HEAD_CHARS + F.TAIL_CHARS)


def test_shipped_artefact_loads_and_predicts_in_unit_interval():
    assert ARTEFACT_PATH.is_file()
    assert ARTEFACT_PATH.stat().st_size < 5_000_000
    router = LearnedRouter.load()
    assert LearnedRouter.load() is router     # cached
    for prompt in ["hi", "", "Solve for x: 3x + 7 = 22. Show every step.", "é" * 50_000,
                   "def f(x):\n    return x ** 2\n" * 200]:
        gain = router.predict_gain(prompt)
        assert isinstance(gain, float) and 0.0 <= gain <= 1.0


def test_artefact_ranks_hard_maths_above_small_talk():
    router = LearnedRouter.load()
    hard = ("Let p = (1, 2, 5, 4)(2, 3) in S_5. Find the index of <p> in S_5.\n"
            "A. 8\nB. 2\nC. 24\nD. 120\nAnswer:")
    easy = "Which of these is a fruit?\nA. apple\nB. car\nC. chair\nD. road\nAnswer:"
    assert router.predict_gain(hard) > router.predict_gain(easy)


def _toy_feats():
    prompts = [f"hard proof number {i} lemma" if i % 2 else f"easy chat hello {i}" for i in range(40)]
    y = np.array([1.0 if i % 2 else 0.0 for i in range(40)])
    return fit.featurise(prompts), y


def test_dual_and_primal_ridge_agree():
    feats, y = _toy_feats()
    idx = np.arange(len(y))
    idf, mean, std = fit.fit_scaling(feats, idx)
    X = fit.design(feats, idx, idf, mean, std)
    w_dual = fit.fit_ridge_dual(X, fit.kernel(X), y, 0.05)
    w_primal = fit.fit_linear(X, y, l2=0.05, loss="squared", tol=1e-14, max_iter=3000)
    assert np.allclose(w_dual, w_primal, atol=1e-4)


@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_train_save_load_roundtrip(tmp_path, loss):
    feats, y = _toy_feats()
    idx = np.arange(len(y))
    scorer = fit.train_scorer(feats, idx, y, l2=0.01, loss=loss, meta={"toy": True})
    pred = fit.score_rows(scorer, feats, idx)
    assert pred[1::2].mean() > pred[0::2].mean() + 0.3
    scorer.save(tmp_path / "m.npz")
    router = LearnedRouter.load(tmp_path / "m.npz")
    assert router.meta == {"toy": True}
    again = LinearScorer.from_file(tmp_path / "m.npz")
    assert abs(float(again.score("hard proof number 3 lemma")) - pred[3]) < 1e-2


def test_assign_folds_deterministic_and_duplicates_together():
    prompts = [f"p{i}" for i in range(50)] + ["p3", "p7"]
    folds = assign_folds(prompts)
    assert folds == assign_folds(prompts)
    assert folds[50] == folds[3] and folds[51] == folds[7]
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]


CANDS = [Candidate("cheap", 0.40, 150_000), Candidate("mid", 0.70, 1_000_000),
         Candidate("strong", 0.92, 20_000_000)]


def test_rank_extreme_knob_values():
    for gain in (0.0, 0.5, 1.0):
        names, _ = rank_by_value(gain, CANDS, 0.0)
        assert names == ["cheap", "mid", "strong"]
    for gain in (0.01, 0.5, 1.0):
        names, reason = rank_by_value(gain, CANDS, 1.0)
        assert names[0] == "strong" and "worth its price" in reason


def test_rank_threshold_at_default_knob():
    pair = [CANDS[0], CANDS[2]]
    low, reason = rank_by_value(REFERENCE_GAIN * 0.5, pair, 0.5)
    assert low == ["cheap", "strong"]
    assert reason.startswith(f"predicted gain {REFERENCE_GAIN * 0.5:.2f} < threshold "
                             f"{REFERENCE_GAIN:.2f} at wtp=0.50")
    high, _ = rank_by_value(REFERENCE_GAIN * 2, pair, 0.5)
    assert high == ["strong", "cheap"]
    assert price_aversion(0.5) == pytest.approx(REFERENCE_GAIN)
    assert price_aversion(0.0) == float("inf") and price_aversion(1.0) == 0.0


def test_rank_edge_cases():
    assert rank_by_value(0.3, [], 0.5) == ([], "no candidates")
    assert rank_by_value(0.3, [CANDS[1]], 0.5)[0] == ["mid"]
    same = [Candidate("b", 0.5, 100), Candidate("a", 0.5, 100)]
    assert rank_by_value(0.9, same, 0.5)[0] == ["a", "b"]
    names, _ = rank_by_value(float("nan"), CANDS, 0.5)
    assert names[0] == "cheap"
    # a candidate that is dearer and weaker than another never comes first
    dominated = CANDS + [Candidate("bad", 0.3, 30_000_000)]
    for wtp in (0.1, 0.5, 0.9):
        assert rank_by_value(0.8, dominated, wtp)[0][0] != "bad"

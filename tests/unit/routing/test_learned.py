"""Learned router: features and training helpers (profiles and the value decision: test_profiles.py)."""
from __future__ import annotations

import numpy as np
import pytest

from routerone.routing.learned import features as F
from routerone.routing.learned import fit
from routerone.routing.learned.model import LinearScorer
from routerone.routing.learned.train import assign_folds


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
    again = LinearScorer.from_file(tmp_path / "m.npz")
    assert abs(float(again.score("hard proof number 3 lemma")) - pred[3]) < 1e-2


def test_assign_folds_deterministic_and_duplicates_together():
    prompts = [f"p{i}" for i in range(50)] + ["p3", "p7"]
    folds = assign_folds(prompts)
    assert folds == assign_folds(prompts)
    assert folds[50] == folds[3] and folds[51] == folds[7]
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]


def test_sparse_counts_are_np_unique_of_the_hashed_ngrams():
    """The sorted ids and their run-length counts are exactly np.unique's (sorted, unique, counted)."""
    import random as _random
    rng = _random.Random(7)
    alphabet = "abc def\n0123456789 éü漢字{}()=+-*/?%$\t."
    for n in (1, 2, 5, 60, 700, 3000, 4001, 9000):
        text = "".join(rng.choice(alphabet) for _ in range(n))
        raw = np.frombuffer(F.window(text).encode("utf-8", "replace"), dtype=np.uint8)
        parts = F._hashed_ngrams(raw.astype(np.intp))
        want_ids, want_counts = np.unique(np.concatenate(parts), return_counts=True)
        ids, counts = F.sparse_counts(text)
        assert ids.dtype == np.int64 and counts.dtype == np.float64
        np.testing.assert_array_equal(ids, want_ids.astype(np.int64))
        np.testing.assert_array_equal(counts, want_counts.astype(np.float64))

"""The fast prompt features (features.py) equal their written-out definitions, exactly.

The reference functions below are the plain forms the vectorised code replaced (one Horner pass per
n-gram length, a 256-bin histogram of the whole prompt, `str.count("```")`); the learned router's
decisions depend on every bit of these features, so any divergence is a changed decision.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from routerone.routing.learned import features as F

U64 = np.uint64


def _bucket(h: np.ndarray, seed: int) -> np.ndarray:
    return ((h + U64(seed)) * F._MIX) >> F._SHIFT


def reference_sparse(text: str) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(F.window(text).encode("utf-8", "replace"), dtype=np.uint8)
    folded = F._FOLD[raw].astype(U64)
    parts = []
    for n in F.CHAR_NGRAMS:
        if len(folded) >= n:
            h = np.zeros(len(folded) - n + 1, dtype=U64)
            for k in range(n):
                h = h * U64(257) + folded[k:len(folded) - n + 1 + k]
            parts.append(_bucket(h, 1000 * n))
    words = []
    i = 0
    with np.errstate(over="ignore"):         # the hash wraps around 2**64 by design
        while i < len(raw):                  # a word: a maximal run of word bytes
            if F._WORD[raw[i]]:
                h = U64(0)
                while i < len(raw) and F._WORD[raw[i]]:
                    h = h * F._P + folded[i]
                    i += 1
                words.append(h)
            else:
                i += 1
    words = np.array(words, dtype=U64)
    if len(words):
        parts.append(_bucket(words, 7))
    if len(words) > 1:
        parts.append(_bucket(words[:-1] * U64(1000003) + words[1:], 11))
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    ids, counts = np.unique(np.concatenate(parts), return_counts=True)
    return ids.astype(np.int64), counts.astype(np.float64)


def reference_dense(text: str) -> np.ndarray:
    raw = np.frombuffer(F.window(text).encode("utf-8", "replace"), dtype=np.uint8)
    digit = F._DIGIT[raw]
    numbers = sum(1 for i in range(len(raw)) if digit[i] and (i == 0 or not digit[i - 1]))
    decimals = sum(1 for i in range(1, len(raw) - 1) if digit[i - 1] and raw[i] == ord(".") and digit[i + 1])
    hist = np.bincount(np.frombuffer(text.encode("utf-8", "replace"), dtype=np.uint8), minlength=256)
    c = np.log1p(hist[[ord(ch) for ch in "\n?%$/=("]].astype(np.float64))
    n = max(raw.size, 1)
    log = lambda v: float(np.log1p(v))  # noqa: E731
    return np.array([log(len(text)), log(int(hist[32]) + 1), c[0], log(numbers), log(decimals),
                     c[1], c[2], c[3], c[4], c[5], c[6], log(text.count("```")),
                     float(np.count_nonzero(digit)) / n, float(np.count_nonzero(F._UPPER[raw])) / n])


def _texts() -> list[str]:
    rng = random.Random(11)
    alphabet = "abc DEF\n0123456789 éü漢字{}()=+-*/?%$\t.```_"
    out = ["", " ", "a", "ab", "abc", "abcd", "```", "````", "``````", "a`` ``b```c````", "1.5.2.",
           "\ud800 lone surrogate ?", "x" * 5000, "`" * 4003, "9" * 4500 + "." + "9" * 10]
    for n in (1, 2, 3, 5, 60, 700, 3000, 4000, 4001, 4002, 9000, 30000):
        out.append("".join(rng.choice(alphabet) for _ in range(n)))
    # backtick runs of every length, spread over head, middle (not hashed) and tail
    out.append(" ".join("`" * rng.randint(1, 9) + "x" for _ in range(3000)))
    return out


@pytest.mark.parametrize("text", _texts(), ids=lambda t: f"{len(t)}chars")
def test_features_equal_their_definition(text):
    ids, counts = F.sparse_counts(text)
    want_ids, want_counts = reference_sparse(text)
    assert ids.dtype == np.int64 and counts.dtype == np.float64
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(counts, want_counts)
    np.testing.assert_array_equal(F.dense_raw(text), reference_dense(text))   # bitwise
    both = F.prompt_features(text)
    np.testing.assert_array_equal(both[0], ids)
    np.testing.assert_array_equal(both[1], counts)
    np.testing.assert_array_equal(both[2], reference_dense(text))

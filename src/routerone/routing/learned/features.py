"""Prompt features for the learned router: hashed character and word n-grams plus a few counts.

Everything is vectorised numpy over the prompt's UTF-8 bytes, so one prompt costs a few tens of
microseconds whatever its length: only a fixed window (the first `HEAD_CHARS` and the last
`TAIL_CHARS` characters) is hashed; lengths are counted over the whole prompt with `str.count`.

Sparse part (hashed into `2**HASH_BITS` buckets, one shared space):
  - character 3-, 4- and 5-grams of the lower-cased window, digits folded to '0', whitespace to ' ';
  - word unigrams and bigrams (a word is a run of ASCII letters/digits or non-ASCII bytes).
Each bucket's weight is (1 + log count) * idf, then the row is L2-normalised (sublinear TF-IDF).

Dense part (`DENSE_NAMES`): log counts (length, words, lines, numbers, symbols) that carry
difficulty signal on maths prompts; standardised with the training mean and std.
The hash functions are fixed (no per-process salt), so a trained artefact stays valid.
"""
from __future__ import annotations

import numpy as np

HASH_BITS = 18
N_BUCKETS = 1 << HASH_BITS
HEAD_CHARS = 3000
TAIL_CHARS = 1000
CHAR_NGRAMS = (3, 4, 5)

DENSE_NAMES = (
    "log_chars", "log_words", "log_lines", "log_numbers", "log_decimals", "log_questions",
    "log_percent", "log_dollar", "log_slash", "log_equals", "log_parens", "log_code_fences",
    "digit_fraction", "upper_fraction",
)
N_DENSE = len(DENSE_NAMES)

_U64 = np.uint64
_MIX = _U64(0x9E3779B97F4A7C15)   # odd multiplier for multiply-shift hashing
_P = _U64(0x100000001B3)           # odd polynomial base for word hashes
_P_INV = _U64(pow(0x100000001B3, -1, 1 << 64))
_SHIFT = _U64(64 - HASH_BITS)
_MAX_BYTES = 4 * (HEAD_CHARS + TAIL_CHARS + 1)

# byte -> folded byte: lower-case ASCII, digits -> '0', all whitespace -> ' '
_FOLD = np.arange(256, dtype=np.uint8)
_FOLD[ord("A"):ord("Z") + 1] += 32
_FOLD[ord("0"):ord("9") + 1] = ord("0")
for _ws in b"\t\n\r\x0b\x0c":
    _FOLD[_ws] = ord(" ")
# bytes that belong to a word: ASCII letters and digits, and every non-ASCII byte
_WORD = np.zeros(256, dtype=bool)
_WORD[ord("a"):ord("z") + 1] = True
_WORD[ord("A"):ord("Z") + 1] = True
_WORD[ord("0"):ord("9") + 1] = True
_WORD[128:] = True
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0"):ord("9") + 1] = True
_UPPER = np.zeros(256, dtype=bool)
_UPPER[ord("A"):ord("Z") + 1] = True

_P_POW = np.empty(_MAX_BYTES, dtype=_U64)
_Q_POW = np.empty(_MAX_BYTES, dtype=_U64)
_p, _q = 1, 1
for _i in range(_MAX_BYTES):   # once at import, about 16k steps
    _P_POW[_i], _Q_POW[_i] = _p, _q
    _p = (_p * 0x100000001B3) % (1 << 64)
    _q = (_q * int(_P_INV)) % (1 << 64)


def window(text: str) -> str:
    """The part of the prompt that is hashed: its head and its tail."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def _bucket(h: np.ndarray, seed: int) -> np.ndarray:
    return ((h + _U64(seed)) * _MIX) >> _SHIFT


def _char_ngrams(folded: np.ndarray) -> list[np.ndarray]:
    out = []
    b = folded.astype(_U64)
    for n in CHAR_NGRAMS:
        if len(b) < n:
            continue
        h = np.zeros(len(b) - n + 1, dtype=_U64)
        for k in range(n):
            h = h * _U64(257) + b[k:len(b) - n + 1 + k]
        out.append(_bucket(h, 1000 * n))
    return out


def _word_ngrams(raw: np.ndarray, folded: np.ndarray) -> list[np.ndarray]:
    is_word = _WORD[raw]
    if not is_word.any():
        return []
    edges = np.diff(np.concatenate(([False], is_word, [False])).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1          # inclusive
    # polynomial hash of each word from prefix sums: sum b[i] P^(e-i) = P^e * sum b[i] Q^i
    prefix = np.cumsum(folded.astype(_U64) * _Q_POW[:len(folded)], dtype=_U64)
    before = np.where(starts > 0, prefix[np.maximum(starts - 1, 0)], _U64(0))
    words = (prefix[ends] - before) * _P_POW[ends]
    out = [_bucket(words, 7)]
    if len(words) > 1:
        out.append(_bucket(words[:-1] * _U64(1000003) + words[1:], 11))
    return out


def _log_count(n: float) -> float:
    return float(np.log1p(n))


def _sorted_ids(h: np.ndarray) -> np.ndarray:
    """The bucket ids (< 2**HASH_BITS, HASH_BITS <= 24) sorted ascending, as int32."""
    assert HASH_BITS <= 24, "two radix passes of 16 + 8 bits"
    ids = h.astype(np.int32)
    ids = ids[np.argsort((ids & 0xFFFF).astype(np.uint16), kind="stable")]
    return ids[np.argsort((ids >> 16).astype(np.uint8), kind="stable")]


def sparse_counts(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(bucket ids, counts) of the hashed n-grams of one prompt; ids sorted and unique."""
    raw = np.frombuffer(window(text).encode("utf-8", "replace"), dtype=np.uint8)
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    folded = _FOLD[raw]
    parts = _char_ngrams(folded) + _word_ngrams(raw, folded)
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    # np.unique's result (ids sorted and unique, with their counts), but sorted as a two-pass LSD
    # radix sort of the 18-bit ids (numpy's stable sort of 16- and 8-bit keys is a radix sort):
    # about 4x faster than np.unique on uint64 for a long prompt's ~13k n-grams
    ids = _sorted_ids(np.concatenate(parts))
    first = np.empty(ids.size, dtype=bool)
    first[0] = True
    np.not_equal(ids[1:], ids[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, ids.size))
    return ids[starts].astype(np.int64), counts.astype(np.float64)


def dense_raw(text: str) -> np.ndarray:
    """The unstandardised dense features of one prompt (see `DENSE_NAMES`)."""
    raw = np.frombuffer(window(text).encode("utf-8", "replace"), dtype=np.uint8)
    digit = _DIGIT[raw]
    d_edges = np.diff(np.concatenate(([False], digit)).astype(np.int8))
    numbers = int(np.count_nonzero(d_edges == 1))
    dots = raw == ord(".")
    decimals = int(np.count_nonzero(digit[:-2] & dots[1:-1] & digit[2:])) if raw.size > 2 else 0
    n = max(raw.size, 1)
    # one histogram of the whole prompt's bytes gives every single-character count (an ASCII
    # byte never occurs inside a multi-byte UTF-8 sequence, so byte counts = character counts)
    hist = np.bincount(np.frombuffer(text.encode("utf-8", "replace"), dtype=np.uint8), minlength=256)
    c = np.log1p(hist[_COUNTED].astype(np.float64))
    return np.array([
        _log_count(len(text)), _log_count(int(hist[32]) + 1), c[0],
        _log_count(numbers), _log_count(decimals), c[1], c[2], c[3], c[4], c[5], c[6],
        _log_count(text.count("```")),
        float(np.count_nonzero(digit)) / n, float(np.count_nonzero(_UPPER[raw])) / n,
    ], dtype=np.float64)


_COUNTED = np.array([ord(ch) for ch in "\n?%$/=("])


def tfidf_row(ids: np.ndarray, counts: np.ndarray, idf: np.ndarray) -> np.ndarray:
    """Sublinear TF-IDF values for one row's buckets, L2-normalised."""
    vals = (1.0 + np.log(counts)) * idf[ids]
    norm = float(np.sqrt(vals @ vals))
    return vals / norm if norm > 0 else vals

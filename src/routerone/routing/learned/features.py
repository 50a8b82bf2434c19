"""Prompt features for the learned router: hashed character and word n-grams plus a few counts.

Everything is vectorised numpy over the prompt's UTF-8 bytes, so one prompt costs a bounded time
(~0.16 ms at 8k tokens) whatever its length: only a fixed window (the first `HEAD_CHARS` and the
last `TAIL_CHARS` characters) is hashed; the single-character counts are over the whole prompt.
`prompt_features` gives both parts from one encoding (the run-time path): every n-gram's hash
goes into one uint64 array, bucketed in place, sorted once as int32 and run-length counted. Tests
compare every output bitwise with the written-out definitions (tests/unit/routing/
test_features_reference.py) and with values frozen from earlier code (test_decision_unchanged.py).

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
_FOLD_U64 = _FOLD.astype(_U64)
_COUNTED_BYTES = tuple(np.uint8(ord(ch)) for ch in " \n?%$/=(")   # words, lines, questions, ...
_BACKTICK = np.uint8(ord("`"))

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


_WORD_SEED, _BIGRAM_SEED = 7, 11


def _word_bounds(idx: np.ndarray) -> np.ndarray:
    """[start, stop, start, stop, ...]: the first byte and one past the last byte of every word of
    the window's bytes (as intp)."""
    edge = np.zeros(idx.size + 2, dtype=bool)        # word bytes, with a non-word byte each side
    _WORD.take(idx, out=edge[1:-1])
    return (edge[1:] != edge[:-1]).nonzero()[0]


def _hash_ngrams(idx: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """The polynomial hash of every n-gram of the window, unseeded, in one uint64 array, and
    (start, stop, seed) of each kind's part of it: character n-grams for n in CHAR_NGRAMS (seed
    1000 n), words (7), word bigrams (11). All arithmetic wraps in uint64 by design.

    Character n-grams: Horner's rule makes each n-gram's hash the (n-1)-gram's times 257 plus the
    next folded byte, so the 4- and 5-grams extend the 3-grams in one pass each. Words: a word's
    hash sum b[i] P^(e-1-i) over its bytes [s, e) is P^(e-1) sum b[i] Q^i, Q = 1/P mod 2^64."""
    b = _FOLD_U64[idx]
    size = b.size
    bounds = _word_bounds(idx)
    n_words = bounds.size // 2
    char_sizes = [size - n + 1 for n in CHAR_NGRAMS if size >= n]
    out = np.empty(sum(char_sizes) + n_words + max(n_words - 1, 0), dtype=_U64)
    parts: list[tuple[int, int, int]] = []
    at, h = 0, b
    for n in range(2, max((n for n in CHAR_NGRAMS if n <= size), default=1) + 1):
        m = size - n + 1
        nxt = out[at:at + m] if n in CHAR_NGRAMS else np.empty(m, dtype=_U64)
        np.multiply(h[:m], _U64(257), out=nxt)
        np.add(nxt, b[n - 1:], out=nxt)
        if n in CHAR_NGRAMS:
            parts.append((at, at + m, 1000 * n))
            at += m
        h = nxt
    if n_words:
        weighted = np.empty(size + 1, dtype=_U64)     # b[i] Q^i, and a 0 for a word that ends last
        np.multiply(b, _Q_POW[:size], out=weighted[:size])
        weighted[size] = 0
        words = out[at:at + n_words]
        # the sums over [start, stop) and then over each gap [stop, next start): keep the words'
        np.multiply(np.add.reduceat(weighted, bounds)[0::2], _P_POW[bounds[1::2] - 1], out=words)
        parts.append((at, at + n_words, _WORD_SEED))
        at += n_words
    if n_words > 1:
        pairs = out[at:at + n_words - 1]
        np.multiply(words[:-1], _U64(1000003), out=pairs)
        np.add(pairs, words[1:], out=pairs)
        parts.append((at, at + n_words - 1, _BIGRAM_SEED))
    return out, parts


def _buckets_in_place(h: np.ndarray, parts: list[tuple[int, int, int]]) -> np.ndarray:
    """h[:] = ((h + seed) * _MIX) >> _SHIFT, each part with its seed: the bucket of every n-gram."""
    for start, stop, seed in parts:
        np.add(h[start:stop], _U64(seed), out=h[start:stop])
    np.multiply(h, _MIX, out=h)
    np.right_shift(h, _SHIFT, out=h)
    return h


def _hashed_ngrams(idx: np.ndarray) -> list[np.ndarray]:
    """The bucket of every n-gram of the window's bytes (as intp), one array per kind (for tests)."""
    h, parts = _hash_ngrams(idx)
    _buckets_in_place(h, parts)
    return [h[start:stop] for start, stop, _ in parts]


_EMPTY = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


def _window_bytes(text: str) -> tuple[np.ndarray, np.ndarray]:
    """The window's UTF-8 bytes, as uint8 and as indices (intp: converted once, then every table
    lookup is a plain gather, ~3x faster than indexing with uint8)."""
    raw = np.frombuffer(window(text).encode("utf-8", "replace"), dtype=np.uint8)
    return raw, raw.astype(np.intp)


def _sparse_from_bytes(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`sparse_counts` of the window's bytes as intp indices."""
    h, parts = _hash_ngrams(idx)
    if h.size == 0:
        return _EMPTY
    # the buckets (< 2**HASH_BITS) sorted as int32 (numpy's SIMD sort: ~4x faster than np.unique
    # on uint64 for a long prompt's ~13k n-grams), then run-length counted
    ids = _buckets_in_place(h, parts).astype(np.int32)
    ids.sort()
    edge = np.empty(ids.size + 1, dtype=bool)         # where a run of one bucket starts, and the end
    edge[0] = edge[-1] = True
    np.not_equal(ids[1:], ids[:-1], out=edge[1:-1])
    at = edge.nonzero()[0]
    return ids[at[:-1]].astype(np.int64), (at[1:] - at[:-1]).astype(np.float64)


def sparse_counts(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(bucket ids, counts) of the hashed n-grams of one prompt; ids sorted and unique."""
    return _sparse_from_bytes(_window_bytes(text)[1])


def _fence_count(whole: np.ndarray) -> int:
    """text.count("```") from the prompt's UTF-8 bytes: non-overlapping matches, left to right, so
    each maximal run of L backticks holds L // 3 (a backtick byte is a backtick character)."""
    at = (whole == _BACKTICK).nonzero()[0]
    if at.size < 3:
        return 0
    # the last backtick of each run (`at` positions; -1 before the first run), then the lengths
    last = np.concatenate(((-1,), (at[1:] - at[:-1] != 1).nonzero()[0], (at.size - 1,)))
    return int(((last[1:] - last[:-1]) // 3).sum())


def _dense_from_bytes(text: str, raw: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """`dense_raw` of the prompt, given its window's bytes (uint8 and intp)."""
    whole = raw if len(text) <= HEAD_CHARS + TAIL_CHARS else \
        np.frombuffer(text.encode("utf-8", "replace"), dtype=np.uint8)
    digit = _DIGIT[idx]
    numbers = int(np.count_nonzero(digit[1:] > digit[:-1])) + int(digit[0]) if raw.size else 0
    decimals = int(np.count_nonzero(digit[:-2] & (raw[1:-1] == ord(".")) & digit[2:])) if raw.size > 2 else 0
    n = max(raw.size, 1)
    # counts of single characters over the whole prompt (an ASCII byte never occurs inside a
    # multi-byte UTF-8 sequence, so byte counts = character counts); one compare-and-count per
    # character is cheaper than a 256-bin histogram of a long prompt
    counted = [int(np.count_nonzero(whole == c)) for c in _COUNTED_BYTES]
    logs = np.log1p(np.array([len(text), counted[0] + 1, counted[1], numbers, decimals, *counted[2:],
                              _fence_count(whole)], dtype=np.float64))
    return np.concatenate((logs, (float(np.count_nonzero(digit)) / n,
                                  float(np.count_nonzero(_UPPER[idx])) / n)))


def dense_raw(text: str) -> np.ndarray:
    """The unstandardised dense features of one prompt (see `DENSE_NAMES`)."""
    return _dense_from_bytes(text, *_window_bytes(text))


def prompt_features(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bucket ids, counts, dense features) of one prompt: `sparse_counts` and `dense_raw` from
    one encoding of its window."""
    raw, idx = _window_bytes(text)
    ids, counts = _sparse_from_bytes(idx)
    return ids, counts, _dense_from_bytes(text, raw, idx)


def tfidf_row(ids: np.ndarray, counts: np.ndarray, idf: np.ndarray) -> np.ndarray:
    """Sublinear TF-IDF values for one row's buckets, L2-normalised."""
    vals = (1.0 + np.log(counts)) * idf[ids]
    norm = float(np.sqrt(vals @ vals))
    return vals / norm if norm > 0 else vals

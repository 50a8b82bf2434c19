"""Prompt features for the learned router: hashed character and word n-grams plus a few counts.

Everything is vectorised numpy over the prompt's UTF-8 bytes, so one prompt costs a bounded time
(~0.2 ms at 8k tokens) whatever its length: only a fixed window (the first `HEAD_CHARS` and the
last `TAIL_CHARS` characters) is hashed; the single-character counts are over the whole prompt.
`prompt_features` gives both parts from one encoding (the run-time path); tests compare every
output bitwise with the written-out definitions (tests/unit/routing/test_features_reference.py).

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


def _bucket_into(h: np.ndarray, seed: int, out: np.ndarray) -> None:
    """out[:] = ((h + seed) * _MIX) >> _SHIFT, the bucket of each hash (uint64, in place in `out`)."""
    np.add(h, _U64(seed), out=out)
    np.multiply(out, _MIX, out=out)
    np.right_shift(out, _SHIFT, out=out)


def _bucket(h: np.ndarray, seed: int) -> np.ndarray:
    out = np.empty(len(h), dtype=_U64)
    _bucket_into(h, seed, out)
    return out


def _char_hashes(b: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """(polynomial hash of every character n-gram, its seed) for n in CHAR_NGRAMS (3, 4, 5), from
    the folded bytes as uint64. Horner's rule makes each n-gram's hash the (n-1)-gram's times 257
    plus the next byte (exact in uint64), so 4- and 5-grams extend the 3-grams in one pass each."""
    out: list[tuple[np.ndarray, int]] = []
    size = len(b)
    h = None
    for n in range(1, CHAR_NGRAMS[-1] + 1):
        if size < n:
            break
        h = b if h is None else h[:size - n + 1] * _U64(257) + b[n - 1:]
        if n in CHAR_NGRAMS:
            out.append((h, 1000 * n))
    return out


def _char_ngrams(folded: np.ndarray) -> list[np.ndarray]:
    return [_bucket(h, seed) for h, seed in _char_hashes(folded.astype(_U64))]


def _word_hashes(is_word: np.ndarray, b: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """(hash of every word, 7) and (hash of every word bigram, 11); `is_word` marks the bytes
    that belong to a word, `b` is the folded bytes as uint64."""
    starts = np.flatnonzero(is_word[1:] > is_word[:-1]) + 1
    ends = np.flatnonzero(is_word[:-1] > is_word[1:])          # inclusive
    if is_word[0]:
        starts = np.concatenate(([0], starts))
    if is_word[-1]:
        ends = np.append(ends, len(is_word) - 1)
    if starts.size == 0:
        return []
    # polynomial hash of each word from prefix sums: sum b[i] P^(e-i) = P^e * sum b[i] Q^i
    prefix = np.cumsum(b * _Q_POW[:len(b)], dtype=_U64)
    before = prefix[starts - 1]
    if starts[0] == 0:
        before[0] = 0
    words = (prefix[ends] - before) * _P_POW[ends]
    out = [(words, 7)]
    if len(words) > 1:
        out.append((words[:-1] * _U64(1000003) + words[1:], 11))
    return out


def _word_ngrams(raw: np.ndarray, folded: np.ndarray) -> list[np.ndarray]:
    return [_bucket(h, seed) for h, seed in _word_hashes(_WORD[raw], folded.astype(_U64))]


def _sorted_ids(h: np.ndarray) -> np.ndarray:
    """The bucket ids (< 2**HASH_BITS) sorted ascending, as int32."""
    return np.sort(h.astype(np.int32))


_EMPTY = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


def _window_bytes(text: str) -> tuple[np.ndarray, np.ndarray]:
    """The window's UTF-8 bytes, as uint8 and as indices (intp: converted once, then every table
    lookup is a plain gather, ~3x faster than indexing with uint8)."""
    raw = np.frombuffer(window(text).encode("utf-8", "replace"), dtype=np.uint8)
    return raw, raw.astype(np.intp)


def _sparse_from_bytes(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`sparse_counts` of the window's bytes as intp indices."""
    if raw.size == 0:
        return _EMPTY
    b = _FOLD_U64[raw]
    hashes = _char_hashes(b) + _word_hashes(_WORD[raw], b)
    if not hashes:
        return _EMPTY
    # every n-gram's bucket into one array, then sorted (numpy's SIMD sort of int32: ~4x faster
    # than np.unique on uint64 for a long prompt's ~13k n-grams) and run-length counted
    buckets = np.empty(sum(len(h) for h, _ in hashes), dtype=_U64)
    at = 0
    for h, seed in hashes:
        _bucket_into(h, seed, buckets[at:at + len(h)])
        at += len(h)
    ids = _sorted_ids(buckets)
    first = np.empty(ids.size, dtype=bool)
    first[0] = True
    np.not_equal(ids[1:], ids[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, ids.size))
    return ids[starts].astype(np.int64), counts.astype(np.float64)


def sparse_counts(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(bucket ids, counts) of the hashed n-grams of one prompt; ids sorted and unique."""
    return _sparse_from_bytes(_window_bytes(text)[1])


def _fence_count(whole: np.ndarray) -> int:
    """text.count("```") from the prompt's UTF-8 bytes: non-overlapping matches, left to right, so
    each maximal run of L backticks holds L // 3 (a backtick byte is a backtick character)."""
    is_tick = whole == _BACKTICK
    if np.count_nonzero(is_tick) < 3:
        return 0
    at = np.flatnonzero(is_tick)
    breaks = np.flatnonzero(np.diff(at) != 1)
    run_lengths = np.diff(np.concatenate(([-1], breaks, [at.size - 1])))
    return int(np.sum(run_lengths // 3))


def _dense_from_bytes(text: str, raw: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """`dense_raw` of the prompt, given its window's bytes (uint8 and intp)."""
    whole = raw if len(text) <= HEAD_CHARS + TAIL_CHARS else \
        np.frombuffer(text.encode("utf-8", "replace"), dtype=np.uint8)
    digit = _DIGIT[idx]
    numbers = int(np.count_nonzero(digit[1:] > digit[:-1])) + int(digit[0]) if raw.size else 0
    dots = raw == ord(".")
    decimals = int(np.count_nonzero(digit[:-2] & dots[1:-1] & digit[2:])) if raw.size > 2 else 0
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

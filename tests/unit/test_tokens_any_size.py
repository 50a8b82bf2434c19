"""Issue 11 item 1: token counting works at every size, exactly where the text allows a cut, and as
an upper bound (never an exception, never an under-count) where it does not; the incremental
counter a stream uses says the same as counting the whole text, in bounded memory."""
from __future__ import annotations

import random

import pytest

from routerone.tokens import PIECE_CHARS, TokenCounter, count_prompt_tokens, count_text_tokens, load_tokenizer

WORDS = ["hello", "world", "Zürich", "naïve", "日本語", "don't", "I'm", "x2", "42", "3.14", "!!", "...", "\n", "\n\n",
         "  ", "\t", "é", "ß", "Привет", "مرحبا", "<|endoftext|>", "😀", "a\u0301", "THE", "CamelCase", "foo_bar",
         "https://x.y/z", "\r\n", "'s", "—"]


def _text(rnd: random.Random, n: int) -> str:
    out, size = [], 0
    while size < n:
        w = rnd.choice(WORDS) + rnd.choice([" ", " ", " ", "\n", "", "  ", ", "])
        out.append(w)
        size += len(w)
    return "".join(out)


def _exact(text: str) -> int:
    # the reference: o200k on the whole text at once, by the library's backend (its Python wrapper
    # refuses >= 1M characters or > 200k tokens, which is what tokens.py works around)
    return len(load_tokenizer()._backend.encode(text))


@pytest.mark.parametrize("seed", range(8))
def test_pieces_count_exactly_what_the_whole_text_counts(seed: int) -> None:
    rnd = random.Random(seed)
    text = _text(rnd, rnd.randint(3 * PIECE_CHARS, 12 * PIECE_CHARS))
    exact = _exact(text)
    assert count_text_tokens(text) == exact
    counter = TokenCounter()
    i = 0
    while i < len(text):
        k = rnd.randint(1, 300)
        counter.add(text[i:i + k])
        i += k
        assert counter.pending_chars <= 8 * PIECE_CHARS + 300   # bounded, whatever the length
    assert counter.total() == exact


def test_beyond_the_tokenizers_limits() -> None:
    text = "hello world " * 90_000              # 1.08 MB: bpe-openai alone raises here
    with pytest.raises(ValueError):
        load_tokenizer().encode_ordinary(text)
    assert count_text_tokens(text) == 180_001
    assert count_text_tokens(text * 4) == 720_001
    assert count_prompt_tokens(text, 1) == 180_001 + 4 + 3


def test_text_without_cut_points_is_bounded_by_its_bytes() -> None:
    blob = "x" * 3_000_000
    assert count_text_tokens(blob) == 3_000_000                 # >= the real count, no exception
    mixed = "hello world " * 10_000 + "é" * 200_000 + " and then words again" * 5_000
    n = count_text_tokens(mixed)
    assert _exact(mixed) <= n <= len(mixed.encode())
    special = "<|endoftext|>" * 100_000                         # special-token text is plain text
    assert count_text_tokens(special) >= 100_000


def test_counter_total_can_be_read_more_than_once() -> None:
    c = TokenCounter()
    c.add("hello world " * 30_000)
    first = c.total()
    c.add(" more")
    assert c.total() == count_text_tokens("hello world " * 30_000 + " more") and first < c.total()


_UNLOADED_COUNTER = """
import random, sys
from routerone.tokens import PIECE_CHARS, TokenCounter, count_text_tokens, tokenizer_loaded
rnd = random.Random(7)
words = ["hello", "world", "stream", "token", "é", "x" * 30]
text = " ".join(rnd.choice(words) for _ in range(400_000)) + "\\n" + "y" * 600_000 + " tail words"
c = TokenCounter()
for i in range(0, len(text), 97):
    c.add(text[i:i + 97])
    assert c.pending_chars <= 8 * PIECE_CHARS + 97, c.pending_chars   # UNLOADED_MAX_CHARS
print(tokenizer_loaded(), len(text.encode()))
print(c.total())
"""

_FRESH_COUNT = """
import random
from routerone.tokens import count_text_tokens
rnd = random.Random(7)
words = ["hello", "world", "stream", "token", "é", "x" * 30]
text = " ".join(rnd.choice(words) for _ in range(400_000)) + "\\n" + "y" * 600_000 + " tail words"
print(count_text_tokens(text))
"""


def test_a_counter_never_loads_the_tokenizer_while_text_is_added(tmp_path) -> None:
    """A stream's text is added from its read callback, on the event loop: the tokenizer's first
    load (~1 s) must not happen there (it stalled every client). Without the tokenizer, the counter
    keeps UNLOADED_MAX_CHARS at most and bounds the older text by its bytes: never an under-count.
    Run in a fresh interpreter, where nothing has loaded the tokenizer yet."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", _UNLOADED_COUNTER], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded_while_adding, n_bytes = out.stdout.split("\n")[0].split()
    total = int(out.stdout.split("\n")[1])
    assert loaded_while_adding == "False"
    rnd = random.Random(7)
    words = ["hello", "world", "stream", "token", "é", "x" * 30]
    text = " ".join(rnd.choice(words) for _ in range(400_000)) + "\n" + "y" * 600_000 + " tail words"
    assert _exact(text) <= total <= int(n_bytes)
    # the whole-text count, in a fresh interpreter too, stays exact (it loads the tokenizer itself)
    fresh = subprocess.run([sys.executable, "-c", _FRESH_COUNT], capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert int(fresh.stdout) == count_text_tokens(text)

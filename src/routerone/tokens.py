"""Offline token counting for reservations, limits and context checks.

Short prompts are bounded by their UTF-8 length: every o200k/cl100k token is at least one byte, so
bytes >= tokens always, and the surplus is small in absolute terms and handed back at settlement.
Prompts of EXACT_COUNT_MIN_BYTES or more are counted exactly with o200k (`bpe-openai`, which ships
its encodings: no download). The tokenizer costs ~135 MB of memory and ~1 s to load, so it is
loaded only when a long prompt (or an upstream that reports no usage) first needs it.

Any size. `bpe-openai` refuses one input of 1,000,000 characters or more, or of more than 200,000
tokens. Long texts are therefore counted in pieces of at most PIECE_CHARS characters, cut only where
o200k's pre-tokenizer always starts a new token (a space between two letters, or after a newline
before a letter), so the sum of the pieces' counts is exactly the count of the whole. A piece in
which no such cut exists (a megabyte without a space, say) is bounded by its UTF-8 length instead:
never an under-count, never an exception. `TokenCounter` does the same incrementally, for the text
a stream relays, in memory bounded by PIECE_CHARS whatever the stream's length; it never loads the
tokenizer itself while text is added (a stream's read callback runs on the event loop): text beyond
UNLOADED_MAX_CHARS that arrives before the tokenizer is loaded (off the loop) is bounded by bytes.
"""
from __future__ import annotations

from functools import lru_cache

__all__ = ["count_text_tokens", "count_prompt_tokens", "needs_tokenizer", "load_tokenizer",
           "MESSAGE_OVERHEAD_TOKENS", "EXACT_COUNT_MIN_BYTES", "TokenCounter", "PIECE_CHARS",
           "tokenizer_loaded", "count_message_tokens"]

MESSAGE_OVERHEAD_TOKENS = 4    # role and separators per message, as OpenAI's counting guide does
EXACT_COUNT_MIN_BYTES = 4096
# A piece is at most this many characters: <= 4 bytes each, so <= 200,000 tokens (every token is at
# least one byte), inside both of the tokenizer's limits.
PIECE_CHARS = 50_000
# what a TokenCounter keeps before the tokenizer is loaded; beyond it the older text is bounded by bytes
UNLOADED_MAX_CHARS = 8 * PIECE_CHARS


@lru_cache(maxsize=1)
def load_tokenizer():
    import bpe_openai   # heavy (memory): imported on first need only
    return bpe_openai.get_encoding("o200k_base")


def needs_tokenizer(text: str) -> bool:
    """True when counting `text` would load the tokenizer now (the caller may do it off-loop)."""
    return (load_tokenizer.cache_info().currsize == 0 and len(text) * 4 >= EXACT_COUNT_MIN_BYTES
            and len(text.encode()) >= EXACT_COUNT_MIN_BYTES)


def tokenizer_loaded() -> bool:
    return load_tokenizer.cache_info().currsize > 0


def _count_piece(piece: str) -> int:
    try:
        # encode_ordinary: text that looks like a special token ("<|endoftext|>") is plain text here
        return len(load_tokenizer().encode_ordinary(piece))
    except ValueError:           # a limit of the tokenizer: bound it (tokens <= bytes)
        return _bytes(piece)


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _is_cut(text: str, i: int) -> bool:
    """Does o200k's pre-tokenizer always start a token at text[i]? Yes before a space that sits
    between two letters, and at a letter right after a newline: no pre-token spans either point
    (letter runs stop at a space or newline; whitespace and punctuation runs stop at a letter; a
    pre-token's optional leading character is never a newline), so counting the text on each side
    separately gives exactly the count of the whole."""
    if i <= 0 or i + 1 >= len(text):
        return False
    if text[i] == " ":
        return text[i - 1].isalpha() and text[i + 1].isalpha()
    return text[i - 1] == "\n" and text[i].isalpha()


def _last_cut(text: str, lo: int, hi: int) -> int:
    """The last cut point i with lo < i <= hi, or -1."""
    best = -1
    i = hi + 1
    while True:   # spaces, right to left
        i = text.rfind(" ", lo + 1, i)
        if i < 0 or i <= best:
            break
        if _is_cut(text, i):
            best = i
            break
    j = hi + 1
    while True:   # newlines: the cut is the letter after one
        j = text.rfind("\n", lo, j)
        if j < 0 or j + 1 <= best:
            break
        if _is_cut(text, j + 1) and j + 1 <= hi:
            best = j + 1
            break
    return best


def _first_cut(text: str, lo: int) -> int:
    """The first cut point i > lo, or -1."""
    best = -1
    i = lo
    while True:
        i = text.find(" ", i + 1)
        if i < 0:
            break
        if _is_cut(text, i):
            best = i
            break
    j = lo
    while True:
        j = text.find("\n", j)
        if j < 0 or (best >= 0 and j + 1 >= best):
            break
        if j + 1 > lo and _is_cut(text, j + 1):
            best = j + 1
            break
        j += 1
    return best


def count_text_tokens(text: str) -> int:
    """The exact o200k count of `text` when it has a cut point at least every PIECE_CHARS
    characters (natural language does); else an upper bound (see the module docstring)."""
    if not text:
        return 0
    if len(text) <= PIECE_CHARS:
        return _count_piece(text)
    load_tokenizer()      # the whole text is here: counted exactly (the counter alone would bound it by bytes)
    c = TokenCounter()
    c.add(text)
    return c.total()


def count_prompt_tokens(text: str, n_messages: int) -> int:
    """An upper-leaning count for a prompt: its text plus per-message framing."""
    n_bytes = len(text.encode("utf-8", "surrogatepass"))
    body = count_text_tokens(text) if n_bytes >= EXACT_COUNT_MIN_BYTES else n_bytes
    return body + MESSAGE_OVERHEAD_TOKENS * n_messages + 3


def count_message_tokens(text: str, n_messages: int) -> int:
    """A prompt's count as the counting endpoints answer it (`/v1/messages/count_tokens`,
    `/v1/responses/input_tokens`): its text counted exactly plus per-message framing."""
    return count_text_tokens(text) + MESSAGE_OVERHEAD_TOKENS * n_messages + 3


class TokenCounter:
    """Counts text appended piece by piece (a stream's deltas) in bounded memory: text is kept only
    until 2 * PIECE_CHARS characters are pending, then counted up to a cut point and dropped.
    `total()` equals `count_text_tokens` of the whole text. Between two cut points further apart
    than PIECE_CHARS (no spaces for 50,000 characters) the text is bounded by its UTF-8 length,
    which is additive, so that too needs no memory. The tokenizer is loaded only once a stream has
    relayed PIECE_CHARS characters (or at `total()`)."""

    __slots__ = ("_parts", "_pending", "_counted", "_bounding")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._pending = 0
        self._counted = 0
        self._bounding = False     # inside a stretch with no cut point: counting bytes until one

    @property
    def pending_chars(self) -> int:
        return self._pending

    @property
    def empty(self) -> bool:
        """No text was added (or only empty strings)."""
        return not self._pending and not self._counted and not self._bounding

    def add(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        self._pending += len(text)
        # until the tokenizer is loaded (the caller loads it off the event loop) a little more is
        # kept; past UNLOADED_MAX_CHARS the older text is bounded by its bytes: the tokenizer is
        # never loaded in here (~1 s: a stream's read callback is on the event loop)
        if self._pending > 2 * PIECE_CHARS:
            if tokenizer_loaded():
                self._consume(final=False)
            elif self._pending > UNLOADED_MAX_CHARS:
                self._bound_older()

    def _bound_older(self) -> None:
        """All but the last PIECE_CHARS characters, counted by their UTF-8 length (never less than
        their tokens), up to a cut point where there is one (so the rest is counted exactly, and
        the sum is additive), else into a stretch without one (`_bounding`, as `_consume` does)."""
        text = "".join(self._parts)
        keep_from = len(text) - PIECE_CHARS
        cut = -1 if self._bounding else _last_cut(text, 0, keep_from)
        if cut > 0:
            self._counted += _bytes(text[:cut])
        else:
            if self._bounding:          # the stretch without a cut point may end in what is kept
                cut = _first_cut(text, 0)
                if 0 < cut <= keep_from:
                    self._counted += _bytes(text[:cut])
                    self._bounding = False
                    rest = text[cut:]
                    self._parts, self._pending = [rest], len(rest)
                    return
            cut = keep_from
            self._counted += _bytes(text[:cut])
            self._bounding = True
        rest = text[cut:]
        self._parts, self._pending = [rest], len(rest)

    def _consume(self, *, final: bool) -> None:
        text = "".join(self._parts)
        pos, n = 0, len(text)
        while pos < n:
            if self._bounding:
                cut = _first_cut(text, pos)
                if cut < 0:
                    # no cut yet: bound what we have; keep one character, a cut's left neighbour
                    end = n if final else n - 1
                    self._counted += _bytes(text[pos:end])
                    pos = end
                    break
                self._counted += _bytes(text[pos:cut])
                pos, self._bounding = cut, False
                continue
            if n - pos <= PIECE_CHARS:
                if final:
                    self._counted += _count_piece(text[pos:])
                    pos = n
                break
            cut = _last_cut(text, pos, pos + PIECE_CHARS)
            if cut < 0:
                self._bounding = True
                continue
            self._counted += _count_piece(text[pos:cut])
            pos = cut
        rest = text[pos:]
        self._parts = [rest] if rest else []
        self._pending = len(rest)

    def total(self) -> int:
        """The count of everything added so far (the counter can go on after)."""
        saved = (list(self._parts), self._pending, self._counted, self._bounding)
        self._consume(final=True)
        total = self._counted
        self._parts, self._pending, self._counted, self._bounding = saved
        return total

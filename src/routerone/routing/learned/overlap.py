"""Which evaluation set an external prompt overlaps (leakage control for external training data).

The evaluation sets are the shared routing data's MMLU, GSM8K, MT-Bench (first turns) and
arena-bench-v1 prompts (train.LOADERS, contaminated prompts already dropped). An external prompt
overlaps an evaluation set when, against one of its prompts, it is
  * `exact`: the same string;
  * `normalised`: the same after case folding and collapsing whitespace;
  * `ngram`: it shares at least min(3, k) of that prompt's k distinctive word 8-grams, and at
    least MIN_SHARED_FRACTION of the smaller of k and its own 8-gram count (words = `\\w+` runs,
    case folded; an 8-gram is distinctive when at most MAX_OWNERS evaluation prompts contain it,
    so shared templates never count; the fraction keeps two long prompts that share a few stock
    phrases apart). This catches the same benchmark item under another template (an added
    instruction, other option labels). It errs on the side of flagging: a flagged row is only
    left out of training when its set is evaluated, while a missed one would leak;
  * `id`: for arena prompts, the same question_id / uid.
Rows carry the names of the sets they overlap in an `overlaps` column ("mmlu;gsm8k", empty when
none); leave-one-dataset-out drops such rows from training when that set is held out, and
`eval-routing --extra-train` drops extra rows that overlap the test CSV's own prompts.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

EVAL_SETS = ("mmlu", "gsm8k", "mtbench", "arena")
NGRAM = 8
MAX_OWNERS = 3
MIN_SHARED = 3
MIN_SHARED_FRACTION = 0.1
_WORD = re.compile(r"\w+")


def normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def _ngrams(text: str) -> set[str]:
    words = _WORD.findall(text.casefold())
    return {" ".join(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1)}


class OverlapIndex:
    """Index of evaluation prompts {set name: [prompt, ...]} (and optional ids per set)."""

    def __init__(self, sets: dict[str, list[str]], ids: dict[str, set[str]] | None = None):
        self.names = list(sets)
        self.exact: dict[str, set[str]] = defaultdict(set)
        self.norm: dict[str, set[str]] = defaultdict(set)
        self.ids = {k: set(v) for k, v in (ids or {}).items()}
        owners: dict[str, set[int]] = defaultdict(set)
        self._owner_set: list[str] = []
        grams_of: list[set[str]] = []
        for name, prompts in sets.items():
            for p in prompts:
                self.exact[p].add(name)
                self.norm[normalise(p)].add(name)
                grams = _ngrams(p)
                k = len(self._owner_set)
                self._owner_set.append(name)
                grams_of.append(grams)
                for g in grams:
                    owners[g].add(k)
        # distinctive n-grams only; need[k] = shared n-grams that make a match with prompt k
        self.gram_owners = {g: tuple(o) for g, o in owners.items() if len(o) <= MAX_OWNERS}
        self.distinct = [sum(1 for g in grams if g in self.gram_owners) for grams in grams_of]
        self.need = [min(MIN_SHARED, d) for d in self.distinct]

    def match(self, prompt: str, qid: str | None = None) -> dict[str, str]:
        """{evaluation set: how it matched (exact|normalised|id|ngram)} for one external prompt."""
        found: dict[str, str] = {}
        for name in self.exact.get(prompt, ()):
            found.setdefault(name, "exact")
        for name in self.norm.get(normalise(prompt), ()):
            found.setdefault(name, "normalised")
        if qid:
            for name, ids in self.ids.items():
                if qid in ids:
                    found.setdefault(name, "id")
        grams = _ngrams(prompt)
        shared: dict[int, int] = defaultdict(int)
        for g in grams:
            for k in self.gram_owners.get(g, ()):
                shared[k] += 1
        for k, n in shared.items():
            if n >= self.need[k] and n >= MIN_SHARED_FRACTION * min(self.distinct[k], len(grams)):
                found.setdefault(self._owner_set[k], "ngram")
        return found


def evaluation_index(data: Path | None = None) -> OverlapIndex:
    """The index of the shared routing data's evaluation prompts (train.LOADERS)."""
    from .train import LOADERS, default_data_dir
    data = Path(data or default_data_dir())
    sets, ids = {}, {}
    for name in EVAL_SETS:
        rows = LOADERS[name](data)
        sets[name] = [r["prompt"] for r in rows]
        qids = {str(r["question_id"]) for r in rows if r.get("question_id")}
        if qids:
            ids[name] = qids
    return OverlapIndex(sets, ids)


def overlaps_cell(found: dict[str, str]) -> str:
    return ";".join(sorted(found))


def split_cell(cell: str | None) -> set[str]:
    return {s for s in (cell or "").split(";") if s}

"""Answer lengths without quality labels: more data for the cost side of `auto`.

How long a model's answer to a prompt runs is mostly a property of the prompt (on arena-bench-v1
each model's log answer length correlates 0.48-0.84 with the other models' mean on the same
prompt), and it needs no quality label: public answers of many models are enough. A *length set*
is such data: prompts and, per model, the answer length in tokens. Training uses it twice
(profile_fit.py):
  * the `length` trait (the per-prompt answer-length factor) is fitted on the quality tables'
    length rows plus the length set's rows;
  * `verbosity`: a model without trained answer lengths (a prior or default profile) is expected
    to answer as long as its geometric-mean length in the set relative to the trained models that
    are also in it (profiles.py).

The shipped set, `data/arenahard_lengths.csv.gz`, is written by

    python -m routerone.routing.learned.train prepare --dataset arenahard_lengths \
        --source <snapshot of meltemi-ai/arena-hard-auto-english> --out DIR

from lmarena's arena-hard-v0.1 (500 Chatbot Arena prompts, Apache-2.0): `question.jsonl` and
`model_answer/<model>.jsonl` (`token_len` of the first turn, or the answer's `conv_metadata.token_len` in newer files,
as published: tiktoken counts). The
fork's own fine-tunes (`krikri-*`) and models with fewer than MIN_ANSWERS answers are left out.
Rows carry `overlaps` (overlap.py) so that evaluations drop the rows that overlap their test prompts.
Format: CSV with `prompt`, `question_id`, `overlaps` and one `<model>|output_tokens` column per
model (empty = no answer).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .overlap import OverlapIndex, overlaps_cell, split_cell

LENGTHS_PATH = Path(__file__).with_name("data") / "arenahard_lengths.csv.gz"
MIN_ANSWERS = 400
SUFFIX = "|output_tokens"
QUESTIONS = "data/arena-hard-v0.1/question.jsonl"
ANSWERS = "data/arena-hard-v0.1/model_answer"
LEFT_OUT_PREFIXES = ("krikri-",)


@dataclass
class LengthSet:
    name: str
    prompts: list[str]
    models: list[str]
    out_tokens: np.ndarray          # (n, M) answer tokens, NaN = no answer
    overlaps: list[set[str]]

    def without(self, keep: np.ndarray) -> "LengthSet":
        idx = np.flatnonzero(keep)
        return LengthSet(self.name, [self.prompts[i] for i in idx], self.models, self.out_tokens[idx],
                         [self.overlaps[i] for i in idx])

    def excluding(self, held_out=(), test_prompts=None) -> tuple["LengthSet", int]:
        """The rows that overlap none of the `held_out` evaluation sets and none of `test_prompts`
        (overlap.py's test), and how many were dropped."""
        keep = np.array([not (o & set(held_out)) for o in self.overlaps], bool)
        if test_prompts is not None and len(test_prompts):
            index = OverlapIndex({"test": list(test_prompts)})
            keep &= np.array([not index.match(p) for p in self.prompts], bool)
        return self.without(keep), int((~keep).sum())


def load_length_set(path: Path | str = LENGTHS_PATH) -> LengthSet:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    csv.field_size_limit(sys.maxsize)
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: no rows")
    models = [c[:-len(SUFFIX)] for c in rows[0] if c.endswith(SUFFIX)]
    out = np.full((len(rows), len(models)), np.nan)
    for i, r in enumerate(rows):
        for j, m in enumerate(models):
            cell = (r.get(m + SUFFIX) or "").strip()
            if cell:
                v = float(cell)
                if not (np.isfinite(v) and v >= 0):
                    raise ValueError(f"{path}: data row {i + 1}, column {m}{SUFFIX}: not a token count")
                out[i, j] = v
    return LengthSet(path.name.split(".")[0], [r["prompt"] for r in rows], models, out,
                     [split_cell(r.get("overlaps")) for r in rows])


def geometric_means(out_tokens: np.ndarray) -> np.ndarray:
    """(M,) geometric-mean answer length of each model over its answers (NaN without any)."""
    lo = np.log(np.maximum(out_tokens, 1.0))
    ok = ~np.isnan(lo)
    total = np.where(ok, lo, 0.0).sum(axis=0)
    count = ok.sum(axis=0)
    return np.where(count > 0, np.exp(total / np.maximum(count, 1)), np.nan)


def prepare_arenahard_lengths(source: Path, out_dir: Path, index: OverlapIndex | None = None) -> dict:
    """Read a snapshot of an arena-hard-auto repository (see the module docstring) and write
    out_dir/arenahard_lengths.csv.gz and out_dir/PROVENANCE.md."""
    from .external import Source
    from .overlap import evaluation_index
    src = Source(Path(source))
    index = index or evaluation_index()
    text = src.read(QUESTIONS)
    if text is None:
        raise ValueError(f"{source}: no {QUESTIONS}")
    questions = {}
    for no, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                q = json.loads(line)
                questions[str(q["question_id"])] = str(q["turns"][0]["content"])
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise ValueError(f"{QUESTIONS} line {no}: not an arena-hard question ({exc})") from None
    lengths: dict[str, dict[str, int]] = {}
    left_out: list[str] = []
    for rel in src.list(ANSWERS):
        if not rel.endswith(".jsonl"):
            continue
        body = src.read(rel)
        if body is None:
            left_out.append(f"{rel} (unreadable: absent or a Git LFS pointer)")
            continue
        for no, line in enumerate(body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                a = json.loads(line)
                turns = a["choices"][0]["turns"]
                n = turns[0].get("token_len")
                if n is None and len(turns) == 1:    # newer files: per answer only
                    n = (a.get("conv_metadata") or {}).get("token_len")
                qid, model = str(a["question_id"]), str(a["model_id"])
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                raise ValueError(f"{rel} line {no}: not an arena-hard answer ({exc!r})") from None
            if isinstance(n, int) and not isinstance(n, bool) and n >= 0 and qid in questions:
                lengths.setdefault(model, {})[qid] = n
    models = sorted(m for m, v in lengths.items()
                    if len(v) >= MIN_ANSWERS and not m.startswith(LEFT_OUT_PREFIXES))
    left_out += sorted(f"{m} ({len(v)} answers)" for m, v in lengths.items() if m not in models)
    qids = sorted(questions)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["question_id", "prompt", "overlaps"] + [m + SUFFIX for m in models])
    overlapping: dict[str, int] = {}
    for q in qids:
        found = index.match(questions[q], q)
        for s in found:
            overlapping[s] = overlapping.get(s, 0) + 1
        w.writerow([q, questions[q], overlaps_cell(found)]
                   + [lengths[m].get(q, "") for m in models])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(out_dir / LENGTHS_PATH.name, "wb", mtime=0) as fh:   # byte-reproducible
        fh.write(buf.getvalue().encode("utf-8"))
    summary = {"dataset": "arenahard_lengths", "repository": str(source), "commit": src.commit,
               "prompts": len(qids), "models": models, "left_out": left_out,
               "rows_overlapping": overlapping}
    (out_dir / "PROVENANCE.md").write_text(
        "# Length set: arena-hard-v0.1 answer lengths\n\n"
        f"- repository snapshot: {source}; commit read: {src.commit}\n"
        f"- paths: {QUESTIONS}, {ANSWERS}/<model>.jsonl (`choices[0].turns[0].token_len`, else the "
        "single-turn answer's `conv_metadata.token_len`)\n"
        "- licence: Apache-2.0 (lmarena/arena-hard-auto and its fork)\n"
        f"- prompts: {len(qids)}; models: {len(models)}: {', '.join(models)}\n"
        f"- left out: {', '.join(left_out) or 'none'}\n"
        "- rows overlapping evaluation sets (overlap.py): "
        + (", ".join(f"{k} {v}" for k, v in sorted(overlapping.items())) or "none") + "\n"
        "- no quality labels; used only for answer lengths (learned/lengths.py)\n")
    return summary

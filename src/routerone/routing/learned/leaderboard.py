"""Published ability scores for models the router has no training data on, found by looser names.

`model_priors.toml` holds hand-checked entries (the trained models and the catalog's). A model named
otherwise (an operator's `mistralai/mixtral-8x7b-chat`, an evaluation's `claude-v2`, `gpt4_1106_preview`)
used to fall to the "default" profile: the mean trained model, a silent constant. This module reads the
whole LMArena text leaderboard snapshot those entries came from (`data/lmarena_text_2025-08-04.csv`,
266 rows; provenance in `data/lmarena_text.PROVENANCE.md`) and finds a model's row by its name, in
this order, stopping at the first step that finds any row:

1. the same canonical name: lower case, no `vendor/` prefix, spaces / `_` / `.` / brackets as `-`
   ("Claude 3.5 Sonnet (20241022)" -> `claude-3-5-sonnet-20241022`);
2. the same name without a trailing date (`-20241022`, `-2024-10-22`, `-08-2024`); several dated rows
   -> the newest (what an undated alias of a provider points to);
3. the same loose tokens: letters and digits split apart (`gpt4` -> `gpt 4`), the packaging words
   `chat instruct it hf v`, a leading `meta` and a trailing `0` version dropped (`claude-v2` = "Claude-2.0",
   `claude-instant-v1` = "Claude-Instant-1", `wizardlm-13b-v1.2` = "WizardLM-13b-v1.2");
4. the loose tokens as the start of exactly one row's (`mixtral-8x7b-chat` = "Mixtral-8x7B-Instruct-v0.1";
   `mistral-7b-chat` starts both v0.1 and v0.2: no match), but never by extending a version number:
   `WizardLM-13B-V1.0` (tokens `wizardlm 13 b 1`) is not "WizardLM-13b-v1.2" (`... 1 2`), `deepseek-v2`
   is not "DeepSeek-V2.5".

Rows found at a step with different scores and no dates to order them: no match (never a guess). Every
found prior names its row, which `routerone models` shows.

Open models that LMArena never rated (an operator's `Qwen/Qwen2.5-7B-Instruct` or
`mistralai/Mistral-7B-Instruct-v0.3` on vLLM) are then looked up in the final Open LLM Leaderboard v2
snapshot (`OpenBoard`, `data/open_llm_leaderboard_v2_2025-03-21.csv.gz`, 4,576 models; provenance in
`data/open_llm_leaderboard_v2.PROVENANCE.md`): by exact Hugging Face id, else by the model's own name
when one upload of it is clearly the original (the most hub likes, over twice any other's); a model
evaluated more than once (two precisions) has the mean of its rows. Its average score is put on the
arena scale by a least-squares line fitted, when loaded, on the models of type "chat" the two boards
share (found by steps 1-3 above, never by a prefix): 58 models, r = 0.85. Flagged rows are not used.
"""
from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Leaderboard", "BoardRow", "OpenBoard", "canonical", "loose_tokens", "SOURCE", "OPEN_SOURCE"]

SOURCE = "lmarena-text-2025-08-04"
BOARD_PATH = Path(__file__).with_name("data") / "lmarena_text_2025-08-04.csv"
OPEN_SOURCE = "open-llm-leaderboard-v2-2025-03-21"
OPEN_BOARD_PATH = Path(__file__).with_name("data") / "open_llm_leaderboard_v2_2025-03-21.csv.gz"
PACKAGING = frozenset({"chat", "instruct", "it", "hf", "v"})

_DATE = re.compile(r"-(?:(\d{4})(\d{2})(\d{2})|(\d{4})-(\d{2})-(\d{2})|(\d{2})-(\d{4}))$")


@dataclass(frozen=True)
class BoardRow:
    name: str          # as the leaderboard writes it
    score: float


def canonical(name: str) -> str:
    n = name.strip().lower().rsplit("/", 1)[-1]
    n = n.replace("+", "-plus")
    n = re.sub(r"[\s_.()\[\]]+", "-", n)
    return re.sub(r"-{2,}", "-", n).strip("-")


def _split_date(key: str) -> tuple[str, str]:
    """(the canonical name without a trailing date, the date as YYYYMMDD or '')."""
    m = _DATE.search(key)
    if not m:
        return key, ""
    g = m.groups()
    date = "".join(g[0:3]) if g[0] else "".join(g[3:6]) if g[3] else g[7] + g[6] + "00"
    return key[:m.start()], date


def loose_tokens(name: str) -> tuple[str, ...]:
    base, _ = _split_date(canonical(name))
    tokens = [t for t in re.findall(r"[a-z]+|\d+", base) if t not in PACKAGING]
    if tokens[:1] == ["meta"] and len(tokens) > 2:   # "Meta-Llama-3.1-8B-Instruct" = llama3.1:8b
        tokens.pop(0)
    if len(tokens) >= 2 and tokens[-1] == "0" and tokens[-2].isdigit():
        tokens.pop()
    return tuple(tokens)


class Leaderboard:
    """The snapshot's rows, searchable by the steps in the module docstring."""

    def __init__(self, rows: list[BoardRow]) -> None:
        self.rows = rows
        self._exact: dict[str, list[int]] = {}
        self._undated: dict[str, list[int]] = {}
        self._loose: dict[tuple[str, ...], list[int]] = {}
        self._dates: list[str] = []
        for i, row in enumerate(rows):
            key = canonical(row.name)
            base, date = _split_date(key)
            self._dates.append(date)
            self._exact.setdefault(key, []).append(i)
            self._undated.setdefault(base, []).append(i)
            self._loose.setdefault(loose_tokens(row.name), []).append(i)

    @classmethod
    def load(cls, path: Path | str = BOARD_PATH) -> "Leaderboard":
        with open(path, newline="", encoding="utf-8") as f:
            rows = [BoardRow(r["model"].strip(), float(r["arena_score"])) for r in csv.DictReader(f)
                    if r.get("model", "").strip() and _is_number(r.get("arena_score"))]
        return cls(rows)

    def _one(self, found: list[int]) -> BoardRow | None:
        """The row a set of candidates names: one score, else the newest when all are dated."""
        if not found:
            return None
        if len({self.rows[i].score for i in found}) == 1:
            return self.rows[found[0]]
        if all(self._dates[i] for i in found):
            newest = max(self._dates[i] for i in found)
            best = [i for i in found if self._dates[i] == newest]
            if len({self.rows[i].score for i in best}) == 1:
                return self.rows[best[0]]
        return None

    def find_strict(self, name: str) -> BoardRow | None:
        """Steps 1-3 only (no prefix): how the open board's calibration pairs are found."""
        key = canonical(name)
        if not key:
            return None
        found = self._exact.get(key) or self._undated.get(_split_date(key)[0]) or self._loose.get(loose_tokens(name))
        return self._one(found or [])

    def find(self, name: str) -> BoardRow | None:
        key = canonical(name)
        if not key:
            return None
        base, _ = _split_date(key)
        tokens = loose_tokens(name)
        for found in (self._exact.get(key, []), self._undated.get(base, []), self._loose.get(tokens, [])):
            if found:
                return self._one(found)
        if len(tokens) < 2:               # a bare family name ("gpt", "claude") is no model
            return None
        n = len(tokens)
        version = tokens[-1].isdigit()
        starts = [i for t, rows in self._loose.items()
                  if t[:n] == tokens and not (version and len(t) > n and t[n].isdigit()) for i in rows]
        return self._one(starts)


@dataclass(frozen=True)
class OpenRow:
    hf_id: str         # "Qwen/Qwen2.5-7B-Instruct"
    average: float     # the leaderboard's average of its six benchmarks (0..100)
    hearts: int        # Hugging Face likes, to tell the original upload of a name from re-uploads
    chat: bool         # the leaderboard's type "chat models"


class OpenBoard:
    """The Open LLM Leaderboard v2 rows (open models), their averages on the arena scale."""

    MIN_PAIRS = 10

    def __init__(self, rows: list[OpenRow], arena: Leaderboard) -> None:
        self.rows = rows
        runs: dict[str, list[OpenRow]] = {}
        for r in rows:
            runs.setdefault(r.hf_id.lower(), []).append(r)
        self._by_id = {k: OpenRow(v[0].hf_id, sum(r.average for r in v) / len(v), max(r.hearts for r in v),
                                  any(r.chat for r in v)) for k, v in runs.items()}
        self._by_name: dict[str, list[OpenRow]] = {}
        for r in self._by_id.values():
            self._by_name.setdefault(canonical(r.hf_id), []).append(r)
        pairs: dict[str, tuple[list[float], float]] = {}
        for r in self._by_id.values():
            if r.chat and (row := arena.find_strict(r.hf_id)) is not None:
                pairs.setdefault(row.name, ([], row.score))[0].append(r.average)
        x = [sorted(v)[len(v) // 2] for v, _ in pairs.values()]
        y = [score for _, score in pairs.values()]
        self.pairs = len(x)
        self.slope, self.intercept = _line(x, y) if self.pairs >= self.MIN_PAIRS else (0.0, 0.0)
        self.correlation = self.slope * _sd(x) / _sd(y) if self.slope and _sd(y) else 0.0

    @classmethod
    def load(cls, arena: Leaderboard, path: Path | str = OPEN_BOARD_PATH) -> "OpenBoard":
        rows = []
        with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                name, avg = r.get("model_name", "").strip(), r.get("model_average_score")
                if name and "/" in name and _is_number(avg) and r.get("features_is_flagged", "").upper() != "TRUE":
                    hearts = r.get("metadata_hub_hearts", "")
                    rows.append(OpenRow(name, float(avg), int(hearts) if hearts.isdigit() else 0,
                                        r.get("model_type") == "chatmodels"))
        return cls(rows, arena)

    def find(self, name: str) -> BoardRow | None:
        """The model's row (named by its Hugging Face id), its average put on the arena scale."""
        if self.slope <= 0:
            return None
        row = self._by_id.get(name.strip().lower())
        if row is None:
            same = sorted(self._by_name.get(canonical(name), []), key=lambda r: -r.hearts)
            if len(same) == 1 or (len(same) > 1 and same[0].hearts > 2 * same[1].hearts):
                row = same[0]
        if row is None:
            return None
        return BoardRow(row.hf_id, round(self.intercept + self.slope * row.average, 1))


def _line(x: list[float], y: list[float]) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line y = intercept + slope * x."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    if sxx == 0:
        return 0.0, 0.0
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx
    return slope, my - slope * mx


def _sd(v: list[float]) -> float:
    m = sum(v) / len(v) if v else 0.0
    return (sum((a - m) ** 2 for a in v) / len(v)) ** 0.5 if v else 0.0


def _is_number(text) -> bool:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return False
    return v == v and abs(v) != float("inf")

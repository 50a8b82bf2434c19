"""Per-model quality prediction for `auto`: prompt traits x model profiles (inference, numpy only).

A two-trait item-response model, fitted by `profile_fit.py`:

    predicted quality of model m on prompt p  =  e_m . [1, easy(p), gap(p)]

  * easy(p): how well models in general do on this prompt (predicted mean quality);
  * gap(p):  how much stronger models pull ahead on it (predicted slope of quality on ability);
  both are ridge regressions on the hashed n-gram features of `features.py`;
  * length(p): how much longer than usual answers to this prompt run (predicted mean over the
    models of log(answer tokens / that model's mean)); a model's expected answer length on the prompt
    is its mean length x exp(length(p)) / length_norm (the mean over training prompts), which prices the request (cost side only);
    the length regression also learns from a length set (answer lengths of many models without
    quality labels, lengths.py), and a model without trained lengths is expected to answer as long
    as the set says relative to the trained models (`verbosity`), else as the average trained model;
  * e_m, the model's profile: its base quality and how it responds to each trait, fitted on the
    model's own per-prompt scores when the training data has them ("trained"), otherwise mapped
    from a published ability score in `model_priors.toml` by the linear map score -> profile fitted
    on the trained models that also have a score ("prior:<source>"), otherwise found by a looser
    name in the whole leaderboard snapshot those scores came from (leaderboard.py; "prior:<source>
    as '<row>'", or "trained as '<model>'" when the row is a trained model), otherwise the mean
    trained profile ("default"). Quality is on a 0..1 scale (correctness, or a 1-10 judge score mapped to
    0..1).

`ProfileRouter.load()` reads the shipped artefact `router_model.npz` (or the path in the
ROUTERONE_ROUTER_MODEL environment variable); `predict(prompt, names)` gives each model's predicted
quality and `profile(name)` where it came from. The value decision is in `value.py`.
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import threading
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...nested_parse import NestedTooDeep, parse_json, parse_toml
from ...settings import read_text_file
from .leaderboard import OPEN_SOURCE, SOURCE as LEADERBOARD_SOURCE, Leaderboard, OpenBoard
from .artefact_checks import check_arrays
from .model import LinearScorer

ARTEFACT_PATH = Path(__file__).with_name("router_model.npz")
PRIORS_PATH = Path(__file__).with_name("model_priors.toml")
ROUTER_ENV = "ROUTERONE_ROUTER_MODEL"     # the operator's artefact (`routerone train-router --out`)
PRIORS_ENV = "ROUTERONE_MODEL_PRIORS"     # the operator's priors file, same format as PRIORS_PATH
# Every prior's score, whatever its source, goes through the one map score -> profile fitted on
# LMArena scores, so it is read on the arena scale (Elo-like: 400 points = 10:1 odds; the shipped
# snapshot's 266 models span 840..1,470). 0 < score <= 5000 is generous on purpose: it never refuses
# a real arena score, now or after years of growth, yet refuses a typo or 1e308, which the linear
# map turned into an absurd predicted quality (a 300-digit number in `auto`'s reason header).
PRIOR_SCORE_MIN, PRIOR_SCORE_MAX = 0.0, 5000.0     # 0 < score <= 5000


class RouterFileError(ValueError):
    """A router artefact or priors file that cannot be used. The message names the file, and the
    variable that named it: a missing one was a bare "No such file or directory" after "listening",
    a broken one a traceback, a FIFO a start-up that waited for ever (and ignored SIGTERM)."""
FORMAT_VERSION = 3
READABLE_FORMATS = (2, 3)       # 2: an operator's `train-router` artefact from before the length factor
TRAITS = ("easy", "gap")
LENGTH_CLIP = 3.0            # |predicted log length factor| is clipped to this (a factor of e^3 = 20)
DEFAULT_OUTPUT_TOKENS = 350     # expected answer length of a model the data says nothing about


def normalise_name(name: str) -> str:
    """Lookup key: lower case, no `vendor/` prefix, no trailing date (-20250514, -2024-08-06)."""
    n = name.strip().lower().rsplit("/", 1)[-1]
    n = re.sub(r"-(\d{8}|\d{4}-\d{2}-\d{2})$", "", n)
    return n


@dataclass(frozen=True)
class Prior:
    """A published arena-scale `score` (mapped to a profile), or a fixed `quality` (0..1, the same
    on every prompt: the demo's canned models, whose made-up scores mapped past 1)."""
    score: float | None
    source: str
    row: str = ""
    quality: float | None = None


def load_priors(path: Path | str | None = None) -> dict[str, Prior]:
    """{normalised model name: Prior} from the shipped priors file, then the operator's file
    (ROUTERONE_MODEL_PRIORS, same format), whose entries win."""
    out: dict[str, Prior] = {}
    paths = [(Path(path) if path else PRIORS_PATH, "")]
    extra = os.environ.get(PRIORS_ENV)
    if extra and path is None:
        paths.append((Path(extra), f"{PRIORS_ENV}: "))
    for p, named_by in paths:
        for name, prior in _priors_file(p, f"{named_by}{str(p)!r}").items():
            out[normalise_name(name)] = prior
    return out


def _priors_file(p: Path, where: str) -> dict[str, Prior]:
    try:
        data = parse_toml(read_text_file(str(p)))
    except OSError as exc:
        raise RouterFileError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RouterFileError(f"{where}: not UTF-8 text") from None
    except (tomllib.TOMLDecodeError, NestedTooDeep) as exc:
        raise RouterFileError(f"{where}: not valid TOML ({exc})") from None
    models = data.get("model", {})
    if not isinstance(models, dict):
        raise RouterFileError(f"{where}: 'model' must be tables such as [model.\"my-model\"]")
    out: dict[str, Prior] = {}
    for name, entry in models.items():
        fixed = isinstance(entry, dict) and "quality" in entry and "score" not in entry
        try:
            if not isinstance(entry, dict) or isinstance(value := entry["quality" if fixed else "score"], bool):
                raise TypeError(entry)
            score = float(value)
            source = str(entry["source"])
            if not math.isfinite(score):
                raise ValueError(score)
        except (KeyError, TypeError, ValueError):
            raise RouterFileError(f"{where}: model.{name} needs a numeric 'score' (or 'quality') and a "
                                  "'source'") from None
        if fixed:
            if not 0 <= score <= 1:
                raise RouterFileError(f"{where}: model.{name} quality {score!r} is outside 0..1")
            out[name] = Prior(None, source, str(entry.get("row", "")), quality=score)
            continue
        if not PRIOR_SCORE_MIN < score <= PRIOR_SCORE_MAX:
            raise RouterFileError(f"{where}: model.{name} score {score!r} is outside "
                                  f"{PRIOR_SCORE_MIN:g} < score <= {PRIOR_SCORE_MAX:g} (an arena-scale score)")
        out[name] = Prior(score, source, str(entry.get("row", "")))
    return out


@dataclass(frozen=True)
class Profile:
    name: str
    embedding: np.ndarray        # (1 + len(TRAITS),)
    output_tokens: float         # expected answer length, tokens
    source: str                  # "trained" | "prior:<source>" | "default"

    @property
    def base_quality(self) -> float:
        """Predicted quality on the average training prompt (traits at their mean)."""
        return float(self.embedding[0])


@dataclass
class ProfileArtefact:
    scorer: LinearScorer                 # prompt features -> traits + log length (K+1 columns)
    models: list[str]                    # trained model names (as in the data)
    embeddings: np.ndarray               # (M, 1+K)
    output_tokens: np.ndarray            # (M,)
    prior_map: np.ndarray                # (2, 1+K): embedding = prior_map[0] + prior_map[1] * z(score)
    prior_center: float                  # mean and scale of the scores the map was fitted on
    prior_scale: float
    trait_mean: np.ndarray               # (K+1,) mean scorer outputs over the training prompts
    meta: dict
    length_norm: float = 1.0             # mean exp(length) over the training prompts with lengths
    verbosity: dict = field(default_factory=dict)   # {normalised name: expected answer tokens} (length_fit.py)

    def save(self, path: Path | str) -> None:
        s = self.scorer
        np.savez_compressed(
            path, format_version=np.int64(FORMAT_VERSION), idf=s.idf.astype(np.float16),
            coef_sparse=s.coef_sparse.astype(np.float16), dense_mean=s.dense_mean,
            dense_std=s.dense_std, coef_dense=s.coef_dense, bias=np.asarray(s.bias, np.float64),
            models=np.array(self.models, dtype=np.str_), embeddings=self.embeddings,
            output_tokens=self.output_tokens, prior_map=self.prior_map,
            prior_center=np.float64(self.prior_center), prior_scale=np.float64(self.prior_scale),
            trait_mean=self.trait_mean, length_norm=np.float64(self.length_norm),
            verbosity_models=np.array(sorted(self.verbosity), dtype=np.str_),
            verbosity_tokens=np.array([self.verbosity[m] for m in sorted(self.verbosity)], np.float64),
            meta=np.str_(json.dumps(self.meta, sort_keys=True)))

    @classmethod
    def from_file(cls, path: Path | str) -> "ProfileArtefact":
        """The artefact at `path`; RouterFileError (naming the path) if it cannot be read or is not one."""
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):      # a FIFO: np.load waited for a writer for ever
                raise OSError(errno.EINVAL, "not a regular file")
            return cls._read(path)
        except OSError as exc:
            raise RouterFileError(f"{str(path)!r}: cannot read it: {exc.strerror or exc}") from None
        except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:   # np.load's and ours
            why = "its meta is nested too deep" if isinstance(exc, NestedTooDeep) else exc
            raise RouterFileError(f"{str(path)!r}: not a router profile artefact (an .npz written by "
                                  f"`routerone train-router`): {why}") from None

    @classmethod
    def _read(cls, path: Path | str) -> "ProfileArtefact":
        if not zipfile.is_zipfile(path):     # else np.load's word for it is "contains pickled data"
            raise ValueError("not an .npz archive")
        with np.load(path, allow_pickle=False) as z:
            if ("format_version" not in z or np.shape(z["format_version"]) != ()
                    or int(z["format_version"]) not in READABLE_FORMATS):
                raise ValueError(f"no format {' or '.join(map(str, READABLE_FORMATS))} artefact")
            check_arrays(z)
            meta = parse_json(str(z["meta"]))
            if not isinstance(meta, dict):
                raise ValueError("its meta is not a JSON object")
            scorer = LinearScorer(idf=z["idf"].astype(np.float64),
                                  coef_sparse=z["coef_sparse"].astype(np.float32),
                                  dense_mean=z["dense_mean"], dense_std=z["dense_std"],
                                  coef_dense=z["coef_dense"], bias=z["bias"], link="identity")
            return cls(scorer, [str(m) for m in z["models"]], z["embeddings"], z["output_tokens"],
                       z["prior_map"], float(z["prior_center"]), float(z["prior_scale"]),
                       z["trait_mean"], meta,
                       float(z["length_norm"]) if "length_norm" in z else 1.0, _verbosity(z, path))


def _verbosity(z, path) -> dict[str, float]:
    """The artefact's {model: expected answer tokens} (absent in older artefacts): names and
    positive finite token counts, one each, or the artefact is refused."""
    if "verbosity_models" not in z:
        return {}
    names, tokens = z["verbosity_models"], z["verbosity_tokens"] if "verbosity_tokens" in z else None
    if (tokens is None or names.ndim != 1 or tokens.shape != names.shape
            or not np.issubdtype(tokens.dtype, np.floating) or not np.all(np.isfinite(tokens) & (tokens > 0))):
        raise ValueError("its verbosity arrays are not one positive token count per model name")
    return {str(m): float(t) for m, t in zip(names, tokens)}


class ProfileRouter:
    """Predicts every candidate's quality on a prompt. Load once per process with `load()`."""

    _cache: dict[str, "ProfileRouter"] = {}
    _lock = threading.Lock()

    def __init__(self, artefact: ProfileArtefact, priors: dict[str, Prior] | None = None,
                 board: Leaderboard | None = None, open_board: OpenBoard | None = None) -> None:
        """`priors` None: the shipped priors file (and the operator's), the whole leaderboard
        snapshot behind it and the open models' leaderboard (leaderboard.py); given priors: those,
        and the boards only if given."""
        self.artefact = artefact
        self.board, self.open_board = board, open_board
        if priors is None:
            priors = load_priors()
            self.board = board or Leaderboard.load()
            self.open_board = open_board or OpenBoard.load(self.board)
        self.priors = priors
        self._trained = {normalise_name(m): j for j, m in enumerate(artefact.models)}
        self._profiles: dict[str, Profile] = {}
        self._default = Profile("default", artefact.embeddings.mean(axis=0),
                                float(np.mean(artefact.output_tokens)) if len(artefact.models)
                                else DEFAULT_OUTPUT_TOKENS, "default")

    @classmethod
    def load(cls, path: Path | str | None = None) -> "ProfileRouter":
        """The router from `path` (default: ROUTERONE_ROUTER_MODEL, else the shipped artefact)."""
        chosen = path or os.environ.get(ROUTER_ENV) or ARTEFACT_PATH
        named_by = f"{ROUTER_ENV}: " if not path and os.environ.get(ROUTER_ENV) else ""
        key = str(Path(chosen).resolve())
        with cls._lock:
            router = cls._cache.get(key)
            if router is None:
                try:
                    artefact = ProfileArtefact.from_file(key)
                except RouterFileError as exc:
                    raise RouterFileError(f"{named_by}{exc}") from None
                router = cls(artefact)
                cls._cache[key] = router
        return router

    @property
    def meta(self) -> dict:
        return self.artefact.meta

    def profile(self, name: str) -> Profile:
        """The model's profile and where it came from (trained / prior:<source> / default)."""
        got = self._profiles.get(name)
        if got is not None:
            return got
        a, key = self.artefact, normalise_name(name)
        j = self._trained.get(key)
        prior, source, verbosity_key = self.priors.get(key), "", key
        if j is not None:
            pass
        elif prior is not None:
            source = f"prior:{prior.source}"
        elif (row := self.board.find(name) if self.board is not None else None) is not None:
            # a looser name of a published model (leaderboard.py)
            j = self._trained.get(normalise_name(row.name))     # that model is a trained one
            prior, source = Prior(row.score, LEADERBOARD_SOURCE, row.name), f"prior:{LEADERBOARD_SOURCE} as '{row.name}'"
            verbosity_key = key if key in a.verbosity else normalise_name(row.name)
        elif (row := self.open_board.find(name) if self.open_board is not None else None) is not None:
            # an open model LMArena never rated: its Open LLM Leaderboard average on the arena scale
            prior = Prior(row.score, OPEN_SOURCE, row.name)
            source = f"prior:{OPEN_SOURCE} as '{row.name}'"
        if j is not None:
            got = Profile(name, a.embeddings[j], float(a.output_tokens[j]),
                          f"trained as '{a.models[j]}'" if source else "trained")
        elif prior is not None and prior.quality is not None:       # the same on every prompt
            got = Profile(name, np.array([prior.quality] + [0.0] * len(TRAITS)),
                          a.verbosity.get(verbosity_key, self._default.output_tokens), source)
        elif prior is not None and a.prior_scale > 0:
            z = (prior.score - a.prior_center) / a.prior_scale
            got = Profile(name, a.prior_map[0] + a.prior_map[1] * z,
                          a.verbosity.get(verbosity_key, self._default.output_tokens), source)
        else:
            got = Profile(name, self._default.embedding, a.verbosity.get(key, self._default.output_tokens),
                          "default")
        self._profiles[name] = got
        return got

    def prompt_view(self, prompt: str) -> tuple[np.ndarray, float]:
        """([1, easy, gap], answer-length factor) for the prompt, from one scoring of its features.
        The factor multiplies each model's mean answer length (1 on the average training prompt)."""
        a = self.artefact
        t = np.asarray(a.scorer.score(prompt if isinstance(prompt, str) else ""), float)
        t = np.where(np.isfinite(t), t, a.trait_mean)
        k = len(TRAITS)
        # a format-2 artefact has no length output: every prompt gets the model's mean length
        factor = float(np.exp(min(max(t[k], -LENGTH_CLIP), LENGTH_CLIP))) / a.length_norm if t.size > k else 1.0
        return np.concatenate(([1.0], t[:k])), factor

    def traits(self, prompt: str) -> np.ndarray:
        """[1, easy, gap] for the prompt."""
        return self.prompt_view(prompt)[0]

    def embeddings(self, names) -> np.ndarray:
        return np.array([self.profile(n).embedding for n in names]).reshape(len(names), -1)

    def predict(self, prompt: str, names) -> np.ndarray:
        """Predicted quality (0..1 scale, not clipped) of each named model on `prompt`."""
        return self.embeddings(names) @ self.traits(prompt)


def profile_source(model_id: str) -> str:
    """Where `auto` gets this model's quality profile: "trained", "prior:<source>" or "default"
    (for `routerone models`); "unavailable" if the artefact cannot be read."""
    try:
        return ProfileRouter.load().profile(model_id).source
    except (OSError, ValueError) as exc:   # a broken artefact must not break the listing
        return f"unavailable ({exc.__class__.__name__})"

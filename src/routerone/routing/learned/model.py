"""Inference for the learned router: numpy + stdlib only, no download, no GPU.

The shipped artefact `router_model.npz` (beside this file) holds one linear model over the features
of `features.py`: IDF weights, the sparse and dense coefficients, the dense standardisation and a
bias. `LearnedRouter.predict_gain(prompt)` is sigmoid(w . x): the predicted probability that the
strong model of a pair answers this prompt better than the weak one (trained on RouteLLM's MMLU and
GSM8K correctness, and on arena-bench / MT-Bench judge scores for GPT-4 vs Mixtral).
Rebuild it with `routerone train-router` (see train.py); the build is deterministic.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import features as F

ARTEFACT_PATH = Path(__file__).with_name("router_model.npz")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LinearScorer:
    """A linear model on the prompt features; `link` is "logistic" or "identity"."""
    idf: np.ndarray              # (N_BUCKETS,) float
    coef_sparse: np.ndarray      # (N_BUCKETS,) or (N_BUCKETS, K)
    dense_mean: np.ndarray       # (N_DENSE,)
    dense_std: np.ndarray        # (N_DENSE,)
    coef_dense: np.ndarray       # (N_DENSE,) or (N_DENSE, K)
    bias: np.ndarray             # () or (K,)
    link: str = "logistic"
    meta: dict = field(default_factory=dict)

    def score(self, prompt: str) -> np.ndarray | float:
        ids, counts = F.sparse_counts(prompt)
        return self.score_features(ids, counts, F.dense_raw(prompt))

    def score_features(self, ids: np.ndarray, counts: np.ndarray,
                       dense_raw: np.ndarray) -> np.ndarray | float:
        """The score from precomputed features (`features.sparse_counts` and `dense_raw`)."""
        vals = (1.0 + np.log(counts)) * self.idf[ids]
        norm = float(np.sqrt(vals @ vals))
        if norm > 0:
            vals = vals / norm
        dense = (dense_raw - self.dense_mean) / self.dense_std
        s = vals @ self.coef_sparse[ids] + dense @ self.coef_dense + self.bias
        if self.link == "logistic":
            return 1.0 / (1.0 + np.exp(-s))
        return s

    def save(self, path: Path | str) -> None:
        np.savez_compressed(
            path, format_version=np.int64(FORMAT_VERSION), hash_bits=np.int64(F.HASH_BITS),
            idf=self.idf.astype(np.float16), coef_sparse=self.coef_sparse.astype(np.float32),
            dense_mean=self.dense_mean, dense_std=self.dense_std, coef_dense=self.coef_dense,
            bias=np.asarray(self.bias, dtype=np.float64), link=np.str_(self.link),
            meta=np.str_(json.dumps(self.meta, sort_keys=True)))

    @classmethod
    def from_file(cls, path: Path | str) -> "LinearScorer":
        with np.load(path, allow_pickle=False) as z:
            if int(z["format_version"]) != FORMAT_VERSION or int(z["hash_bits"]) != F.HASH_BITS:
                raise ValueError(f"{path}: incompatible learned-router artefact")
            return cls(idf=z["idf"].astype(np.float64), coef_sparse=z["coef_sparse"],
                       dense_mean=z["dense_mean"], dense_std=z["dense_std"],
                       coef_dense=z["coef_dense"], bias=z["bias"], link=str(z["link"]),
                       meta=json.loads(str(z["meta"])))


class LearnedRouter:
    """Predicts how much a prompt needs a strong model. Load once per process with `load()`."""

    _cache: dict[str, "LearnedRouter"] = {}
    _lock = threading.Lock()

    def __init__(self, scorer: LinearScorer) -> None:
        self.scorer = scorer

    @classmethod
    def load(cls, path: Path | str | None = None) -> "LearnedRouter":
        """The router from `path` (default: the shipped artefact); cached per path."""
        key = str(Path(path or ARTEFACT_PATH).resolve())
        with cls._lock:
            router = cls._cache.get(key)
            if router is None:
                router = cls(LinearScorer.from_file(key))
                cls._cache[key] = router
        return router

    @property
    def meta(self) -> dict:
        return self.scorer.meta

    def predict_gain(self, prompt: str) -> float:
        """Predicted probability, in [0, 1], that a strong model beats a weak one on `prompt`."""
        p = float(self.scorer.score(prompt if isinstance(prompt, str) else ""))
        return min(1.0, max(0.0, p)) if p == p else 0.0

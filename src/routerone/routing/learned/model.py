"""A linear model over the prompt features of `features.py` (numpy + stdlib only): IDF weights,
the sparse and dense coefficients, the dense standardisation and a bias; one or K outputs.

The profile router (profiles.py) uses one with K = 3 outputs (the prompt traits easy and gap, and
the log answer-length factor); the offline
`learned` evaluation strategy (strategy.py) uses them as gain and per-model quality heads.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from . import features as F

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

    @cached_property
    def bucket_rows(self) -> np.ndarray:
        """[idf, coef_sparse...] per bucket in one row (see _bucket_rows); built on first use, so
        the scorers a training path only keeps for their weights never hold one. From then on
        `idf` and `coef_sparse` are read-only: changed in place (training's refit_length does,
        before any scoring) they would silently disagree with the copy the scores come from."""
        rows = _bucket_rows(self.idf, self.coef_sparse)
        self.idf.flags.writeable = False
        self.coef_sparse.flags.writeable = False
        return rows

    @cached_property
    def _coef_columns(self) -> np.ndarray:
        return np.arange(1, self.bucket_rows.shape[1])

    def score(self, prompt: str) -> np.ndarray | float:
        return self.score_features(*F.prompt_features(prompt))

    def score_features(self, ids: np.ndarray, counts: np.ndarray,
                       dense_raw: np.ndarray) -> np.ndarray | float:
        """The score from precomputed features (`features.sparse_counts` and `dense_raw`)."""
        # one gather of the prompt's rows (take, not fancy indexing: ~5x faster); the table
        # holds idf and coef_sparse exactly, and the arithmetic is float64 as before
        rows = self.bucket_rows.take(ids, axis=0)
        vals = (1.0 + np.log(counts)) * rows[:, 0]
        norm = float(np.sqrt(vals @ vals))
        if norm > 0:
            vals = vals / norm
        # the coefficients as one C-contiguous block (what the product was given before: a
        # strided view is ~10 us slower to cast, and changes the BLAS call's rounding)
        coef = rows.take(self._coef_columns, axis=1)
        if self.coef_sparse.ndim == 1:
            coef = coef[:, 0]
        dense = (dense_raw - self.dense_mean) / self.dense_std
        s = vals @ coef + dense @ self.coef_dense + self.bias
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


def _bucket_rows(idf: np.ndarray, coef_sparse: np.ndarray) -> np.ndarray:
    """(N_BUCKETS, 1 + K): each bucket's idf and sparse coefficients side by side, as float32 when
    that holds every value exactly (an artefact's, stored as float16 or float32), else float64.
    A prompt's ~3k buckets are then one gather of one 16-byte row each (with K = 3) instead of
    two gathers from two tables: on a cold cache the scorer's cost was mostly these misses.
    (Not float16, though exact too: numpy converts float16 to float64 ~5x slower than float32.)"""
    coef = coef_sparse.reshape(len(idf), -1)
    rows = np.empty((len(idf), 1 + coef.shape[1]), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):         # too large for float32: not exact
        rows[:, 0], rows[:, 1:] = idf, coef
    if np.array_equal(rows[:, 0], idf) and np.array_equal(rows[:, 1:], coef):
        return rows
    return np.column_stack((idf, coef)).astype(np.float64)

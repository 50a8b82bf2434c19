"""Shape, dtype and value checks of a router profile artefact's arrays (profiles.py reads them):
a corrupted or hand-made .npz is refused at load with a ValueError naming the array, instead of
predicting NaN quality or crashing on the first request."""
from __future__ import annotations

import numpy as np

# array -> the shape it must have, in the artefact's dimensions: H hashed features, D dense
# features, S scorer outputs, E embedding width (format 3: E = S; format 2, without the length
# output: E = S + 1), M trained models; () is a scalar
SHAPES = {
    "idf": ("H",), "coef_sparse": ("H", "S"), "dense_mean": ("D",), "dense_std": ("D",),
    "coef_dense": ("D", "S"), "bias": ("S",), "embeddings": ("M", "E"), "output_tokens": ("M",),
    "prior_map": (2, "E"), "trait_mean": ("S",), "prior_center": (), "prior_scale": (),
    "length_norm": (),
}
POSITIVE = ("length_norm", "output_tokens")
NOT_NEGATIVE = ("prior_scale",)      # 0: no trained model has a prior (fit_prior_map), the map is off


def check_arrays(z) -> None:
    """ValueError naming the first array of the archive `z` that is not as `save` writes it."""
    if np.shape(z["format_version"]) != () or not np.issubdtype(z["format_version"].dtype, np.integer):
        raise ValueError("its format_version is not one integer")
    models = z["models"]
    if models.ndim != 1 or not np.issubdtype(models.dtype, np.str_):
        raise ValueError("its models array is not a list of model names")
    dims: dict[str, int] = {"M": len(models)}
    for name, want in SHAPES.items():
        if name not in z:
            if name == "length_norm":
                continue
            raise ValueError(f"{name} is not in the archive")
        a = z[name]
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"its {name} array is {a.dtype}, not real numbers")
        if a.ndim != len(want) or any(dims.setdefault(d, n) != n if isinstance(d, str) else d != n
                                      for d, n in zip(want, a.shape)):
            raise ValueError(f"its {name} array has shape {a.shape}, which does not fit the others")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"its {name} array is not all finite (NaN or infinity)")
        if name in POSITIVE and not np.all(a > 0):
            raise ValueError(f"its {name} is not positive")
        if name in NOT_NEGATIVE and not np.all(a >= 0):
            raise ValueError(f"its {name} is negative")
    if dims["E"] - dims["S"] != (1 if int(z["format_version"]) == 2 else 0):
        raise ValueError(f"its embeddings are {dims['E']} wide for {dims['S']} scorer outputs")

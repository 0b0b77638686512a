"""Input checks shared by the session and the HTTP schemas: finite float32 vectors of the right size, within
a sane distance of the training data."""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_STDS = 1e4  # an input this many training standard deviations away is a units or sensor error, not a state


def as_vector(x: Any, dim: int, name: str) -> np.ndarray:
    """`x` as a finite float32 vector of `dim` entries, or a ValueError naming the field."""
    with np.errstate(over="ignore"):  # beyond float32: inf, refused below
        a = np.asarray(x, dtype=np.float32).reshape(-1)
    if a.shape != (dim,):
        raise ValueError(f"{name} must have {dim} entries, got {a.size}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite")
    return a


def check_scale(x: np.ndarray, mean: np.ndarray | float, std: np.ndarray | float, name: str) -> None:
    """A ValueError naming the entry of `x` that lies more than MAX_STDS training std devs from `mean`."""
    with np.errstate(over="ignore", invalid="ignore"):
        z = np.abs((x.astype(np.float64) - mean) / std)
    if not (z <= MAX_STDS).all():
        i = int(np.argmax(np.where(np.isfinite(z), z, np.inf)))
        raise ValueError(f"{name}[{i}] = {float(x[i]):.3g} is {float(z[i]):.3g} standard deviations from the data "
                         f"the model was trained on (limit {MAX_STDS:g}): check its units and the sensor")


def all_finite(*arrays: Any) -> bool:
    """Every entry of every array (or number) is finite."""
    return all(np.isfinite(np.asarray(a, dtype=np.float64)).all() for a in arrays)

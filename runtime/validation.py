"""Input checks shared by the session and the HTTP schemas: finite float32 vectors of the right size, within
a sane distance of the training data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .model import Runtime

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


def as_actions(actions: Any, action_dim: int) -> np.ndarray:
    """A finite action sequence (T, action_dim), T >= 1, as float32; a ValueError says what is wrong."""
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != action_dim or len(actions) == 0:
        raise ValueError(f"actions must have shape (T, {action_dim}) with T >= 1, got {actions.shape}")
    if not np.isfinite(actions).all():
        raise ValueError("actions must be finite")
    return actions


def continues(last_next_obs: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Whether a transition starting at `obs` continues one that ended at `last_next_obs` (no reset or gap
    between them): np.isclose(obs, last_next_obs, rtol=1e-5, atol=1e-6) on every entry of the last axis."""
    return np.all(np.abs(obs - last_next_obs) <= 1e-6 + 1e-5 * np.abs(last_next_obs), axis=-1)


def wrapped(diff: np.ndarray, periodic: Mapping[int, float] | None) -> np.ndarray:
    """A difference of observations (..., obs_dim) with its `periodic` dims (dim -> period) taken into
    [-period/2, period/2): a wrapped angle's change, not the wrap's jump."""
    if not periodic:
        return diff
    diff = np.array(diff, copy=True)
    for dim, period in periodic.items():
        diff[..., dim] -= period * np.round(diff[..., dim] / period)
    return diff


def continuous(next_obs: np.ndarray, obs: np.ndarray, periodic: Mapping[int, float] | None) -> np.ndarray:
    """next_obs (..., obs_dim) moved by whole periods on the `periodic` dims to within half a period of obs: a
    transition across a wrap keeps its true change (a jump is no dynamics to train on or adapt to)."""
    if not periodic:
        return next_obs
    out = np.array(next_obs, copy=True)
    dims = list(periodic)
    out[..., dims] = obs[..., dims] + wrapped(next_obs - obs, periodic)[..., dims]
    return out


def parse_transition(rt: Runtime, obs: Any, action: Any, next_obs: Any, reward: Any, where: str = "") -> tuple:
    """Validated (obs, action clipped to its bounds, next_obs, reward or None, normalized head target y (P,)) of
    one transition; a ValueError names the field (prefixed by `where`)."""
    obs = as_vector(obs, rt.obs_dim, f"{where}obs")
    action = np.clip(as_vector(action, rt.action_dim, f"{where}action"), rt.action_low, rt.action_high)
    next_obs = continuous(as_vector(next_obs, rt.obs_dim, f"{where}next_obs"), obs, rt.manifest.periodic_obs)
    r = np.float32(0.0 if reward is None else reward)
    if not np.isfinite(r):
        raise ValueError(f"{where}reward must be finite")
    check_scale(obs, rt.norm.obs_mean, rt.norm.obs_std, f"{where}obs")
    y = rt.norm.normalize_target((next_obs - obs)[None], np.array([r]))[0]  # (P,)
    check_scale(y[: rt.obs_dim], 0.0, 1.0, f"{where}next_obs - obs (normalized)")
    if reward is not None:
        check_scale(y[rt.obs_dim :], 0.0, 1.0, f"{where}reward (normalized)")
    return obs, action, next_obs, (None if reward is None else r), y

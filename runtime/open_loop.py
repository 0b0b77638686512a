"""Open-loop prediction of one model (a belief h and head W) with its per-step predictive variance: what
`Session.predict` returns for each of the two predictors a guard blends."""

from __future__ import annotations

import numpy as np

from .model import Runtime
from .modes import Mode

GAUSSIAN_LOGVAR_RANGE = (-12.0, 6.0)  # the Gaussian head's log-variance clamp (as in training)


def step_variance(rt: Runtime, mode: Mode, phi: np.ndarray, head: object) -> np.ndarray | None:
    """Predictive variance (B, P), normalized units: the mode's (its head state), else the Gaussian head's."""
    v = mode.variance(head, phi)
    if v is None and rt.params.V is not None:
        v = np.exp(np.clip(phi @ rt.params.V, *GAUSSIAN_LOGVAR_RANGE))
    return v


def open_loop(rt: Runtime, mode: Mode, obs: np.ndarray, actions: np.ndarray, h: np.ndarray, W: np.ndarray,
              head: object) -> tuple[np.ndarray, np.ndarray | None]:
    """States (T, O) of (h, W) rolled from obs (O,) under actions (T, A) [+ each step's one-step variance at the
    predicted state, raw units (T, O); not propagated]."""
    out, var, x = [], [], obs[None]  # x: (1, O)
    for a in actions:
        phi = rt.dynamics.features(x, a[None], h[None])  # (1, D)
        x = rt.norm.next_obs(x, phi @ W)
        out.append(x[0])
        if (v := step_variance(rt, mode, phi, head)) is not None:
            var.append(v[0, : rt.obs_dim] * rt.norm.delta_std**2)
    return np.stack(out), (np.stack(var) if var else None)

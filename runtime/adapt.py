"""Closed-form head adaptation in numpy: gradient steps and the Bayesian (RLS) posterior.

The head is linear, `pred = phi @ W` with phi (D,) and W (D, P), so both updates are exact
algebra; `tests/export/test_adapt_parity.py` checks them against torch autograd / the
batch posterior used in meta-training.
"""

from __future__ import annotations

import numpy as np


def head_gradient_steps(
    W0: np.ndarray, phi: np.ndarray, y: np.ndarray, step_size: np.ndarray, k: int
) -> np.ndarray:
    """`k` gradient steps from W0 on L(W) = mean_i ||phi_i W - y_i||^2.

    W0 (D, P); phi (M, D); y (M, P); step_size (P,) per output (or scalar). Returns W (D, P).
    """
    W = W0.astype(np.float64)
    phi64, y64 = phi.astype(np.float64), y.astype(np.float64)
    m = max(len(phi), 1)
    for _ in range(k):
        grad = (2.0 / m) * phi64.T @ (phi64 @ W - y64)  # (D, P)
        W = W - np.asarray(step_size, dtype=np.float64) * grad
    return W.astype(np.float32)


def _rank_one(W: np.ndarray, P: np.ndarray, phi: np.ndarray, y: np.ndarray):
    """Rank-one posterior update; also returns the prior residual (Pout,) and its scale 1 + phi^T P phi."""
    P_phi = P @ phi  # (D,)
    s = 1.0 + phi @ P_phi
    resid = y - phi @ W  # (Pout,)
    gain = P_phi / s  # (D,)
    W = W + np.outer(gain, resid)
    P = P - np.outer(gain, P_phi)
    P = 0.5 * (P + P.T)  # keep it symmetric against round-off
    return W, P, resid, s


def rls_update(W: np.ndarray, P: np.ndarray, phi: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fold one observation into the Gaussian posterior over W (rank-one, O(D^2)).

    W (D, Pout) posterior mean; P (D, D) posterior covariance factor Lambda^-1; phi (D,); y (Pout,).
    """
    return _rank_one(W, P, phi, y)[:2]


def nig_update(W: np.ndarray, P: np.ndarray, a: float, b: np.ndarray, phi: np.ndarray, y: np.ndarray,
               noise_var: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """`rls_update` plus the posterior IG(a, b) of the per-output noise scale tau, from the same P phi.

    Normal-inverse-gamma head: noise variance = noise_var * tau, W | tau ~ N(W, tau noise_var P),
    tau ~ IG(a, b): the scale grows with the prior residual normalized by its predictive variance. O(D^2).
    """
    W, P, resid, s = _rank_one(W, P, phi, y)
    return W, P, a + 0.5, b + 0.5 * resid**2 / (noise_var * s)


def noise_factor(a: float, b: np.ndarray) -> np.ndarray:
    """Variance multiplier per output from IG(a, b): E[tau] under the Student-t predictive, b/a * nu/(nu-2), nu=2a."""
    nu = 2.0 * a
    return (b / a) * nu / (nu - 2.0)


def predictive_variance(P: np.ndarray, phi: np.ndarray, noise_var: np.ndarray,
                        factor: np.ndarray | float = 1.0) -> np.ndarray:
    """Predictive variance per output: factor * noise_var * (1 + phi^T P phi). phi (B, D) -> (B, Pout).

    `factor` is `noise_factor(a, b)` when the noise scale is learned online (Student-t predictive,
    this is its exact variance), 1 for a known noise variance (Gaussian predictive).
    """
    quad = np.einsum("bd,de,be->b", phi, P, phi)  # (B,)
    return np.asarray(factor) * noise_var[None, :] * (1.0 + quad[:, None])

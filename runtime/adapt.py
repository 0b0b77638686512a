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


def rls_update(W: np.ndarray, P: np.ndarray, phi: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fold one observation into the Gaussian posterior over W (rank-one, O(D^2)).

    W (D, Pout) posterior mean; P (D, D) posterior covariance factor Lambda^-1; phi (D,); y (Pout,).
    """
    P_phi = P @ phi  # (D,)
    gain = P_phi / (1.0 + phi @ P_phi)  # (D,)
    W = W + np.outer(gain, y - phi @ W)
    P = P - np.outer(gain, P_phi)
    P = 0.5 * (P + P.T)  # keep it symmetric against round-off
    return W, P


def noise_scale_update(a: float, b: np.ndarray, W: np.ndarray, P: np.ndarray, phi: np.ndarray, y: np.ndarray,
                       noise_var: np.ndarray) -> tuple[float, np.ndarray]:
    """Fold one observation into the posterior IG(a, b) of the per-output noise scale tau.

    Normal-inverse-gamma head: noise variance = noise_var * tau, W | tau ~ N(W, tau noise_var P),
    tau ~ IG(a, b). Call with W, P *before* `rls_update` for the same observation: the scale
    grows with the prediction residual normalized by its predictive variance. O(D^2).
    """
    quad = float(phi @ P @ phi)
    resid = y - phi @ W  # (Pout,)
    return a + 0.5, b + 0.5 * resid**2 / (noise_var * (1.0 + quad))


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

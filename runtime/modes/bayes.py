"""`bayes`: the exact posterior over the head given the last `window` transitions (ALPaCA / Neural-Fly style).

Prior W ~ N(W0, tau noise_var Lambda0^-1) per output, noise scale tau ~ IG(a0, a0) when a0 > 0
(normal-inverse-gamma; Student-t predictive), known noise when a0 = 0 (Gaussian predictive). The
posterior is recomputed from the window, which is exactly what meta-training scores
(`mbmrl.train.losses.bayes_posterior`, `noise_scale_posterior`): O(m D^2 + D^3) per transition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .gradient import push_window


def bayes_posterior(W0: np.ndarray, lam0: np.ndarray, phi: np.ndarray, y: np.ndarray,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean W (D, P) and covariance factor P = Lambda^-1 (D, D) after context phi (m, D), y (m, P)."""
    lam = lam0 + phi.T @ phi  # (D, D)
    P = np.linalg.inv(lam)
    P = 0.5 * (P + P.T)
    return P @ (lam0 @ W0 + phi.T @ y), P


def noise_scale_posterior(W0: np.ndarray, lam0: np.ndarray, phi: np.ndarray, y: np.ndarray, W: np.ndarray,
                          noise_var: np.ndarray, a0: float) -> tuple[float, np.ndarray]:
    """Posterior IG(a, b) of the noise scale: a scalar, b (P,) (prior IG(a0, a0))."""
    resid = ((phi @ W - y) ** 2).sum(0)  # (P,)
    dW = W - W0
    prior = (dW * (lam0 @ dW)).sum(0)  # (P,)
    return a0 + 0.5 * len(phi), a0 + 0.5 * (resid + prior) / noise_var


def noise_factor(a: float, b: np.ndarray) -> np.ndarray:
    """Variance multiplier per output from IG(a, b): E[tau] under the Student-t predictive, b/a * nu/(nu-2), nu=2a."""
    nu = 2.0 * a
    return (b / a) * nu / (nu - 2.0)


def predictive_variance(P: np.ndarray, phi: np.ndarray, noise_var: np.ndarray,
                        factor: np.ndarray | float = 1.0) -> np.ndarray:
    """Predictive variance per output: factor * noise_var * (1 + phi^T P phi). phi (B, D) -> (B, P)."""
    quad = np.einsum("bd,de,be->b", phi, P, phi)  # (B,)
    return np.asarray(factor) * noise_var[None, :] * (1.0 + quad[:, None])


@dataclass(frozen=True)
class BayesState:
    """The window and the posterior it gives (kept so `head` and `variance` are free)."""

    phi: np.ndarray  # (m, D) float64
    y: np.ndarray  # (m, P) float64
    W: np.ndarray  # (D, P) posterior mean
    P: np.ndarray  # (D, D) posterior covariance factor
    b: np.ndarray  # (P,) noise-scale posterior rate (a = a0 + m / 2)


@dataclass(frozen=True)
class BayesHead:
    """Closed-form posterior over the head with a meta-learned prior and (a0 > 0) an online noise scale."""

    W0: np.ndarray  # (D, P)
    P0: np.ndarray  # (D, D) prior covariance factor Lambda0^-1
    noise_var: np.ndarray  # (P,)
    window: int
    noise_prior: float = 0.0
    name: str = "bayes"
    adapts_belief: bool = True
    state_type: type = BayesState
    lam0: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "lam0", np.linalg.inv(self.P0.astype(np.float64)))

    def initial_belief(self, h0: np.ndarray, task_params: dict | None) -> np.ndarray:
        """h0 (the belief adapts too)."""
        return h0.copy()

    def init(self) -> BayesState:
        """The prior: empty window, W0, P0, b = a0."""
        d, p = self.W0.shape
        return BayesState(np.zeros((0, d)), np.zeros((0, p)), self.W0.astype(np.float64),
                          self.P0.astype(np.float64), np.full(p, self.noise_prior))

    def fold(self, state: BayesState, phi: np.ndarray, y: np.ndarray) -> BayesState:
        """Slide the window and recompute the posterior from it."""
        phis = push_window(state.phi, phi.astype(np.float64), self.window)
        ys = push_window(state.y, y.astype(np.float64), self.window)
        W0 = self.W0.astype(np.float64)
        W, P = bayes_posterior(W0, self.lam0, phis, ys)
        b = state.b
        if self.noise_prior > 0:
            _, b = noise_scale_posterior(W0, self.lam0, phis, ys, W, self.noise_var.astype(np.float64),
                                         self.noise_prior)
        return BayesState(phis, ys, W, P, b)

    def head(self, state: BayesState) -> np.ndarray:
        """The posterior mean."""
        return state.W.astype(np.float32)

    def noise(self, state: BayesState) -> np.ndarray:
        """Noise variance per output (P,), scaled by the online estimate when a0 > 0."""
        nv = self.noise_var.astype(np.float64)
        if self.noise_prior <= 0:
            return nv
        return nv * noise_factor(self.noise_prior + 0.5 * len(state.phi), state.b)

    def variance(self, state: BayesState, phi: np.ndarray) -> np.ndarray:
        """Exact predictive variance (B, P): Student-t when a0 > 0, Gaussian otherwise."""
        return predictive_variance(state.P, phi.astype(np.float64), self.noise(state))

    def risk(self, state: BayesState) -> np.ndarray:
        """Covariance factor of a normalized delta: (sum of delta noise variances) P."""
        obs_dim = self.W0.shape[1] - 1
        return state.P * self.noise(state)[:obs_dim].sum()

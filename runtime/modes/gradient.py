"""`gradient`: k gradient steps on the head from W0 over the last `window` transitions (GrBAL-like).

The head is linear, so the steps are exact algebra; meta-training differentiates through the same
steps (`mbmrl.train.losses.gradient_head`) with the same window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def gradient_head(W0: np.ndarray, phi: np.ndarray, y: np.ndarray, step_size: np.ndarray, k: int) -> np.ndarray:
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


def push_window(window: np.ndarray, row: np.ndarray, size: int) -> np.ndarray:
    """Append `row` to the (m, ...) window and keep its last `size` rows."""
    return np.concatenate([window, row[None].astype(window.dtype)])[-size:]


@dataclass(frozen=True)
class GradientState:
    """The last `window` transitions' features and targets, and the head adapted on them."""

    phi: np.ndarray  # (m, D)
    y: np.ndarray  # (m, P)
    W: np.ndarray  # (D, P)


@dataclass(frozen=True)
class GradientHead:
    """Head adapted by `steps` gradient steps with a meta-learned per-output step size."""

    W0: np.ndarray  # (D, P)
    step_size: np.ndarray  # (P,)
    steps: int
    window: int
    name: str = "gradient"
    adapts_belief: bool = True
    state_type: type = GradientState

    def initial_belief(self, h0: np.ndarray, task_params: dict | None) -> np.ndarray:
        """h0 (the belief adapts too)."""
        return h0.copy()

    def init(self) -> GradientState:
        """Empty window, W0."""
        d, p = self.W0.shape
        return GradientState(np.zeros((0, d), np.float32), np.zeros((0, p), np.float32), self.W0.copy())

    def fold(self, state: GradientState, phi: np.ndarray, y: np.ndarray) -> GradientState:
        """Slide the window and redo the steps from W0."""
        phis, ys = push_window(state.phi, phi, self.window), push_window(state.y, y, self.window)
        return GradientState(phis, ys, gradient_head(self.W0, phis, ys, self.step_size, self.steps))

    def head(self, state: GradientState) -> np.ndarray:
        """The adapted W."""
        return state.W

    def variance(self, state: GradientState, phi: np.ndarray) -> None:
        """No predictive variance of its own."""
        return None

    def risk(self, state: GradientState) -> None:
        """No epistemic covariance."""
        return None

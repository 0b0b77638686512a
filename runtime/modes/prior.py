"""`none`, `recurrent` and `oracle`: the head stays at the meta-learned prior W0.

`recurrent` adapts only the belief h (the session folds each transition with the encoder); `none`
keeps h0; `oracle` sets h to the true task parameters once and keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..artifact import OracleSpec


@dataclass(frozen=True)
class NoState:
    """A head that does not adapt holds no state."""


@dataclass(frozen=True)
class PriorHead:
    """Head fixed at W0; the belief adapts (recurrent), stays at h0 (none) or is the task itself (oracle)."""

    name: str
    W0: np.ndarray  # (D, P)
    adapts_belief: bool
    oracle: OracleSpec | None = None
    state_type: type = NoState

    def initial_belief(self, h0: np.ndarray, task_params: dict | None) -> np.ndarray:
        """h0, or for an oracle the normalized true parameters."""
        return self.oracle.belief(task_params) if self.oracle is not None else h0.copy()

    def init(self) -> NoState:
        """Nothing to hold."""
        return NoState()

    def fold(self, state: NoState, phi: np.ndarray, y: np.ndarray) -> NoState:
        """The head ignores transitions."""
        return state

    def head(self, state: NoState) -> np.ndarray:
        """W0."""
        return self.W0

    def variance(self, state: NoState, phi: np.ndarray) -> None:
        """No predictive variance of its own."""
        return None

    def risk(self, state: NoState) -> None:
        """No epistemic covariance."""
        return None

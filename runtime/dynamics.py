"""The `Dynamics` protocol: the three pure graphs a `Session` needs, on any engine.

`mbmrl.runtime.onnx_dynamics.OnnxDynamics` runs the exported ONNX graphs; `mbmrl.train.torch_dynamics`
runs the torch model they were exported from. Both take and return numpy arrays, so one `Session`
(adaptation + planning) drives either. `CostTerms` is the cost part of the rollout's inputs, built here
and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .cost import Cost

# the rollout graphs' inputs, in order (export names its ONNX inputs with these): the plain graph, and the
# risk variant, which adds the term uncertainty_weight * phi^T w_cov phi per step. Graphs exported before the
# linear state term (artifact format 2) take the same inputs without "linear"; they plan while it is zero.
ROLLOUT_INPUTS = ("obs", "h", "W", "actions", "target", "q", "r", "terminal_weight", "reward_weight", "linear")
ROLLOUT_RISK_INPUTS = (*ROLLOUT_INPUTS, "w_cov", "uncertainty_weight")


@dataclass(frozen=True)
class CostTerms:
    """The rollout's cost inputs for one horizon, as float32 arrays (DESIGN §3)."""

    target: np.ndarray  # (H, obs_dim)
    q: np.ndarray  # (obs_dim,)
    r: np.ndarray  # (act_dim,)
    terminal_weight: np.ndarray  # (1,)
    reward_weight: np.ndarray  # (1,): of the learned reward (a known reward is in linear and r)
    linear: np.ndarray  # (obs_dim,)
    w_cov: np.ndarray  # (D, D) risk weight: phi^T w_cov phi (zeros: no risk term, the plain graph runs)
    uncertainty_weight: np.ndarray  # (1,)

    @classmethod
    def build(cls, cost: Cost, horizon: int, feature_dim: int, w_cov: np.ndarray | None = None,
              start: int = 0) -> CostTerms:
        """Terms of `cost` over `horizon` steps from reference step `start`; `w_cov` None means no risk term."""
        scalar = lambda v: np.array([v], dtype=np.float32)  # noqa: E731
        target = cost.target_for(horizon, start)
        linear, r, reward_weight = cost.state_and_action_terms(target.shape[1])
        return cls(
            target=target, q=cost.q.astype(np.float32), r=r,
            terminal_weight=scalar(cost.terminal_weight), reward_weight=scalar(reward_weight), linear=linear,
            w_cov=(np.zeros((feature_dim, feature_dim), np.float32) if w_cov is None
                   else np.asarray(w_cov, dtype=np.float32)),
            uncertainty_weight=scalar(cost.uncertainty_weight),
        )

    @property
    def horizon(self) -> int:
        """Steps these terms cover."""
        return int(self.target.shape[0])

    @property
    def risk(self) -> bool:
        """Whether the risk term is on (a positive weight on a non-zero w_cov): then the risk graph runs."""
        return bool(self.uncertainty_weight.reshape(-1)[0] > 0) and bool(np.any(self.w_cov))

    def arrays(self, risk: bool | None = None) -> tuple[np.ndarray, ...]:
        """In `ROLLOUT_INPUTS` order (after obs, h, W, actions), or `ROLLOUT_RISK_INPUTS` order for the risk
        graph (`risk` None: as `self.risk` says)."""
        plain = (self.target, self.q, self.r, self.terminal_weight, self.reward_weight, self.linear)
        return (*plain, self.w_cov, self.uncertainty_weight) if (self.risk if risk is None else risk) else plain


def rollout_feeds(obs: np.ndarray, h: np.ndarray, W: np.ndarray, actions: np.ndarray, terms: CostTerms,
                  risk: bool | None = None, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """A rollout graph's named inputs: obs (O,), h (hidden,), W (D, P), actions (N, H, A), then the cost terms.

    The plain graph's ten (`ROLLOUT_INPUTS`), or the risk graph's twelve (`ROLLOUT_RISK_INPUTS`) when `risk`
    (None: `terms.risk`); `names`, a graph's own inputs, picks those (a format-2 graph without "linear" runs
    only while the linear term is zero: a ValueError says to re-export otherwise).
    """
    risk = terms.risk if risk is None else risk
    head = (obs.reshape(1, -1).astype(np.float32), h.reshape(1, -1).astype(np.float32), W.astype(np.float32),
            actions.astype(np.float32))
    feeds = dict(zip(ROLLOUT_RISK_INPUTS if risk else ROLLOUT_INPUTS, head + terms.arrays(risk), strict=True))
    if names is None:
        return feeds
    if "linear" not in names and np.any(feeds["linear"]):
        raise ValueError("this artifact's rollout graph has no linear state term (cost.linear, or a known reward "
                         "with reward_source 'known'); re-export the run with this mbmrl: `mbmrl export RUN`")
    return {k: feeds[k] for k in names}


class Dynamics(Protocol):
    """Pure graphs over numpy arrays; state (h, W) goes in and comes out."""

    horizons: list[int] | None
    """Rollout horizons this engine can run (None: any)."""

    def features(self, obs: np.ndarray, action: np.ndarray, h: np.ndarray) -> np.ndarray:
        """phi(obs, action, h): (B, O), (B, A), (B, hidden) -> (B, D)."""
        ...

    def encoder_step(self, h: np.ndarray, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray,
                     reward: np.ndarray) -> np.ndarray:
        """Fold transitions into beliefs: (B, hidden), (B, O), (B, A), (B, O), (B, 1) -> (B, hidden)."""
        ...

    def rollout(self, obs: np.ndarray, h: np.ndarray, W: np.ndarray, actions: np.ndarray,
                terms: CostTerms) -> tuple[np.ndarray, np.ndarray]:
        """Roll N action sequences and cost them: obs (O,), h (hidden,), W (D, P), actions (N, H, A)
        -> costs (N,), states (N, H, O)."""
        ...

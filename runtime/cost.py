"""The quadratic planning cost (DESIGN §3, contract).

cost = sum_t w_t (o_t - target_t)^T diag(q) (o_t - target_t) + a_t^T diag(r) a_t - reward_weight * r_t
       + uncertainty_weight * u_t,
with w_t = 1 except the last step, weighted by `terminal_weight`, and u_t the epistemic variance of the
predicted (normalized) delta under the session's Bayesian head (zero in other modes): a risk term
that keeps plans where the adapted model knows the dynamics. It is evaluated inside
`rollout.onnx`; this module only validates and shapes its terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cost:
    """Cost terms; `target` is one obs vector (obs_dim,) or a per-step reference (H, obs_dim)."""

    target: np.ndarray
    q: np.ndarray
    r: np.ndarray
    terminal_weight: float = 1.0
    reward_weight: float = 0.0
    uncertainty_weight: float = 0.0

    @classmethod
    def from_dict(cls, d: dict, obs_dim: int, action_dim: int) -> Cost:
        """Build from a JSON-like dict, checking every dimension."""
        unknown = set(d) - {"target", "q", "r", "terminal_weight", "reward_weight", "uncertainty_weight"}
        if unknown:
            raise ValueError(f"cost: unknown fields {sorted(unknown)}")
        target = np.asarray(d["target"], dtype=np.float32)
        q = np.asarray(d["q"], dtype=np.float32)
        r = np.asarray(d["r"], dtype=np.float32)
        if target.ndim not in (1, 2) or target.shape[-1] != obs_dim:
            raise ValueError(f"cost.target must have shape ({obs_dim},) or (H, {obs_dim}), got {target.shape}")
        if q.shape != (obs_dim,):
            raise ValueError(f"cost.q must have {obs_dim} entries, got shape {q.shape}")
        if r.shape != (action_dim,):
            raise ValueError(f"cost.r must have {action_dim} entries, got shape {r.shape}")
        cost = cls(target, q, r, float(d.get("terminal_weight", 1.0)), float(d.get("reward_weight", 0.0)),
                   float(d.get("uncertainty_weight", 0.0)))
        if cost.uncertainty_weight < 0:
            raise ValueError("cost.uncertainty_weight must be >= 0 (it penalizes uncertainty)")
        for name, v in (("target", target), ("q", q), ("r", r)):
            if not np.isfinite(v).all():
                raise ValueError(f"cost.{name} must be finite")
        if (q < 0).any() or (r < 0).any():
            raise ValueError("cost.q and cost.r must be non-negative (it is a cost to minimize)")
        return cost

    def merged(self, overrides: dict | None, obs_dim: int, action_dim: int) -> Cost:
        """This cost with some fields replaced (e.g. a per-request target)."""
        if not overrides:
            return self
        return Cost.from_dict({**self.to_dict(), **overrides}, obs_dim, action_dim)

    def target_for(self, horizon: int, start: int = 0) -> np.ndarray:
        """Per-step targets (H, obs_dim); a reference longer than H is read from `start`."""
        if self.target.ndim == 1:
            return np.broadcast_to(self.target, (horizon, self.target.shape[0])).astype(np.float32)
        ref = self.target[start : start + horizon]
        if ref.shape[0] < horizon:  # hold the reference's last point past its end
            ref = np.concatenate([ref, np.repeat(self.target[-1:], horizon - ref.shape[0], axis=0)])
        return ref.astype(np.float32)

    def to_dict(self) -> dict:
        """As a JSON object (the shape `from_dict` reads)."""
        return {
            "target": self.target.tolist(),
            "q": self.q.tolist(),
            "r": self.r.tolist(),
            "terminal_weight": self.terminal_weight,
            "reward_weight": self.reward_weight,
            "uncertainty_weight": self.uncertainty_weight,
        }

"""The quadratic planning cost (DESIGN §3, contract).

cost = sum_t w_t [(o_t - target_t)^T diag(q) (o_t - target_t) + linear^T o_t] + a_t^T diag(r) a_t
       - reward_weight * r_t + uncertainty_weight * u_t,
with w_t = 1 except the last step, weighted by `terminal_weight`, and u_t the epistemic variance of the
predicted (normalized) delta under the session's Bayesian head (zero in other modes): a risk term
that keeps plans where the adapted model knows the dynamics. It is evaluated inside
`rollout.onnx`; this module only validates and shapes its terms.

The reward r_t is the model's learned reward head (`reward_source` "learned") or, where the family
declares its reward in closed form (`reward`: r_t = reward.linear^T o_t - a_t^T diag(reward.r) a_t, e.g. a
MuJoCo runner's forward velocity minus its control cost), that known reward (`reward_source` "known"):
`CostTerms` folds it into the linear and action terms, so the one rollout graph evaluates either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FIELDS = ("target", "q", "r", "terminal_weight", "reward_weight", "uncertainty_weight", "linear", "reward_source",
          "reward")
REWARD_SOURCES = ("learned", "known")


@dataclass(frozen=True)
class KnownReward:
    """A reward in closed form: r_t = linear^T o_t - a_t^T diag(r) a_t, with o_t the state after step t."""

    linear: np.ndarray  # (obs_dim,)
    r: np.ndarray  # (action_dim,)

    @classmethod
    def from_dict(cls, d: dict, obs_dim: int, action_dim: int) -> KnownReward:
        """Build from {"linear": [obs_dim], "r": [action_dim]}, checking every dimension."""
        if not isinstance(d, dict) or set(d) != {"linear", "r"}:
            raise ValueError('cost.reward must be {"linear": [obs_dim floats], "r": [action_dim floats]}')
        linear, r = np.asarray(d["linear"], dtype=np.float32), np.asarray(d["r"], dtype=np.float32)
        if linear.shape != (obs_dim,) or r.shape != (action_dim,):
            raise ValueError(f"cost.reward.linear must have {obs_dim} entries and cost.reward.r {action_dim}, got "
                             f"shapes {linear.shape} and {r.shape}")
        if not (np.isfinite(linear).all() and np.isfinite(r).all()):
            raise ValueError("cost.reward must be finite")
        return cls(linear, r)

    def to_dict(self) -> dict:
        """As a JSON object (the shape `from_dict` reads)."""
        return {"linear": self.linear.tolist(), "r": self.r.tolist()}


@dataclass(frozen=True)
class Cost:
    """Cost terms; `target` is one obs vector (obs_dim,) or a per-step reference (H, obs_dim)."""

    target: np.ndarray
    q: np.ndarray
    r: np.ndarray
    terminal_weight: float = 1.0
    reward_weight: float = 0.0
    uncertainty_weight: float = 0.0
    linear: np.ndarray | None = field(default=None)
    """(obs_dim,) linear state term; None: zero."""
    reward_source: str = "learned"
    """'learned' (the model's reward head) or 'known' (`reward`, the family's closed-form reward)."""
    reward: KnownReward | None = None

    @classmethod
    def from_dict(cls, d: dict, obs_dim: int, action_dim: int) -> Cost:
        """Build from a JSON-like dict, checking every dimension."""
        unknown = set(d) - set(FIELDS)
        if unknown:
            raise ValueError(f"cost: unknown fields {sorted(unknown)}; known: {list(FIELDS)}")
        target = np.asarray(d["target"], dtype=np.float32)
        q = np.asarray(d["q"], dtype=np.float32)
        r = np.asarray(d["r"], dtype=np.float32)
        if target.ndim not in (1, 2) or target.shape[-1] != obs_dim:
            raise ValueError(f"cost.target must have shape ({obs_dim},) or (H, {obs_dim}), got {target.shape}")
        if q.shape != (obs_dim,):
            raise ValueError(f"cost.q must have {obs_dim} entries, got shape {q.shape}")
        if r.shape != (action_dim,):
            raise ValueError(f"cost.r must have {action_dim} entries, got shape {r.shape}")
        linear = None if d.get("linear") is None else np.asarray(d["linear"], dtype=np.float32)
        if linear is not None and (linear.shape != (obs_dim,) or not np.isfinite(linear).all()):
            raise ValueError(f"cost.linear must have {obs_dim} finite entries, got shape {linear.shape}")
        source = d.get("reward_source", "learned")
        if source not in REWARD_SOURCES:
            raise ValueError(f"cost.reward_source must be one of {list(REWARD_SOURCES)}, got {source!r}")
        reward = None if d.get("reward") is None else KnownReward.from_dict(d["reward"], obs_dim, action_dim)
        if source == "known" and reward is None:
            raise ValueError("cost.reward_source is 'known' but the cost declares no closed-form reward "
                             "(cost.reward); this family's reward is learned only: use reward_source 'learned'")
        cost = cls(target, q, r, float(d.get("terminal_weight", 1.0)), float(d.get("reward_weight", 0.0)),
                   float(d.get("uncertainty_weight", 0.0)), linear, source, reward)
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
            "linear": None if self.linear is None else self.linear.tolist(),
            "reward_source": self.reward_source,
            "reward": None if self.reward is None else self.reward.to_dict(),
        }

    def state_and_action_terms(self, obs_dim: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(linear (O,), r (A,), weight of the learned reward): a known reward folded into the first two."""
        linear = np.zeros(obs_dim, np.float32) if self.linear is None else self.linear.astype(np.float32)
        if self.reward_source != "known" or self.reward is None:
            return linear, self.r.astype(np.float32), self.reward_weight
        w = self.reward_weight  # cost -= w * (reward.linear^T o - a^T diag(reward.r) a)
        folded = (linear - w * self.reward.linear, self.r + w * self.reward.r)
        return folded[0].astype(np.float32), folded[1].astype(np.float32), 0.0

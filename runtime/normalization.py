"""`Normalization`: the statistics that map raw units to the model's normalized units (numpy twin of
`DynamicsModel.targets` / `.next_obs` / `.reward`; `tests/export/test_export.py` checks the pair)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


@dataclass(frozen=True)
class Normalization:
    """Statistics that map raw units to the model's normalized units (travel with the model)."""

    obs_mean: np.ndarray  # (obs_dim,)
    obs_std: np.ndarray  # (obs_dim,)
    delta_mean: np.ndarray  # (obs_dim,)
    delta_std: np.ndarray  # (obs_dim,)
    reward_mean: float
    reward_std: float

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        """From the manifest's JSON object."""
        return cls(_f32(d["obs_mean"]), _f32(d["obs_std"]), _f32(d["delta_mean"]), _f32(d["delta_std"]),
                   float(d["reward_mean"]), float(d["reward_std"]))

    def to_dict(self) -> dict:
        """As a JSON object."""
        return {"obs_mean": self.obs_mean.tolist(), "obs_std": self.obs_std.tolist(),
                "delta_mean": self.delta_mean.tolist(), "delta_std": self.delta_std.tolist(),
                "reward_mean": self.reward_mean, "reward_std": self.reward_std}

    def normalize_target(self, delta: np.ndarray, reward: np.ndarray) -> np.ndarray:
        """(B, obs_dim), (B,) raw -> (B, obs_dim + 1) normalized head targets (`DynamicsModel.targets`)."""
        d = (delta - self.delta_mean) / self.delta_std
        r = (reward - self.reward_mean) / self.reward_std
        return np.concatenate([d, r[:, None]], axis=1).astype(np.float32)

    def next_obs(self, obs: np.ndarray, head_out: np.ndarray) -> np.ndarray:
        """Raw next observation from normalized head output (`DynamicsModel.next_obs`). (B, O), (B, P) -> (B, O)."""
        d = head_out[:, : len(self.delta_std)] * self.delta_std + self.delta_mean
        return (obs + d).astype(np.float32)

    def reward(self, head_out: np.ndarray) -> np.ndarray:
        """Raw reward from normalized head output. (B, P) -> (B,)."""
        return head_out[:, len(self.delta_std)] * self.reward_std + self.reward_mean

"""`run_episode`: the one environment loop, for data collection, exploration, evaluation and the examples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Policy = Callable[[np.ndarray], np.ndarray]  # obs (O,) -> action (A,)
Observer = Callable[[np.ndarray, np.ndarray, np.ndarray, float], Any]  # (obs, action, next_obs, reward)


@dataclass
class Episode:
    """One episode's transitions (T of them) and the env's per-step info dicts."""

    obs: np.ndarray  # (T, O)
    actions: np.ndarray  # (T, A)
    next_obs: np.ndarray  # (T, O)
    rewards: np.ndarray  # (T,)
    infos: list[dict] = field(default_factory=list)

    @property
    def total_reward(self) -> float:
        """The episode return (undiscounted)."""
        return float(self.rewards.astype(np.float64).sum())

    def arrays(self) -> dict[str, np.ndarray]:
        """The transitions as a dict of arrays (what segments and evaluation streams are cut from)."""
        return {"obs": self.obs, "actions": self.actions, "next_obs": self.next_obs, "rewards": self.rewards}


def run_episode(env, act: Policy, steps: int, seed: int | None = None, observe: Observer | None = None) -> Episode:
    """Run `act` for up to `steps` steps from `env.reset(seed=seed)`; `observe` sees every transition
    (e.g. a session adapting online). Stops early when the env terminates or truncates."""
    obs, _ = env.reset(seed=seed)
    rec: dict[str, list] = {"obs": [], "actions": [], "next_obs": [], "rewards": []}
    infos = []
    for _ in range(steps):
        a = np.asarray(act(obs), dtype=np.float32)
        nxt, r, term, trunc, info = env.step(a)
        if observe is not None:
            observe(obs, a, nxt, float(r))
        for k, v in zip(rec, (obs, a, nxt, r), strict=True):
            rec[k].append(v)
        infos.append(info)
        obs = nxt
        if term or trunc:
            break
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in rec.items()}
    return Episode(arrays["obs"], arrays["actions"], arrays["next_obs"], arrays["rewards"], infos)


def replay(actions: np.ndarray) -> Policy:
    """A policy that plays a fixed action sequence (T, A), ignoring observations."""
    it = iter(actions)
    return lambda obs: next(it)

"""Plain records shared by the in-process `Session` and the HTTP client (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class ActResult:
    """What `act` returns: the action to apply now and the plan behind it."""

    action: np.ndarray  # (act_dim,)
    plan: np.ndarray  # (H, act_dim)
    predicted_obs: np.ndarray  # (H, obs_dim)
    """The plan's predicted states: the planner's weighted average of its sampled trajectories (the plan is the
    same average of their actions), from the planning call itself; `Session.predict(obs, plan)` rolls the plan
    alone (equal for one sample, within a small fraction of the state scale otherwise)."""
    expected_cost: float
    """The same weighted average of the sampled sequences' costs."""
    fallback: bool = False
    """True when planning produced non-finite numbers and the session kept its last finite plan."""
    samples_used: int = 0
    """Action sequences sampled per iteration (fewer than planner.samples when a deadline asked for it)."""
    plan_ms: float = 0.0
    """Wall time of the plan (sampling iterations and the plan's states), in milliseconds."""
    guard: dict | None = None
    """The adaptation guard: the model planned with ('adapted' or 'prior') and the running errors of both
    (`mbmrl.runtime.guard.guard_report`); None for a session without a guard."""


class PlanningError(RuntimeError):
    """Even the fallback plan gives non-finite predictions: nothing trustworthy to answer (HTTP 503)."""


def jsonable(x: Any) -> Any:
    """numpy arrays and scalars -> plain lists and floats (recursively through dicts and lists)."""
    if isinstance(x, np.ndarray | np.generic):
        return x.tolist()
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    return x

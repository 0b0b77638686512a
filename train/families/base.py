"""Task families: a Gymnasium env constructor plus a space of physical parameters.

A family samples parameters from a `train` space and from disjoint `test` splits
(extrapolation, as in CaDM), and builds an env for given parameters. Writing one
for your own env takes a few lines; see `examples/custom_family.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from mbmrl.runtime.reference import Reference, ReferenceLayout

Params = dict[str, float]


@dataclass(frozen=True)
class Choice:
    """A parameter drawn uniformly from a finite set (the CaDM protocol)."""

    values: tuple[float, ...]

    def sample(self, rng: np.random.Generator) -> float:
        """One of the values, uniformly."""
        return float(self.values[int(rng.integers(len(self.values)))])


@dataclass(frozen=True)
class Uniform:
    """A parameter drawn uniformly from the interval [low, high]."""

    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        """A value in [low, high], uniformly."""
        return float(rng.uniform(self.low, self.high))


ParamDist = Choice | Uniform
ParamSpace = Mapping[str, ParamDist]


def box_bounds(space: gym.Space) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds (float32) of a continuous (Box) space; a TypeError for any other space."""
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"mbmrl plans over continuous (Box) spaces, got {space}")
    return space.low.astype(np.float32), space.high.astype(np.float32)


def sample_params(space: ParamSpace, rng: np.random.Generator) -> Params:
    """Draw one task: each parameter independently from its distribution."""
    return {name: dist.sample(rng) for name, dist in space.items()}


def enumerate_params(space: ParamSpace) -> list[Params]:
    """All combinations of a space made only of `Choice`s (a grid of test tasks)."""
    grid: list[Params] = [{}]
    for name, dist in space.items():
        if not isinstance(dist, Choice):
            raise TypeError(f"enumerate_params needs Choice parameters; {name!r} is {dist!r}")
        grid = [{**p, name: float(v)} for p in grid for v in dist.values]
    return grid


@dataclass(frozen=True)
class CostSpec:
    """Default quadratic planning cost (DESIGN §3): sum_t (o-target)^T Q (o-target) + a^T R a."""

    target: tuple[float, ...]
    q: tuple[float, ...]
    r: tuple[float, ...]
    terminal_weight: float = 1.0
    reward_weight: float = 0.0
    uncertainty_weight: float = 0.0
    reward_linear: tuple[float, ...] | None = None
    """The family's reward in closed form, where it has one: r = reward_linear . next_obs - a^T diag(reward_r) a
    (e.g. forward velocity minus the control cost); sessions plan with it under reward_source 'known'."""
    reward_r: tuple[float, ...] | None = None
    reward_source: str = "learned"

    def to_dict(self) -> dict:
        """As a JSON object (the runtime's `Cost.from_dict` reads it)."""
        d = {
            "target": list(self.target),
            "q": list(self.q),
            "r": list(self.r),
            "terminal_weight": self.terminal_weight,
            "reward_weight": self.reward_weight,
            "uncertainty_weight": self.uncertainty_weight,
        }
        if self.reward_linear is not None:
            d["reward"] = {"linear": list(self.reward_linear), "r": list(self.reward_r or (0.0,) * len(self.r))}
        if self.reward_source != "learned":
            d["reward_source"] = self.reward_source
        return d

    def merged(self, overrides: Mapping) -> CostSpec:
        """This cost with some fields replaced by a JSON object of `to_dict`'s keys (`mbmrl train --cost`),
        checked as the runtime checks a session's cost (`Cost.from_dict`: dimensions, the closed-form reward, the
        uncertainty weight's sign)."""
        from mbmrl.runtime.cost import FIELDS, Cost

        allowed = set(FIELDS) - {"linear"}  # a CostSpec has no free linear term (only the reward's)
        if not isinstance(overrides, Mapping) or set(overrides) - allowed:
            raise ValueError(f"a family cost override must be a JSON object with keys from {sorted(allowed)}, got "
                             f"{sorted(overrides) if isinstance(overrides, Mapping) else overrides!r}")
        d = {**self.to_dict(), **overrides}
        c = Cost.from_dict(d, len(self.q), len(self.r))  # raises with the runtime's own message
        if c.target.ndim != 1:
            raise ValueError("a family cost override's target must be one observation vector, not a reference")
        floats = lambda xs: tuple(float(x) for x in xs)  # noqa: E731  (the JSON's own values, not float32's)
        reward = d.get("reward")
        return CostSpec(target=floats(d["target"]), q=floats(d["q"]), r=floats(d["r"]),
                        terminal_weight=c.terminal_weight, reward_weight=c.reward_weight,
                        uncertainty_weight=c.uncertainty_weight,
                        reward_linear=None if reward is None else floats(reward["linear"]),
                        reward_r=None if reward is None else floats(reward["r"]), reward_source=c.reward_source)

    @classmethod
    def forward_reward(cls, obs_dim: int, action_dim: int, velocity_index: int, ctrl_cost: float) -> CostSpec:
        """A runner's own reward as the cost (`reward_source` 'known'): obs[velocity_index] - ctrl_cost |a|^2."""
        forward = [0.0] * obs_dim
        forward[velocity_index] = 1.0
        return cls(target=(0.0,) * obs_dim, q=(0.0,) * obs_dim, r=(0.0,) * action_dim, reward_weight=1.0,
                   reward_linear=tuple(forward), reward_r=(ctrl_cost,) * action_dim, reward_source="known")


@dataclass(frozen=True)
class TaskFamily:
    """A distribution of tasks: the same system with randomized physics.

    `make_env(params, start)` returns a Gymnasium env whose physics are `params`;
    `start` names a start-state distribution (every family supports "default").
    """

    name: str
    make_env: Callable[[Params, str], gym.Env]
    train: ParamSpace
    test_splits: Mapping[str, tuple[ParamSpace, ...]]
    episode_steps: int
    default_cost: CostSpec
    obs_names: tuple[str, ...]
    action_names: tuple[str, ...]
    eval_start: str = "default"
    default_planner: Mapping[str, float | str] = field(default_factory=dict)
    description: str = ""
    reference: ReferenceLayout | None = None
    """Which obs entries a reference trajectory feeds (position, velocity) and the control period; None: the
    family tracks no references."""
    control_tasks: Mapping[str, Reference] = field(default_factory=dict)
    """Named tracking tasks (e.g. hover, figure8) that `mbmrl eval --control-tasks` flies."""
    baselines: Mapping[str, Callable[[Reference], Callable[[np.ndarray], np.ndarray]]] = field(default_factory=dict)
    """Classical controllers flown beside the modes in tracking evaluations: name -> (reference -> policy)."""
    actuation_needed: Callable[[Params, Reference, float, float], float] | None = None
    """(params, reference, wind speed, gust) -> the peak share of the actuators' limit that following the reference
    exactly takes (above 1: no controller can); reported beside tracking errors."""
    periodic_obs: Mapping[int, float] = field(default_factory=dict)
    """Observation dims the env wraps (dim -> period, e.g. an angle kept in a 2pi window): a transition across the
    wrap jumps by a period that is no dynamics, so training takes its delta modulo the period
    (`Segments.continuous`)."""
    default_guard: Mapping[str, float] = field(default_factory=dict)
    """The adaptation guard's settings for this family's sessions (`GuardConfig` fields; empty: the runtime's
    defaults), carried in the manifest as `default_guard`."""
    default_gain: Mapping[str, float] = field(default_factory=dict)
    """Actuator-gain adaptation of this family's sessions (`GainConfig` fields; empty: off), carried in the
    manifest as `default_gain`: for families whose test robots are heavier than the trained ones."""

    @property
    def param_names(self) -> tuple[str, ...]:
        """Parameter names, in the train space's order."""
        return tuple(self.train.keys())

    def split_names(self, split: str = "test") -> list[str]:
        """The test splits `split` names: "test" (all), one split name or several, comma-separated."""
        names = list(self.test_splits) if split == "test" else [x.strip() for x in split.split(",")]
        if unknown := [name for name in names if name not in self.test_splits]:
            raise ValueError(f"family {self.name!r} has no split {unknown[0]!r}; known: "
                             f"{', '.join(self.test_splits)} (or 'test' for all, or several comma-separated)")
        return names

    def test_tasks(self, split: str = "test") -> list[tuple[str, Params]]:
        """Every (split name, params) of the test grid; `split` as in `split_names`."""
        return [(name, p) for name in self.split_names(split) for space in self.test_splits[name]
                for p in enumerate_params(space)]

    def param_ranges(self) -> dict:
        """JSON-able description of the train and test spaces (for manifests and docs)."""

        def describe(space: ParamSpace) -> dict:
            return {
                k: ({"choice": list(v.values)} if isinstance(v, Choice) else {"uniform": [v.low, v.high]})
                for k, v in space.items()
            }

        return {
            "train": describe(self.train),
            "test": {k: [describe(s) for s in v] for k, v in self.test_splits.items()},
        }

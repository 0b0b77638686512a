"""Actuator-gain adaptation: how much weaker the plant's actuators are than the model's, from observed transitions.

A heavier robot (a payload, every body heavier) or a weaker motor accelerates less per unit of action than the
robot the model was trained on. When masses and joint dampings scale together by m, the equations of motion
are the nominal ones with the actions divided by m: the heavy robot *is* the trained robot driven by a / m. A
session with gain adaptation therefore estimates a gain g >= 1 and runs the model on a / g: it plans model-unit
actions u in [low / g, high / g], sends the plant g * u (paying the control cost of u, or of g * u with
`plant_cost`), and folds every observed transition into its belief with the action a / g. The model never sees
an input outside its training range.

g is the grid value (geometric from 1 to `max_gain`) with the lowest running error (forgetting) of the prior
model (h0, W0: mode `none`) predicting the last `window` transitions, open-loop over `horizon` steps, with the
actions divided by g. Gains below 1 (a stronger plant) are not modelled: the model would have to
take actions beyond the range it was trained on, and planning on the model as it is did better (docs/cadm.md).
While g is at least `plan_above`, a session can plan over a shorter `plan_horizon`: the heavy robot is the trained
one only approximately, and the model's error compounds over a long horizon (`gain_planner`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np

from .artifact import ArtifactError, Manifest
from .model import Runtime
from .planner import PlannerConfig
from .validation import continues, wrapped

Features = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # obs (B,O), action (B,A), h (B,H) -> (B,D)
NextObs = Callable[[np.ndarray, np.ndarray], np.ndarray]  # obs (B,O), head output (B,P) -> next obs (B,O)
T = TypeVar("T", bound=Any)


@dataclass(frozen=True)
class GainConfig:
    """How a session estimates its actuator gain (the half-cheetah's defaults: docs/cadm.md, "Actuator gain")."""

    max_gain: float = 2.5
    """Largest gain considered (the plant's actuators at 1 / max_gain of the model's)."""
    grid: int = 16
    """Gains tried, geometric from 1 to `max_gain`."""
    horizon: int = 1
    """Open-loop steps of each scored sequence (1: the next step; on validation half-cheetahs as good as 10 steps,
    at a tenth of the compute: docs/cadm.md)."""
    window: int = 32
    """Most recent transitions kept and scored."""
    every: int = 4
    """Re-estimate after this many transitions."""
    forget: float = 0.95
    """Weight of the past in each gain's running error per estimate (a plant's gain changes seldom: a steady
    estimate plans better than the last window's argmin, measured in docs/cadm.md)."""
    dims: tuple[int, ...] = ()
    """Observation dims scored (empty: all), in units of the model's delta std."""
    plant_cost: bool = False
    """Plan paying the control cost of the plant's action g u (True) or of the model's u (False: the trade-off
    the model's training data were planned with; measured to plan better on heavy half-cheetahs, docs/cadm.md)."""
    plan_horizon: int = 0
    """While the gain is at least `plan_above`, plan over this many steps if fewer than the planner's (0: never; else
    an exported horizon): a plant outside the training range is predicted less well far ahead (docs/cadm.md)."""
    plan_above: float = 1.15
    """The gain from which `plan_horizon` applies (on the default grid 1.2 is the first above 1.15; half-cheetahs of
    the training physics estimate 1.0-1.06, heavier ones of 1.4 and more 1.2-1.44: docs/cadm.md)."""

    def validate(self, obs_dim: int | None = None, horizons: list[int] | None = None) -> None:
        """ValueError naming the first setting out of range (`horizons`: the engine's, None: any)."""
        if not 1.0 < self.max_gain <= 100.0:
            raise ValueError(f"gain.max_gain must be in (1, 100], got {self.max_gain}")
        if not 2 <= self.grid <= 256:
            raise ValueError(f"gain.grid must be in [2, 256], got {self.grid}")
        # disjoint ranges (horizon < 16 <= window): every combination the HTTP schema admits is a valid one
        if not 1 <= self.horizon <= 15:
            raise ValueError(f"gain.horizon must be in [1, 15], got {self.horizon}")
        if not 16 <= self.window <= 1024:
            raise ValueError(f"gain.window must be in [16, 1024], got {self.window}")
        if self.every < 1:
            raise ValueError(f"gain.every must be >= 1, got {self.every}")
        if not 0.0 <= self.forget < 1.0:
            raise ValueError(f"gain.forget must be in [0, 1), got {self.forget}")
        if obs_dim is not None and not all(0 <= d < obs_dim for d in self.dims):
            raise ValueError(f"gain.dims must be obs dims in [0, {obs_dim}), got {list(self.dims)}")
        if self.plan_horizon < 0 or (self.plan_horizon and horizons is not None and self.plan_horizon not in horizons):
            raise ValueError(f"gain.plan_horizon must be 0 or an exported horizon {horizons}, got {self.plan_horizon}")
        if not 1.0 <= self.plan_above <= 100.0:
            raise ValueError(f"gain.plan_above must be in [1, 100], got {self.plan_above}")

    def gains(self) -> np.ndarray:
        """The gains tried (grid,), 1 first (read-only: one array per grid, not one per transition)."""
        return _geometric_grid(self.max_gain, self.grid)

    def to_dict(self) -> dict:
        """As a JSON object (the shape `from_dict` reads)."""
        return {f.name: (list(getattr(self, f.name)) if f.name == "dims" else getattr(self, f.name))
                for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping, base: GainConfig | None = None, obs_dim: int | None = None,
                  horizons: list[int] | None = None) -> GainConfig:
        """From a JSON object, its fields replacing `base`'s (default: the runtime's); unknown fields are an error."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"gain: unknown fields {sorted(unknown)}; expected {[f.name for f in fields(cls)]}")
        d = dict(d)
        if "dims" in d:
            d["dims"] = tuple(int(x) for x in d["dims"])
        cfg = replace(base or cls(), **d)
        cfg.validate(obs_dim, horizons)
        return cfg


@lru_cache(maxsize=32)
def _geometric_grid(max_gain: float, grid: int) -> np.ndarray:
    out = np.geomspace(1.0, max_gain, grid).astype(np.float32)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class GainState:
    """The kept transitions and the current gain (arrays, so a session's state_dict holds them)."""

    obs: np.ndarray  # (window, O), oldest first; the last `n` rows are filled
    actions: np.ndarray  # (window, A) as the plant received them
    next_obs: np.ndarray  # (window, O)
    linked: np.ndarray  # (window,) bool: the transition continues the one before it
    n: np.ndarray  # () transitions kept
    since: np.ndarray  # () transitions since the last estimate
    scores: np.ndarray  # (grid,) each gain's running open-loop error (nan: no estimate yet)
    gain: np.ndarray  # () the current gain, >= 1: the lowest score's
    errors: np.ndarray  # (window, grid) each gain's error on the sequence ending at that row (nan: none ends there)


def manifest_gain(manifest: Manifest) -> GainConfig | None:
    """An artifact's gain settings for its sessions (None: off by default): its manifest's `default_gain`."""
    if not manifest.default_gain:
        return None
    try:
        return GainConfig.from_dict(manifest.default_gain, obs_dim=manifest.obs_dim, horizons=manifest.horizons)
    except ValueError as e:
        raise ArtifactError(f"manifest default_gain: {e}; re-export the run") from e


def gain_settings(gain: GainConfig | Mapping | bool | None, base: GainConfig | None, obs_dim: int,
                  horizons: list[int] | None = None) -> GainConfig | None:
    """A session's gain settings: the artifact's default (`base`, None: off) unless `gain` says otherwise:
    False turns it off, True turns it on (`base` or the runtime's defaults), a dict changes settings of either."""
    if gain is None:
        return base
    if gain is False:
        return None
    if gain is True:
        return base or GainConfig()
    if isinstance(gain, GainConfig):
        gain.validate(obs_dim, horizons)
        return gain
    return GainConfig.from_dict(gain, base, obs_dim, horizons)  # validated


def session_gain(gain: GainConfig | Mapping | bool | None, rt: Runtime) -> GainConfig | None:
    """A session's gain settings on runtime `rt` (`gain_settings` over its manifest's default and its horizons);
    False: off, whatever the manifest says."""
    return None if gain is False else gain_settings(gain, manifest_gain(rt.manifest), rt.obs_dim, rt.horizons)


def init_gain(cfg: GainConfig | None, obs_dim: int, action_dim: int) -> GainState | None:
    """No transitions kept, gain 1 (None without gain adaptation)."""
    if cfg is None:
        return None
    z = lambda *s: np.zeros(s, dtype=np.float32)  # noqa: E731
    return GainState(z(cfg.window, obs_dim), z(cfg.window, action_dim), z(cfg.window, obs_dim),
                     np.zeros(cfg.window, dtype=bool), np.array(0), np.array(0), np.full(cfg.grid, np.nan),
                     np.array(1.0, dtype=np.float32), np.full((cfg.window, cfg.grid), np.nan))


def fold_gain(cfg: GainConfig, st: GainState, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray,
              features: Features, next_obs_fn: NextObs, h0: np.ndarray, W0: np.ndarray, delta_std: np.ndarray,
              periodic: Mapping[int, float] | None = None) -> GainState:
    """Keep one transition (the action as the plant received it) and score the sequence it ends under every gain
    (the prior model's error on it never changes: each sequence is scored once, grid rows per transition);
    every `every` transitions, re-estimate from the kept sequences' errors."""
    linked = bool(st.n > 0 and continues(st.next_obs[-1], obs))
    roll = lambda a, row: np.concatenate([a[1:], np.asarray(row, dtype=a.dtype)[None]])  # noqa: E731
    st = GainState(roll(st.obs, obs), roll(st.actions, action), roll(st.next_obs, next_obs),
                   roll(st.linked, linked), np.array(min(int(st.n) + 1, cfg.window)), np.array(int(st.since) + 1),
                   st.scores, st.gain, st.errors)
    H = cfg.horizon
    whole = int(st.n) >= H and bool(st.linked[len(st.linked) - H + 1:].all())  # H contiguous transitions end here
    row = sequence_error(cfg, st.obs[-H], st.actions[-H:], st.next_obs[-H:], features, next_obs_fn, h0, W0,
                         delta_std, periodic) if whole else np.full(cfg.grid, np.nan)
    st = replace(st, errors=roll(st.errors, row))
    if int(st.since) < cfg.every:
        return st
    err = kept_errors(cfg, st)
    if err is None:
        return replace(st, since=np.array(0))
    scores = err if np.isnan(st.scores).any() else cfg.forget * st.scores + (1 - cfg.forget) * err
    return replace(st, since=np.array(0), scores=scores, gain=np.array(cfg.gains()[int(np.argmin(scores))]))


def fold_plant(cfg: GainConfig, st: GainState, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray,
               rt: Runtime) -> tuple[GainState, np.ndarray]:
    """`fold_gain` with a runtime's prior model; also the transition's action in model units (action / g)."""
    st = fold_gain(cfg, st, obs, action, next_obs, rt.dynamics.features, rt.norm.next_obs, rt.h0, rt.W0,
                   rt.norm.delta_std, rt.manifest.periodic_obs)
    return st, (action / st.gain).astype(np.float32)


def gain_terms(terms: T, g: float, cfg: GainConfig | None) -> T:
    """A rollout's cost terms (a dataclass with the action weights `r`) for model-unit actions at gain g: with
    `plant_cost`, the action cost of g u (r g^2); else unchanged."""
    if g == 1.0 or cfg is None or not cfg.plant_cost:
        return terms
    return replace(terms, r=terms.r * np.float32(g * g))  # type: ignore[type-var]


def gain_planner(planner: PlannerConfig, request: Mapping | None, cfg: GainConfig | None,
                 st: GainState | None) -> PlannerConfig:
    """One act's planner: the session's with the request's overrides; while the gain is at least `plan_above`, over
    `plan_horizon` steps if that is shorter (and the request names no horizon)."""
    out = planner.replace(**request) if request else planner
    if cfg is None or st is None or not cfg.plan_horizon or float(st.gain) < cfg.plan_above:
        return out
    return out if request and "horizon" in request else out.replace(horizon=min(cfg.plan_horizon, out.horizon))


def sequence_error(cfg: GainConfig, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray,
                   features: Features, next_obs_fn: NextObs, h0: np.ndarray, W0: np.ndarray, delta_std: np.ndarray,
                   periodic: Mapping[int, float] | None = None) -> np.ndarray:
    """Each grid gain's open-loop error of the prior model on one sequence (grid,), in squared delta-std units:
    from `obs` (O,), the plant's `actions` (H, A) divided by the gain, against `next_obs` (H, O)."""
    gains = cfg.gains()  # (G,)
    G = len(gains)
    dims = list(cfg.dims) or slice(None)
    x = np.repeat(np.asarray(obs, dtype=np.float32)[None], G, axis=0)  # (G, O): every gain rolls the sequence
    h = np.repeat(np.asarray(h0, dtype=np.float32)[None], G, axis=0)
    err = np.zeros(G)
    for j in range(len(actions)):
        u = (actions[j][None] / gains[:, None]).astype(np.float32)  # (G, A) model units
        x = next_obs_fn(x, features(x, u, h) @ W0)
        diff = wrapped(x - next_obs[j][None], periodic) / delta_std  # (G, O)
        err += (np.nan_to_num(diff[:, dims], nan=1e4, posinf=1e4, neginf=1e4) ** 2).mean(-1)
    return err


def kept_errors(cfg: GainConfig, st: GainState) -> np.ndarray | None:
    """Each grid gain's mean error over the sequences wholly kept in the window (grid,) (None: none yet). The
    sequence ending at row r began at r - horizon + 1; it counts while that row is still kept."""
    rows = np.arange(len(st.linked))
    kept = (rows >= len(rows) - int(st.n) + cfg.horizon - 1) & np.isfinite(st.errors).all(1)
    return st.errors[kept].mean(0) if kept.any() else None


def gain_arrays(st: GainState | None) -> dict[str, np.ndarray]:
    """A session's gain state as named arrays for its state_dict (none without gain adaptation)."""
    return {} if st is None else {f"gain.{f.name}": getattr(st, f.name) for f in fields(st)}


def load_gain(state: Mapping[str, np.ndarray], cfg: GainConfig | None) -> GainState | None:
    """The gain state `gain_arrays` saved (a KeyError names a missing array). A snapshot from before the per-row
    errors keeps its estimate and scores the transitions that follow (its kept ones are not re-scored)."""
    if cfg is None:
        return None
    saved = {"gain.errors": np.full((cfg.window, cfg.grid), np.nan), **state}  # older snapshots: none scored
    return GainState(**{f.name: np.asarray(saved[f"gain.{f.name}"]) for f in fields(GainState)})


def gain_report(st: GainState | None, cfg: GainConfig | None) -> dict | None:
    """The gain a session runs at and its settings (None: no gain adaptation), for `info` and the HTTP API."""
    if st is None or cfg is None:
        return None
    return {"gain": float(st.gain), "kept": int(st.n), "settings": cfg.to_dict()}

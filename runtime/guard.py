"""The adaptation guard: a session plans with its adapted model only while that model predicts better.

Every observed transition is scored under two predictors: the adapted one (the session's h and head W) and
the prior (h0, W0: mode `none`). The score is the model's own open-loop prediction of what then happened:
each step starts a track at the observed state with the current belief, and every track moves one step per
observed transition under the executed action; a track's error at age k is the k-step open-loop error of the
model the session would have planned with k steps ago. `multi` is the mean over ages 1..horizon and `one`
the age-1 (one-step) error, both in the surprise's units ((error / delta_std)^2, averaged over obs dims)
and both forgetting (exponential moving averages). A session plans (and predicts more than one step) with
the adapted model while both ratios adapted / prior, one-step and multi-step, stay under `leave`, and returns
to it only once they are under `enter` = leave x (1 - hysteresis), so it does not chatter. A one-step
prediction blends the two predictors, weighing each by the inverse of its *recent* one-step error (`predict_forget`:
the last few transitions, as a belief improves quickly early on) to the power `blend`: a forecast combination that
leans on whichever predicted better lately without betting everything on a few noisy transitions. A model can
predict the next step better and still drift further over a plan's horizon, and only the planner needs the second.
A guard starts on the prior: a belief must earn trust before the planner acts on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np

from .artifact import ArtifactError, Manifest
from .cost import Cost
from .modes import Mode, NoState
from .validation import continues

ERR_CAP = 1e4  # a track that diverged scores at most this (surprise units): finite, and clearly bad

Features = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # obs (B,O), action (B,A), h (B,H) -> (B,D)
NextObs = Callable[[np.ndarray, np.ndarray], np.ndarray]  # obs (B,O), head output (B,P) -> next obs (B,O)


@dataclass(frozen=True)
class GuardConfig:
    """When a session trusts its adapted model (the defaults were chosen by `mbmrl eval --guard`; docs/guard.md)."""

    horizon: int = 10
    """Open-loop steps of each scoring track (the multi-step error covers ages 1..horizon)."""
    forget: float = 0.95
    """Weight of the past in the running errors per transition (0.95: about the last 20 transitions)."""
    leave: float = 1.0
    """Fall back to the prior once the adapted model's running error is above this fraction of the prior's."""
    hysteresis: float = 0.2
    """Switch (back) to the adapted model only below `enter` = leave x (1 - hysteresis) of the prior's error."""
    predict_forget: float = 0.7
    """Weight of the past in the recent one-step errors that choose the model of one-step predictions."""
    min_observed: int = 4
    """Transitions scored before the adapted model may be used (for one-step predictions, blended)."""
    plan_after: int = 24
    """Transitions scored before plans (and multi-step predictions) may use the adapted model: a plan acts on
    its model for a whole horizon, so a belief formed from a few transitions could fail a swing-up the prior
    manages (measured: docs/guard.md)."""
    blend: float = 4.0
    """Power p of the inverse-error weights blending one-step predictions: the adapted model's weight is
    e_prior^p / (e_adapted^p + e_prior^p) of the recent one-step errors; 0: no blend (the lower error's model)."""
    objective: float = 0.0
    """Extra weight on the errors of the observation dims the session's cost reads (nonzero q, linear or known-
    reward linear terms): 0 weighs every dim alike; > 0 compares the predictors more on what the planner optimizes."""

    def validate(self) -> None:
        """ValueError naming the first setting out of range."""
        if not 1 <= self.horizon <= 64:
            raise ValueError(f"guard.horizon must be in [1, 64], got {self.horizon}")
        for name in ("forget", "predict_forget"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"guard.{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 < self.leave <= 100.0:
            raise ValueError(f"guard.leave must be in (0, 100], got {self.leave}")
        if not 0.0 <= self.hysteresis < 1.0:
            raise ValueError(f"guard.hysteresis must be in [0, 1), got {self.hysteresis}")
        for name in ("min_observed", "plan_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"guard.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.blend <= 16.0:
            raise ValueError(f"guard.blend must be in [0, 16], got {self.blend}")
        if not 0.0 <= self.objective <= 1000.0:
            raise ValueError(f"guard.objective must be in [0, 1000], got {self.objective}")

    def dim_weights(self, cost: Cost) -> np.ndarray | None:
        """Per-dim error weights (O,) for a session planning with `cost` (None: every dim alike)."""
        return None if self.objective == 0 else 1.0 + self.objective * objective_dims(cost).astype(np.float64)

    @property
    def enter(self) -> float:
        """The error ratio under which the adapted model is (re)admitted."""
        return self.leave * (1.0 - self.hysteresis)

    def to_dict(self) -> dict:
        """As a JSON object (the shape `from_dict` reads)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict, base: GuardConfig | None = None) -> GuardConfig:
        """From a JSON object, its fields replacing `base`'s (default: the runtime's defaults); unknown fields
        are an error."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"guard: unknown fields {sorted(unknown)}; expected {[f.name for f in fields(cls)]}")
        cfg = replace(base or cls(), **d)
        cfg.validate()
        return cfg


@dataclass(frozen=True)
class GuardState:
    """Running errors, open tracks and the current choice (arrays, so a session's state_dict holds them)."""

    errors: np.ndarray  # (6,) running [one_adapted, one_prior, multi_adapted, multi_prior, and the recent
    #                       one-step errors: one_adapted, one_prior] (nan: none yet)
    scored: np.ndarray  # () transitions scored
    adapted: np.ndarray  # () bool: planning (and predicting more than one step) with the adapted model now
    adapted_one: np.ndarray  # () bool: predicting one step with the adapted model now
    switches: np.ndarray  # () times the choice changed
    x: np.ndarray  # (2, k, O) tracks' predicted states, [adapted, prior], newest first
    h: np.ndarray  # (k, hidden) the adapted belief each adapted track started with
    W: np.ndarray  # (k, D, P) the adapted head each adapted track started with
    last: np.ndarray  # (O,) the next_obs of the last scored transition (tracks continue only from it)


def manifest_guard(manifest: Manifest) -> GuardConfig:
    """An artifact's guard settings for its sessions: its manifest's `default_guard` over the runtime's defaults
    (an ArtifactError naming the field when impossible)."""
    try:
        return GuardConfig.from_dict(manifest.default_guard)
    except ValueError as e:
        raise ArtifactError(f"manifest default_guard: {e}; re-export the run") from e


def guard_settings(guard: GuardConfig | dict | bool | None, mode: Mode,
                   base: GuardConfig | None = None) -> GuardConfig | None:
    """A session's guard settings: on by default for every mode that adapts (its belief or its head), never for
    `none` and `oracle` (nothing to fall back from); `False` turns it off, a dict changes settings of `base`
    (the artifact's `default_guard`; None: the runtime's defaults)."""
    if guard is False or not (mode.adapts_belief or mode.state_type is not NoState):
        return None
    if isinstance(guard, dict):
        return GuardConfig.from_dict(guard, base)  # validated
    cfg = guard if isinstance(guard, GuardConfig) else (base or GuardConfig())
    cfg.validate()
    return cfg


def init_guard(obs_dim: int) -> GuardState:
    """No evidence yet: planning on the prior."""
    nan = np.full(6, np.nan)
    return GuardState(nan, np.array(0), np.array(False), np.array(False), np.array(0),
                      np.zeros((2, 0, obs_dim), np.float32),
                      np.zeros((0, 0), np.float32), np.zeros((0, 0, 0), np.float32), np.full(obs_dim, np.nan))


def _ema(old: float, new: float, forget: float) -> float:
    return new if old != old else forget * old + (1.0 - forget) * new  # old != old: nan, nothing yet


def objective_dims(cost: Cost) -> np.ndarray:
    """(O,) bool: the observation dims a cost reads (nonzero q or linear term, or the known reward's linear term)."""
    reads = np.asarray(cost.q) != 0
    if cost.linear is not None:
        reads = reads | (cost.linear != 0)
    if cost.reward_source == "known" and cost.reward is not None:
        reads = reads | (cost.reward.linear != 0)
    return reads


def fold_guard(cfg: GuardConfig, g: GuardState, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray,
               h: np.ndarray, W: np.ndarray, h0: np.ndarray, W0: np.ndarray, features: Features, next_state: NextObs,
               delta_std: np.ndarray, weights: np.ndarray | None = None) -> GuardState:
    """Score one transition (obs -> next_obs under action) with both predictors and update the choice.

    `h`, `W` are the adapted belief and head *before* this transition (what the session planned with);
    `weights` (O,) weigh each dim's error (`GuardConfig.dim_weights`; None: a plain mean over dims)."""
    k_old = g.x.shape[1] if g.x.shape[1] > 0 and bool(continues(g.last, obs)) else 0
    # open tracks (newest first), plus a new one per predictor starting at obs with the current beliefs
    def newest_first(now: np.ndarray, old: np.ndarray) -> np.ndarray:
        return np.concatenate([now[None], old[:k_old]]).astype(np.float32) if k_old else now[None].astype(np.float32)

    xa, xp = newest_first(obs, g.x[0]), newest_first(obs, g.x[1])  # (k, O) each
    hs, Ws = newest_first(h, g.h), newest_first(W, g.W)  # (k, hidden), (k, D, P)
    k = len(xa)
    xs = np.concatenate([xa, xp])  # (2k, O): adapted tracks, then prior tracks
    acts = np.repeat(action[None].astype(np.float32), 2 * k, axis=0)
    phi = features(xs, acts, np.concatenate([hs, np.repeat(h0[None], k, axis=0)]))  # (2k, D)
    out = np.concatenate([np.einsum("kd,kdp->kp", phi[:k], Ws), phi[k:] @ W0])  # (2k, P)
    with np.errstate(all="ignore"):
        pred = next_state(xs, out)  # (2k, O)
        d = (pred - next_obs[None]) / delta_std  # (2k, O)
        err = (d * d).sum(axis=1) / d.shape[1] if weights is None else (d * d) @ weights / weights.sum()  # (2k,)
    err = np.where(err < ERR_CAP, err, ERR_CAP).tolist()  # non-finite (nan, inf) and huge: the cap
    e = g.errors.copy()
    f, fp = cfg.forget, cfg.predict_forget
    e[0], e[1] = _ema(e[0], err[0], f), _ema(e[1], err[k], f)
    e[2], e[3] = _ema(e[2], sum(err[:k]) / k, f), _ema(e[3], sum(err[k:]) / k, f)
    e[4], e[5] = _ema(e[4], err[0], fp), _ema(e[5], err[k], fp)
    keep = min(k, cfg.horizon - 1)  # tracks that have steps left
    if not np.isfinite(pred).all():  # a diverged track restarts from what happened
        pred = np.where(np.isfinite(pred), pred, next_obs[None]).astype(np.float32)
    x = np.stack([pred[:keep], pred[k : k + keep]])
    scored = int(g.scored) + 1
    adapted = choose(cfg, e, bool(g.adapted), scored)
    adapted_one = choose(cfg, e, bool(g.adapted_one), scored, one_step=True)
    return GuardState(e, np.array(scored), np.array(adapted), np.array(adapted_one),
                      np.array(int(g.switches) + (adapted != bool(g.adapted))), x, hs[:keep], Ws[:keep],
                      next_obs.astype(np.float32))


def ratios(errors: np.ndarray) -> tuple[float, float]:
    """(one-step, multi-step) running error of the adapted model relative to the prior's (nan before any)."""
    e = [float(v) for v in errors[:4]]
    return e[0] / max(e[1], 1e-12), e[2] / max(e[3], 1e-12)


def choose(cfg: GuardConfig, errors: np.ndarray, adapted: bool, scored: int, one_step: bool = False) -> bool:
    """Use the adapted model for plans (hysteresis: enter below `enter` x the prior's errors, leave above `leave`
    x)? With `one_step`, for one-step predictions: while the recent one-step error is at most `leave` x.
    Never before `min_observed` transitions, nor for plans before `plan_after`."""
    if scored < (cfg.min_observed if one_step else max(cfg.min_observed, cfg.plan_after)):
        return False
    if one_step:
        return float(errors[4]) / max(float(errors[5]), 1e-12) <= cfg.leave
    one, multi = ratios(errors)
    worst = max(one, multi)
    return worst <= cfg.leave if adapted else worst < cfg.enter


def one_step_weight(cfg: GuardConfig, g: GuardState) -> float:
    """The adapted model's weight in a one-step prediction (the prior's is 1 - it): 0 before `min_observed`
    transitions; then the inverse-error blend of the recent one-step errors (`blend` 0: 1 while the adapted
    model's is at most `leave` x the prior's, else 0)."""
    if int(g.scored) < cfg.min_observed:
        return 0.0
    if cfg.blend == 0:
        return float(bool(g.adapted_one))  # the recent one-step error at most `leave` x the prior's
    ea, ep = float(g.errors[4]), float(g.errors[5])
    if not (ea > 1e-12 and ep > 1e-12):  # a predictor exact so far: it alone
        return float(ea <= ep)
    return 1.0 / (1.0 + (ea / ep) ** cfg.blend)


def mix(parts: list[tuple[float, np.ndarray, np.ndarray | None]]) -> tuple[np.ndarray, np.ndarray | None]:
    """Blend predictions [(weight, mean (T, O), variance (T, O) or None)]: the mixture's mean and variance
    (None if any part has none)."""
    if len(parts) == 1:  # one model alone: its own numbers, exactly
        return parts[0][1], parts[0][2]
    mean = np.sum([w * m for w, m, _ in parts], axis=0)
    if any(v is None for _, _, v in parts):
        return mean, None
    second = np.sum([w * (v + m * m) for w, m, v in parts], axis=0)  # the mixture's second moment
    return mean, np.maximum(second - mean * mean, 0.0)


def guard_report(g: GuardState, cfg: GuardConfig | None) -> dict | None:
    """What a session reports (None without a guard): the model it plans with, the running errors, the settings."""
    if cfg is None:
        return None
    e = [None if np.isnan(v) else float(v) for v in g.errors]
    return {"config": cfg.to_dict(), "model": "adapted" if bool(g.adapted) else "prior",
            "one_step_model": "adapted" if bool(g.adapted_one) else "prior",
            "one_step_weight": one_step_weight(cfg, g), "scored": int(g.scored),
            "switches": int(g.switches), "one_step": {"adapted": e[0], "prior": e[1]},
            "multi_step": {"adapted": e[2], "prior": e[3]}}


def guard_arrays(g: GuardState) -> dict[str, np.ndarray]:
    """The state as named arrays (for snapshots)."""
    return {f"guard.{f.name}": np.asarray(getattr(g, f.name)) for f in fields(g)}


def load_guard(state: dict[str, np.ndarray], obs_dim: int) -> GuardState:
    """The state `guard_arrays` saved; a snapshot from before guards starts a fresh one."""
    if "guard.errors" not in state:
        return init_guard(obs_dim)
    return GuardState(**{f.name: np.asarray(state[f"guard.{f.name}"]) for f in fields(GuardState)})

"""Sampling-based MPC over action sequences: MPPI (default) and CEM.

Planners see only an objective over action batches `(N, H, act_dim) -> costs (N,)`;
the model, the adapted state and the cost live behind it. Warm start shifts the
previous plan by one step (done once, in `shift_plan`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np

Objective = Callable[[np.ndarray], np.ndarray]  # (N, H, A) -> (N,)


@dataclass(frozen=True)
class PlannerConfig:
    """Settings of the sampling-based planner (overridable per session and per request)."""

    method: str = "mppi"
    """'mppi' (exponentially weighted average) or 'cem' (mean of the elites)."""
    horizon: int = 15
    """Steps planned ahead; must be one of the artifact's exported horizons."""
    samples: int = 256
    """Action sequences sampled per iteration (N)."""
    iterations: int = 1
    """Sampling iterations per `act` call (warm start makes 1 enough at control rates)."""
    temperature: float = 0.1
    """MPPI temperature, relative to the spread of costs in the batch."""
    noise_scale: float = 0.5
    """Std of the sampling noise as a fraction of each action's half-range."""
    elite_frac: float = 0.1
    """CEM: fraction of samples kept as elites."""
    deadline_ms: float = 0.0
    """> 0: pick the sample count so that `act` plans within this many ms on this CPU (at most `samples`)."""
    noise_beta: float = 0.0
    """Colour of the sampling noise along the horizon (iCEM): power spectrum ~ 1/f^beta; 0 = white, 2 = smooth."""
    momentum: float = 0.0
    """CEM: each iteration keeps this share of the old mean and variance (CaDM's and PETS's alpha, 0.1)."""
    warm_tail: str = "repeat"
    """The warm start's new last step: 'repeat' the plan's last action, or 'neutral' (the middle of the bounds:
    PETS's and CaDM's zeros)."""
    truncate: bool = False
    """PETS's and CaDM's sampling: each step's std capped at half the mean's distance to the nearer bound and the
    noise truncated at 2 std, so no sample lands on a bound; False: Gaussian noise clipped to the bounds."""

    def replace(self, **overrides) -> PlannerConfig:
        """A validated copy with some fields replaced."""
        cfg = replace(self, **overrides)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """A ValueError naming the first setting out of range."""
        if self.method not in ("mppi", "cem"):
            raise ValueError(f"planner.method must be 'mppi' or 'cem', got {self.method!r}")
        for name in ("horizon", "samples", "iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"planner.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.temperature > 0 and self.noise_scale > 0 and 0 < self.elite_frac <= 1):
            raise ValueError("planner.temperature and noise_scale must be > 0 and elite_frac in (0, 1]")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"planner.momentum must be in [0, 1) (0: no memory), got {self.momentum}")
        if not 0 <= self.noise_beta <= 4:
            raise ValueError(f"planner.noise_beta must be in [0, 4] (0: white noise), got {self.noise_beta}")
        if self.warm_tail not in ("repeat", "neutral"):
            raise ValueError(f"planner.warm_tail must be 'repeat' or 'neutral', got {self.warm_tail!r}")
        if not isinstance(self.truncate, bool):
            raise ValueError(f"planner.truncate must be true or false, got {self.truncate!r}")
        if not self.deadline_ms >= 0:
            raise ValueError(f"planner.deadline_ms must be >= 0 (0: no deadline), got {self.deadline_ms}")

    def to_dict(self) -> dict:
        """As a JSON object (every field is a scalar: no deep copy needed)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def parse_planner(text: str) -> dict:
    """'samples=128,noise_beta=2,truncate=true' -> {'samples': 128, 'noise_beta': 2.0, 'truncate': True}: planner
    overrides for every session."""
    out: dict = {}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"planner overrides take key=value pairs like 'samples=128,noise_beta=2', got {item!r}")
        if value.strip().lower() in ("true", "false"):
            out[key.strip()] = value.strip().lower() == "true"
            continue
        try:
            out[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError:
            out[key.strip()] = value.strip()  # e.g. method=cem
    return out


def shift_plan(plan: np.ndarray, tail: np.ndarray | None = None) -> np.ndarray:
    """Warm start: drop the executed first action, then repeat the last one or append `tail` (A,). (H, A) -> (H, A)."""
    return np.concatenate([plan[1:], plan[-1:] if tail is None else tail[None].astype(plan.dtype)], axis=0)


def colored_noise(rng: np.random.Generator, n: int, horizon: int, dim: int, beta: float) -> np.ndarray:
    """Unit-variance Gaussian noise (n, horizon, dim), correlated in time with power spectrum ~ 1/f^beta.

    beta = 0 is white noise (and draws exactly what `standard_normal` would). As in iCEM (Pinneri et al.
    2020) and the `colorednoise` package: shape white noise in the frequency domain, then normalize.
    """
    if beta == 0 or horizon < 2:
        return rng.standard_normal((n, horizon, dim), dtype=np.float32)
    f = np.fft.rfftfreq(horizon)  # (F,)
    f[0] = f[1]  # no infinite power at f = 0: the lowest frequency stands in for it
    scale = f ** (-beta / 2)
    spec = rng.standard_normal((2, n, dim, len(f))) * scale  # real and imaginary parts
    spec[1, ..., 0] = 0.0  # the mean term is real
    if horizon % 2 == 0:
        spec[1, ..., -1] = 0.0  # so is the Nyquist term
    x = np.fft.irfft(spec[0] + 1j * spec[1], n=horizon, axis=-1)  # (n, dim, H)
    x /= x.std(axis=-1, keepdims=True) + 1e-8  # each sequence unit variance over the horizon
    return np.ascontiguousarray(x.transpose(0, 2, 1), dtype=np.float32)


def truncated_noise(rng: np.random.Generator, n: int, horizon: int, dim: int, beta: float) -> np.ndarray:
    """`colored_noise` truncated to [-2, 2] (n, horizon, dim): white noise redraws what falls outside (a
    truncated normal, as PETS's CEM samples), coloured noise is clipped there."""
    z = colored_noise(rng, n, horizon, dim, beta)
    if beta != 0 and horizon >= 2:
        return np.clip(z, -2.0, 2.0)
    out = np.abs(z) > 2.0
    while out.any():  # about 4.6% of the entries a pass
        z[out] = rng.standard_normal(int(out.sum()), dtype=np.float32)
        out = np.abs(z) > 2.0
    return z


def mppi_weights(costs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of -cost / (temperature * spread); the spread makes temperature scale-free. (N,) -> (N,).

    Never non-finite: a scale that underflows, or weights that do, fall back to the single best sample.
    """
    c = costs - costs.min()
    scale = temperature * max(float(np.median(c)), 1e-8)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        w = np.exp(-c / scale) if scale > 0 else np.zeros_like(c)
        total = w.sum()
    if not (np.isfinite(total) and total > 0):
        w = (c == 0).astype(np.float64)  # argmin (ties share)
        total = w.sum()
    return w / total


def sample_weights(costs: np.ndarray, cfg: PlannerConfig) -> np.ndarray:
    """The weight of each sampled sequence in the new plan (N,): MPPI's softmax, or CEM's uniform weight on the
    elites. Non-finite costs get none; all zeros when no cost is finite. The new plan is `sum_i w_i a_i`, and
    the same weights give its expected states and cost from the same rollout call."""
    costs = np.asarray(costs, dtype=np.float64)
    finite = np.isfinite(costs)  # a diverging sample gets no weight, and does not skew the rest
    w = np.zeros_like(costs)
    if not finite.any():
        return w
    if cfg.method == "mppi":
        w[finite] = mppi_weights(costs[finite], cfg.temperature)
    else:
        n_elite = min(max(1, int(round(cfg.elite_frac * len(costs)))), int(finite.sum()))
        w[np.argsort(np.where(finite, costs, np.inf))[:n_elite]] = 1.0 / n_elite
    return w


def plan(objective: Objective, mean: np.ndarray, low: np.ndarray, high: np.ndarray, cfg: PlannerConfig,
         rng: np.random.Generator) -> np.ndarray:
    """Improve the plan `mean` (H, A) by sampling around it; returns the new plan (H, A)."""
    return plan_with_weights(objective, mean, low, high, cfg, rng)[0]


def plan_with_weights(
    objective: Objective,
    mean: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    cfg: PlannerConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The new plan (H, A) and the weights (N,) of the last iteration's samples in it (`sample_weights`).

    Sample 0 is always the current mean itself, so a good warm start is never lost. When no sampled cost is
    finite the plan comes back unchanged and the weights are all zero.
    """
    w = np.zeros(0)
    half_range = (high - low) / 2.0  # (A,)
    std = np.broadcast_to(cfg.noise_scale * half_range, mean.shape).astype(np.float32)  # (H, A)
    for _ in range(cfg.iterations):
        shape = (cfg.samples, mean.shape[0], mean.shape[1])
        if cfg.truncate:  # the spread that keeps mean +- 2 std inside the bounds
            room = np.maximum(np.minimum(mean - low, high - mean), 0.0) / 2.0  # (H, A)
            noise = truncated_noise(rng, *shape, cfg.noise_beta) * np.minimum(std, room)  # (N, H, A)
        else:
            noise = colored_noise(rng, *shape, cfg.noise_beta) * std  # (N, H, A)
        noise[0] = 0.0
        actions = np.clip(mean[None] + noise, low, high).astype(np.float32)  # (N, H, A)
        w = sample_weights(objective(actions), cfg)  # (N,)
        if not w.any():
            return mean, w  # nothing usable sampled: keep the previous plan
        new_mean = np.tensordot(w, actions, axes=1).astype(np.float32)  # (H, A)
        if cfg.method == "cem":
            elite = actions[w > 0]  # (E, H, A)
            var = cfg.momentum * std**2 + (1 - cfg.momentum) * elite.var(axis=0)  # (H, A)
            std = np.maximum(np.sqrt(var), 1e-3 * half_range).astype(np.float32)
            new_mean = (cfg.momentum * mean + (1 - cfg.momentum) * new_mean).astype(np.float32)
        mean = new_mean
    return np.clip(mean, low, high).astype(np.float32), w


def fit_plan(plan: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """A warm start over `neutral`'s horizon: `plan`'s first steps, then `neutral`'s. (H', A), (H, A) -> (H, A)."""
    out = neutral.copy()
    out[: len(plan)] = plan[: len(out)]
    return out

"""`Session`: one robot's adaptation state (h, W, recent transitions) and its plan.

`observe` folds transitions into the belief and reports surprise; `act` plans with
MPPI/CEM under the adapted model; `predict` rolls the adapted model open-loop.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from .adapt import head_gradient_steps, nig_update, noise_factor, predictive_variance, rls_update
from .cost import Cost
from .model import Runtime
from .planner import PlannerConfig, plan, shift_plan


@dataclass
class ActResult:
    """What `act` returns: the action to apply now and the plan behind it."""

    action: np.ndarray  # (act_dim,)
    plan: np.ndarray  # (H, act_dim)
    predicted_obs: np.ndarray  # (H, obs_dim)
    expected_cost: float


def _vec(x, dim: int, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32).reshape(-1)
    if a.shape != (dim,):
        raise ValueError(f"{name} must have {dim} entries, got {a.size}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite")
    return a


class Session:
    """Per-session adaptation state. Thread-safe: every public call holds the session lock."""

    def __init__(
        self,
        rt: Runtime,
        mode: str,
        planner: PlannerConfig | dict | None = None,
        cost: Cost | dict | None = None,
        seed: int | None = None,
        task_params: dict | None = None,
    ):
        if mode not in rt.modes:
            raise ValueError(f"mode {mode!r} is not offered by this artifact; expected one of {sorted(rt.modes)}")
        self.rt = rt
        self.mode = mode
        base = rt.default_planner
        self.planner = base.replace(**planner) if isinstance(planner, dict) else (planner or base)
        self.planner.validate()
        if self.planner.horizon not in rt.horizons:
            raise ValueError(f"planner.horizon={self.planner.horizon} not exported; available: {rt.horizons}")
        self.cost = rt.default_cost.merged(cost, rt.obs_dim, rt.action_dim) if isinstance(cost, dict) else (
            cost or rt.default_cost
        )
        self.seed = seed
        self.task_params = task_params
        self.lock = threading.RLock()
        self.reset()

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget everything observed: back to the prior belief (h0, W0) and an empty plan."""
        with self.lock:
            rt = self.rt
            self.rng = np.random.default_rng(self.seed)
            self.h = rt.h0.copy()
            self.W = rt.W0.copy()
            self.n_observed = 0
            mode_cfg = rt.modes[self.mode]
            self.window: deque = deque(maxlen=int(mode_cfg.get("window", 32)))  # (phi, y) pairs
            if self.mode == "bayes":
                self.P = rt.params["bayes_P0"].astype(np.float64)
                self.W = rt.W0.astype(np.float64)
                # noise scale tau ~ IG(a0, a0) learned online (a0 = 0: noise variance known, Gaussian)
                self.noise_a = float(rt.params.get("bayes_noise_a0", 0.0))
                self.noise_b = np.full(rt.obs_dim + 1, self.noise_a)
            if self.mode == "oracle":
                self.h = self._oracle_h(self.task_params)
            self.plan = self._initial_plan(self.planner.horizon)

    def _oracle_h(self, task_params: dict | None) -> np.ndarray:
        spec = self.rt.manifest["oracle"]
        names = spec["param_names"]
        if not task_params or set(task_params) != set(names):
            raise ValueError(f"mode 'oracle' needs task_params with exactly {names}")
        p = np.array([float(task_params[n]) for n in names], dtype=np.float32)
        if not np.isfinite(p).all():
            raise ValueError("task_params must be finite")
        return ((p - np.asarray(spec["param_mean"])) / np.asarray(spec["param_std"])).astype(np.float32)

    def _initial_plan(self, horizon: int) -> np.ndarray:
        mid = (self.rt.action_low + self.rt.action_high) / 2
        return np.tile(mid, (horizon, 1)).astype(np.float32)

    def info(self) -> dict:
        """A JSON-able summary of the session."""
        with self.lock:
            return {
                "mode": self.mode,
                "n_observed": self.n_observed,
                "planner": self.planner.to_dict(),
                "cost": self.cost.to_dict(),
                "h_norm": float(np.linalg.norm(self.h)),
                "w_shift": float(np.linalg.norm(self.W - self.rt.W0)),
            }

    # ----------------------------------------------------------------- adaptation
    def observe(self, obs, action, next_obs, reward=None) -> float:
        """Fold one transition; returns its surprise (normalized squared error of the prior prediction)."""
        rt = self.rt
        obs = _vec(obs, rt.obs_dim, "obs")
        action = _vec(action, rt.action_dim, "action")
        next_obs = _vec(next_obs, rt.obs_dim, "next_obs")
        has_reward = reward is not None
        r = np.float32(reward if has_reward else 0.0)
        if not np.isfinite(r):
            raise ValueError("reward must be finite")
        action = np.clip(action, rt.action_low, rt.action_high)
        with self.lock:
            phi = rt.features(obs[None], action[None], self.h[None].astype(np.float32))[0]  # (D,)
            y = rt.norm.normalize_target((next_obs - obs)[None], np.array([r]))[0]  # (P,)
            pred = phi @ self.W  # (P,)
            err = (pred - y)[: rt.obs_dim]
            surprise = float(np.mean(err**2))
            if self.mode in ("recurrent", "gradient", "bayes"):
                if not has_reward:  # unknown reward: fold the model's own prediction, not a zero
                    r = np.float32(pred[rt.obs_dim] * rt.norm.reward_std + rt.norm.reward_mean)
                self.h = rt.encoder_step(
                    self.h[None], obs[None], action[None], next_obs[None], np.array([[r]], dtype=np.float32)
                )[0]
            if self.mode == "gradient":
                self.window.append((phi, y))
                cfg = rt.modes["gradient"]
                Phi = np.stack([p for p, _ in self.window])  # (M, D)
                Y = np.stack([t for _, t in self.window])  # (M, P)
                self.W = head_gradient_steps(rt.W0, Phi, Y, rt.params["grad_step_size"], int(cfg["steps"]))
            elif self.mode == "bayes":
                if not has_reward:
                    y = y.copy()
                    y[rt.obs_dim] = pred[rt.obs_dim]
                phi64, y64 = phi.astype(np.float64), y.astype(np.float64)
                if self.noise_a > 0:
                    self.W, self.P, self.noise_a, self.noise_b = nig_update(
                        self.W, self.P, self.noise_a, self.noise_b, phi64, y64, rt.params["bayes_noise_var"])
                else:
                    self.W, self.P = rls_update(self.W, self.P, phi64, y64)
            self.n_observed += 1
            return surprise

    def observe_many(self, transitions: list[dict]) -> list[float]:
        """Fold transitions in order: each dict has obs, action, next_obs and optional reward."""
        with self.lock:
            return [self.observe(t["obs"], t["action"], t["next_obs"], t.get("reward")) for t in transitions]

    # ----------------------------------------------------------------- planning
    def act(self, obs, cost: dict | None = None, planner: dict | None = None) -> ActResult:
        """Plan from `obs` under the adapted model; returns the first action and the whole plan."""
        rt = self.rt
        obs = _vec(obs, rt.obs_dim, "obs")
        with self.lock:
            cfg = self.planner.replace(**planner) if planner else self.planner
            if cfg.horizon not in rt.horizons:
                raise ValueError(f"planner.horizon={cfg.horizon} not exported; available: {rt.horizons}")
            c = self.cost.merged(cost, rt.obs_dim, rt.action_dim)
            W = self.W.astype(np.float32)
            h = self.h.astype(np.float32)
            # risk term: epistemic variance of the normalized delta = (sum of delta noise variances) phi^T P phi
            w_cov = (self.P * self._noise_var()[: rt.obs_dim].sum()).astype(np.float32) \
                if self.mode == "bayes" and c.uncertainty_weight > 0 else None
            mean = self.plan if self.plan.shape[0] == cfg.horizon else self._initial_plan(cfg.horizon)

            def objective(actions: np.ndarray) -> np.ndarray:  # (N, H, A) -> (N,)
                return rt.rollout(obs, h, W, actions, c, w_cov=w_cov)[0]

            new_plan = plan(objective, mean, rt.action_low, rt.action_high, cfg, self.rng)
            costs, states = rt.rollout(obs, h, W, new_plan[None], c, w_cov=w_cov)  # (1,), (1, H, obs_dim)
            self.plan = shift_plan(new_plan)
            return ActResult(new_plan[0].copy(), new_plan, states[0], float(costs[0]))

    def _noise_var(self) -> np.ndarray:
        """bayes: the noise variance per output in normalized units, scaled by the online estimate if any."""
        nv = self.rt.params["bayes_noise_var"].astype(np.float64)
        return nv * noise_factor(self.noise_a, self.noise_b) if self.noise_a > 0 else nv

    def predict(self, obs, actions) -> tuple[np.ndarray, np.ndarray | None]:
        """Open-loop prediction: obs (obs_dim,), actions (T, act_dim) -> (T, obs_dim) [+ variance].

        The variance (raw units) comes from the Bayesian posterior in `bayes` mode, from the Gaussian
        head when the artifact has one, and is None otherwise. For T > 1 it is each step's one-step
        variance at the predicted state (uncertainty is not propagated through the rollout).
        """
        rt = self.rt
        obs = _vec(obs, rt.obs_dim, "obs")
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[1] != rt.action_dim or len(actions) == 0:
            raise ValueError(f"actions must have shape (T, {rt.action_dim}) with T >= 1, got {actions.shape}")
        if not np.isfinite(actions).all():
            raise ValueError("actions must be finite")
        actions = np.clip(actions, rt.action_low, rt.action_high)
        with self.lock:
            out, var = [], []
            x = obs[None]
            for a in actions:
                phi = rt.features(x, a[None], self.h[None].astype(np.float32))  # (1, D)
                x = rt.to_next_obs(x, phi @ self.W.astype(np.float32))
                out.append(x[0])
                if self.mode == "bayes":
                    v = predictive_variance(self.P, phi.astype(np.float64), self._noise_var())[0]
                    var.append(v[: rt.obs_dim] * rt.norm.delta_std**2)
                elif "V" in rt.params:  # Gaussian head: the model's own predicted variance
                    v = np.exp(np.clip(phi[0] @ rt.params["V"], -12.0, 6.0))
                    var.append(v[: rt.obs_dim] * rt.norm.delta_std**2)
            return np.stack(out), (np.stack(var) if var else None)

    # ----------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to restore this session exactly, as named arrays."""
        with self.lock:
            state = {
                "h": self.h, "W": self.W, "plan": self.plan,
                "n_observed": np.array(self.n_observed),
                "rng": np.frombuffer(json.dumps(self.rng.bit_generator.state).encode(), dtype=np.uint8),
            }
            if self.window:
                state["window_phi"] = np.stack([p for p, _ in self.window])
                state["window_y"] = np.stack([t for _, t in self.window])
            if self.mode == "bayes":
                state["P"] = self.P
                state["noise_a"], state["noise_b"] = np.array(self.noise_a), self.noise_b
            return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what `state_dict` saved."""
        with self.lock:
            self.h, self.W, self.plan = state["h"], state["W"], state["plan"]
            self.n_observed = int(state["n_observed"])
            self.rng.bit_generator.state = json.loads(bytes(state["rng"]).decode())
            self.window.clear()
            if "window_phi" in state:
                self.window.extend(zip(state["window_phi"], state["window_y"], strict=True))
            if "P" in state:
                self.P = state["P"]
            if "noise_b" in state:
                self.noise_a, self.noise_b = float(state["noise_a"]), state["noise_b"]

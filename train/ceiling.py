"""The planner's ceiling: plan with the simulator itself as the model, so a result can say how much is lost to the
planner and how much to the learned model (`mbmrl eval --planner-ceiling`).

`SimulatorDynamics` is a `Dynamics` engine for MuJoCo envs whose observation is (qpos without its first k
entries, qvel) — the half-cheetahs and the ant: their dynamics do not depend on the excluded positions (x, or x
and y), so an observation is a whole state. `rollout` runs every sampled action sequence in MuJoCo from that
state under the task's own physics (`mujoco.rollout`, in C) and costs the states exactly as the rollout graphs
cost predictions (DESIGN §3), with the env's own reward (forward velocity - ctrl cost + healthy reward) in place
of the predicted one. There is nothing to adapt: `features` are zeros and `encoder_step` keeps h, so sessions
over it are `none`-mode sessions with a perfect model.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import mujoco
import numpy as np
from mbmrl.runtime.artifact import ModeSpec
from mbmrl.runtime.dynamics import CostTerms
from mbmrl.runtime.model import Runtime
from mujoco import rollout as mj_rollout

STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS  # time, qpos, qvel, act, ...


def action_mask(env: gym.Env) -> np.ndarray | None:
    """The product of the `mask`s of the env's action wrappers (a crippled joint is 0), or None."""
    mask, e = None, env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, gym.ActionWrapper) and hasattr(e, "mask"):
            mask = e.mask if mask is None else mask * e.mask
        e = e.env
    return mask


class SimulatorDynamics:
    """The task's own MuJoCo model as a `Dynamics` engine (see the module doc)."""

    horizons: list[int] | None = None  # any horizon

    def __init__(self, env: gym.Env, hidden_size: int, feature_dim: int, threads: int = 1, action_scale: float = 1.0):
        """`action_scale`: MuJoCo receives the planned actions times this (the control cost stays on the planned
        ones): a heavy cheetah is the nominal one with its torques divided by its mass, so the nominal simulator
        with 1 / g is a perfect model that has estimated the actuator gain g (`runtime/gain.py`)."""
        base = env.unwrapped
        if not isinstance(getattr(base, "model", None), mujoco.MjModel):
            raise ValueError(f"{type(base).__name__} is not a MuJoCo env: the planner ceiling simulates MuJoCo models")
        self.model = base.model  # type: ignore[attr-defined]
        self.frame_skip, self.dt = int(base.frame_skip), float(base.dt)  # type: ignore[attr-defined]
        nq, nv = self.model.nq, self.model.nv
        obs_dim = int(np.prod(env.observation_space.shape))  # type: ignore[arg-type]
        self.skip = nq + nv - obs_dim  # positions left out of the observation
        if self.skip not in (1, 2):
            raise ValueError(f"{type(base).__name__}: the planner ceiling needs an observation (qpos[k:], qvel) "
                             f"with k = 1 or 2 positions left out; this one has {obs_dim} entries for nq={nq}, "
                             f"nv={nv}")
        self.mask = action_mask(env)
        self.action_scale = float(action_scale)
        self.forward_weight = float(getattr(base, "_forward_reward_weight", 1.0))
        self.ctrl_weight = float(getattr(base, "_ctrl_cost_weight", 0.0))
        self.healthy_reward = float(getattr(base, "_healthy_reward", 0.0))
        self.datas = [mujoco.MjData(self.model) for _ in range(max(1, threads))]
        self.hidden_size, self.feature_dim = hidden_size, feature_dim

    def state_of(self, obs: np.ndarray) -> np.ndarray:
        """The full physics state (nstate,) of an observation (the left-out positions at 0)."""
        d = self.datas[0]
        nq = self.model.nq
        d.time = 0.0
        d.qpos[:] = np.concatenate([np.zeros(self.skip), obs[: nq - self.skip]])
        d.qvel[:] = obs[nq - self.skip:]
        d.act[:] = 0.0
        state = np.empty(mujoco.mj_stateSize(self.model, STATE))
        mujoco.mj_getState(self.model, d, state, STATE)
        return state

    def features(self, obs: np.ndarray, action: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Zeros (B, D): a perfect model has nothing to adapt."""
        return np.zeros((len(obs), self.feature_dim), dtype=np.float32)

    def encoder_step(self, h, obs, action, next_obs, reward) -> np.ndarray:
        """h unchanged (B, hidden)."""
        return np.asarray(h, dtype=np.float32)

    def rollout(self, obs: np.ndarray, h: np.ndarray, W: np.ndarray, actions: np.ndarray,
                terms: CostTerms) -> tuple[np.ndarray, np.ndarray]:
        """Simulate N action sequences (N, H, A) from `obs` and cost them: costs (N,), states (N, H, O)."""
        n, horizon, _ = actions.shape
        a = np.clip(actions.astype(np.float64), -1.0, 1.0) * (1.0 if self.mask is None else self.mask)  # (N, H, A)
        control = np.repeat(a * self.action_scale, self.frame_skip, axis=1)  # (N, H * frame_skip, A)
        out, _ = mj_rollout.rollout(self.model, self.datas, self.state_of(np.asarray(obs, np.float64).reshape(-1)),
                                    control)
        nq = self.model.nq
        after = out[:, self.frame_skip - 1 :: self.frame_skip]  # (N, H, nstate): the state after each step
        qpos, qvel = after[..., 1 : 1 + nq], after[..., 1 + nq : 1 + nq + self.model.nv]
        states = np.concatenate([qpos[..., self.skip :], qvel], axis=-1).astype(np.float32)  # (N, H, O)
        x = np.concatenate([np.zeros((n, 1)), qpos[..., 0]], axis=1)  # (N, H + 1): x before and after each step
        reward = (self.forward_weight * np.diff(x, axis=1) / self.dt - self.ctrl_weight * (a * a).sum(-1)
                  + self.healthy_reward)  # (N, H)
        step_w = np.ones(horizon)
        step_w[-1] = float(terms.terminal_weight[0])
        dev = states - terms.target  # (N, H, O)
        cost = (step_w[:, None] * (dev * dev * terms.q + states * terms.linear)).sum((1, 2))
        cost = cost + (actions * actions * terms.r).sum((1, 2))
        cost = cost - float(terms.reward_weight[0]) * reward.sum(1)
        return cost.astype(np.float32), states


def ceiling_runtime(rt: Runtime, env: gym.Env, threads: int = 1, action_scale: float = 1.0) -> Runtime:
    """`rt` with the simulator of `env` as its engine and only the `none` mode: sessions plan with a perfect model
    (of `env`'s physics, driven by the planned actions times `action_scale`)."""
    manifest = dataclasses.replace(rt.manifest, modes={"none": ModeSpec()}, default_mode="none")
    engine = SimulatorDynamics(env, rt.manifest.hidden_size, rt.feature_dim, threads, action_scale)
    return Runtime(manifest, rt.params, engine, rt.path)  # type: ignore[arg-type]

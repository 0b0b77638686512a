"""Ant family: Gymnasium's Ant-v5 (MuJoCo) with CaDM's mass changes and reward (Lee et al., ICML 2020).

CaDM (`cadm/envs/ant_env.py`, `cadm/envs/config.py`) scales the two front legs' body masses by `mass_scale`
and the two back legs' by 1 / `mass_scale` (bodies 2-4 and 5-7 x s, 8-10 and 11-13 / s; the torso keeps its
mass), the same pattern on `dof_damping` with `damping_scale`. Train masses {0.85, 0.9, 0.95, 1.0}, damping 1.0;
test (CaDM's `test_range`): "moderate" {0.4, 0.45, 0.5, 0.55, 0.6} and "extreme" {0.2, 0.25, 0.3, 0.35, 0.4}.
1000-step episodes that never terminate; reward = forward velocity - 0.005 |a|^2 + 0.05 (CaDM's, set through
Ant-v5's weights with the healthy range opened so the 0.05 is always paid). Start: Ant-v5's (qpos + U(-0.1, 0.1),
qvel + 0.1 N(0, 1)), which is CaDM's.

Observation: Ant-v5 without contact forces: qpos[2:] (13: torso z, quaternion, 8 joint angles) and qvel (14);
index 13 is qvel[0], the torso's forward velocity (CaDM puts a finite-difference x velocity first instead).
Default cost, as for the half-cheetah: the reward itself, known in closed form (forward velocity obs[13] minus
0.005 |a|^2; `reward_source` 'known').
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.utils import RecordConstructorArgs

from . import mujoco_log
from .base import Choice, CostSpec, Params, TaskFamily

EPISODE_STEPS = 1000
TRAIN_MASS_SCALES = (0.85, 0.9, 0.95, 1.0)
FORWARD_VELOCITY_INDEX = 13  # obs[13] = qvel[0], the torso's x velocity
CTRL_COST = 0.005  # CaDM's Ant control cost weight
LEGS = ("front_left", "front_right", "back_left", "back_right")
ACTION_NAMES = tuple(f"{leg}_{j}" for leg in ("back_right", "front_left", "front_right", "back_left")
                     for j in ("hip", "ankle"))  # Ant-v5's actuator order: hip_4, ankle_4, hip_1, ankle_1, ...
JOINTS = tuple(f"{leg}_{j}" for leg in LEGS for j in ("hip", "ankle"))  # qpos order: hip_1, ankle_1, ...
OBS_NAMES = (("torso_z", "qw", "qx", "qy", "qz") + JOINTS
             + ("vx", "vy", "vz", "wx", "wy", "wz") + tuple(f"{j}_vel" for j in JOINTS))
# chosen from the planner ceiling (docs/cadm.md), as for the half-cheetah
PLANNER: dict[str, float | str] = {"method": "cem", "horizon": 30, "samples": 200, "iterations": 3, "noise_scale": 0.5}
# the default cost: the env's own reward, forward velocity minus the control cost (`reward_source` known)
COST = CostSpec.forward_reward(len(OBS_NAMES), len(ACTION_NAMES), FORWARD_VELOCITY_INDEX, CTRL_COST)
SCALED = (slice(2, 5), slice(5, 8))  # the front legs' bodies (and the same indices of dof_damping, as CaDM)
INVERSE = (slice(8, 11), slice(11, 14))  # the back legs'


class LegScales(gym.Wrapper, RecordConstructorArgs):
    """CaDM's Ant physics: front legs' masses (and dampings) x scale, back legs' / scale."""

    def __init__(self, env: gym.Env, mass_scale: float = 1.0, damping_scale: float = 1.0):
        if mass_scale <= 0 or damping_scale <= 0:
            raise ValueError(f"need mass_scale > 0 and damping_scale > 0, got {mass_scale=}, {damping_scale=}")
        RecordConstructorArgs.__init__(self, mass_scale=mass_scale, damping_scale=damping_scale)
        super().__init__(env)
        model = env.unwrapped.model  # type: ignore[attr-defined]
        self.mass_scale, self.damping_scale = float(mass_scale), float(damping_scale)
        for array, s in ((model.body_mass, self.mass_scale), (model.dof_damping, self.damping_scale)):
            default = np.array(array)
            for part in SCALED:
                array[part] = default[part] * s
            for part in INVERSE:
                array[part] = default[part] / s


def make_ant(params: Params, start: str = "default") -> gym.Env:
    """Ant-v5 (1000 steps, CaDM's reward, no termination) with `params` from {"mass_scale", "damping_scale"}."""
    unknown = set(params) - {"mass_scale", "damping_scale"}
    if unknown:
        raise ValueError(f"unknown ant params {sorted(unknown)}; expected mass_scale, damping_scale")
    if start != "default":
        raise ValueError(f"unknown start {start!r} for ant; expected 'default' (Ant-v5's, which is CaDM's)")
    mujoco_log.install()
    env = gym.make("Ant-v5", max_episode_steps=EPISODE_STEPS, include_cfrc_ext_in_observation=False,
                   ctrl_cost_weight=CTRL_COST, contact_cost_weight=0.0, healthy_reward=0.05,
                   terminate_when_unhealthy=False, healthy_z_range=(-np.inf, np.inf))
    return LegScales(env, params.get("mass_scale", 1.0), params.get("damping_scale", 1.0))


def ant_family() -> TaskFamily:
    """Ant with the front legs' masses scaled and the back legs' inversely per task (CaDM's sets)."""
    scales = lambda values: ({"mass_scale": Choice(values), "damping_scale": Choice((1.0,))},)  # noqa: E731
    return TaskFamily(
        name="ant", make_env=make_ant,
        train={"mass_scale": Choice(TRAIN_MASS_SCALES), "damping_scale": Choice((1.0,))},
        test_splits={"moderate": scales((0.4, 0.45, 0.5, 0.55, 0.6)),
                     "extreme": scales((0.2, 0.25, 0.3, 0.35, 0.4))},
        episode_steps=EPISODE_STEPS, default_cost=COST, obs_names=OBS_NAMES, action_names=ACTION_NAMES,
        default_planner=dict(PLANNER),
        description="Gymnasium Ant-v5, front legs' masses x s and back legs' / s per task, CaDM's reward (CaDM).",
    )

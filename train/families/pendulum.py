"""Pendulum family: Gymnasium's Pendulum-v1 with mass and length drawn per task (CaDM protocol).

Parameters follow CaDM (Lee et al., ICML 2020, `cadm/envs/config.py`): train mass and
length in {0.75, 0.80, ..., 1.25}; test splits outside that range.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from .base import Choice, CostSpec, Params, TaskFamily

TRAIN_VALUES = tuple(round(0.75 + 0.05 * i, 2) for i in range(11))


class CaDMStart(gym.Wrapper):
    """Start hanging down as in CaDM: theta in [7pi/8, 9pi/8], theta_dot in [-0.2, 0.2]."""

    def reset(self, *, seed=None, options=None):
        """Reset, then start hanging down (CaDM's start distribution)."""
        super().reset(seed=seed, options=options)
        base: Any = self.unwrapped  # gymnasium's PendulumEnv
        theta = base.np_random.uniform(7 * np.pi / 8, 9 * np.pi / 8)
        theta_dot = base.np_random.uniform(-0.2, 0.2)
        base.state = np.array([theta, theta_dot])
        return base._get_obs().astype(np.float32), {}


def make_pendulum(params: Params, start: str = "default") -> gym.Env:
    """Pendulum-v1 (200 steps) with physics `params` = {"mass", "length"}."""
    env = gym.make("Pendulum-v1", max_episode_steps=200)
    base: Any = env.unwrapped  # PendulumEnv exposes its physics as m, l, g
    base.m = float(params["mass"])
    base.l = float(params["length"])
    if start == "cadm":
        env = CaDMStart(env)
    elif start != "default":
        raise ValueError(f"unknown start {start!r} for pendulum; expected 'default' or 'cadm'")
    return env


def pendulum_family() -> TaskFamily:
    """The pendulum family with CaDM's train set and moderate/extreme test splits."""
    return TaskFamily(
        name="pendulum",
        make_env=make_pendulum,
        train={"mass": Choice(TRAIN_VALUES), "length": Choice(TRAIN_VALUES)},
        test_splits={
            "moderate": (
                {"mass": Choice((0.5, 0.7)), "length": Choice((1.3, 1.5))},
                {"mass": Choice((1.3, 1.5)), "length": Choice((0.5, 0.7))},
            ),
            "extreme": (
                {"mass": Choice((0.2, 0.4)), "length": Choice((1.6, 1.8))},
                {"mass": Choice((1.6, 1.8)), "length": Choice((0.2, 0.4))},
            ),
        },
        episode_steps=200,
        # The learned reward (Pendulum's own -(theta^2 + 0.1 thdot^2 + 0.001 u^2)) drives the swing-up: the
        # quadratic (cos-1)^2 + sin^2 = 2 - 2 cos(theta) is flat at the bottom, so a 15-step plan sees no
        # gain from pumping energy. The quadratic term keeps the upright target explicit.
        default_cost=CostSpec(target=(1.0, 0.0, 0.0), q=(0.5, 0.5, 0.0), r=(0.001,), terminal_weight=1.0,
                              reward_weight=1.0),
        obs_names=("cos_theta", "sin_theta", "theta_dot"),
        action_names=("torque",),
        eval_start="cadm",
        default_planner={"horizon": 15, "samples": 256, "temperature": 0.1, "noise_scale": 0.5,
                         "noise_beta": 2.0},  # smooth (iCEM) noise: +8% return at N=256 (docs/edge.md)
        description="Gymnasium Pendulum-v1, mass and length per task (CaDM protocol).",
    )

"""Cart-pole family: Gymnasium's CartPole physics with push force and pole length per task (CaDM).

Parameters follow CaDM (Lee et al., ICML 2020, `cadm/envs/config.py` and
`RandomCartPole_Force_Length` in `cadm/envs/classic_control.py`):

- `force_mag` -> `CartPoleEnv.force_mag`, the magnitude of the push (N);
  train {5, 6, ..., 15}.
- `length` -> `CartPoleEnv.length`, the pole's *half*-length (m); train {0.40, 0.45, ..., 0.60}.
- the pole mass is fixed at 0.1 and the derived `total_mass = masspole + masscart` and
  `polemass_length = masspole * length` are recomputed, as CaDM's `_followup` does.

Test splits are CaDM's `test_range`, in its order, each a 2 x 2 grid (force x length).
Start states, the 200-step horizon, the reward (1 per step) and termination
(|x| > 2.4 or |theta| > 12 degrees) are Gymnasium's, which CaDM's env also uses.

CaDM's agent has Gymnasium's two discrete actions (push left/right with `force_mag`).
Our MPC planner needs continuous actions, so the env's action is a Box [-1, 1]:
`action_mode="continuous"` (default) pushes with `force = force_mag * action`;
`action_mode="bang_bang"` pushes with `+force_mag` if `action >= 0` else `-force_mag`
(CaDM's discrete actions 1 and 0), for the published comparison.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.wrappers import TimeLimit

from .base import Choice, CostSpec, Params, TaskFamily

EPISODE_STEPS = 200
POLE_MASS = 0.1
ACTION_MODES = ("continuous", "bang_bang")
TRAIN_FORCES = tuple(float(f) for f in range(5, 16))
TRAIN_LENGTHS = tuple(round(0.40 + 0.05 * i, 2) for i in range(5))


class ParamCartPoleEnv(CartPoleEnv):
    """Gymnasium's CartPoleEnv with a Box [-1, 1] action and settable force and pole length.

    `step` repeats CartPoleEnv's Euler equations with the force given by `action_mode`;
    everything else (reset, termination, reward, rendering) is inherited.
    """

    def __init__(
        self,
        force_mag: float = 10.0,
        length: float = 0.5,
        action_mode: str = "continuous",
        render_mode: str | None = None,
    ):
        if action_mode not in ACTION_MODES:
            raise ValueError(
                f"unknown action_mode {action_mode!r} for cartpole; expected one of {ACTION_MODES}"
            )
        super().__init__(render_mode=render_mode)
        self.action_mode = action_mode
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.set_params(force_mag, length)

    def set_params(self, force_mag: float, length: float) -> None:
        """Set the push force and pole half-length, and recompute the derived masses."""
        if force_mag <= 0 or length <= 0:
            raise ValueError(f"cartpole needs force_mag > 0 and length > 0, got {force_mag=}, {length=}")
        self.force_mag = float(force_mag)
        self.length = float(length)
        self.masspole = POLE_MASS
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length

    def force(self, action: Any) -> float:
        """The push (N) for an action in [-1, 1] (clipped), according to `action_mode`."""
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        if self.action_mode == "bang_bang":
            return self.force_mag if a >= 0.0 else -self.force_mag
        return self.force_mag * a

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Gymnasium's cart-pole equations with this task's physics and actuation."""
        if self.state is None:
            raise RuntimeError("call reset() before step() on the cartpole env")
        x, x_dot, theta, theta_dot = self.state
        force = self.force(action)
        # CartPoleEnv.step's equations (Florian 2007, with the pole's half-length `length`).
        costheta, sintheta = np.cos(theta), np.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        if self.kinematics_integrator == "euler":
            x, x_dot = x + self.tau * x_dot, x_dot + self.tau * xacc
            theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * thetaacc
        else:  # semi-implicit Euler
            x_dot = x_dot + self.tau * xacc
            x = x + self.tau * x_dot
            theta_dot = theta_dot + self.tau * thetaacc
            theta = theta + self.tau * theta_dot
        self.state = np.array((x, x_dot, theta, theta_dot), dtype=np.float64)

        terminated = bool(abs(x) > self.x_threshold or abs(theta) > self.theta_threshold_radians)
        if not terminated:
            reward = 1.0
        elif self.steps_beyond_terminated is None:  # the pole just fell
            self.steps_beyond_terminated = 0  # type: ignore[assignment]  # Gymnasium types it as None
            reward = 1.0
        else:
            if self.steps_beyond_terminated == 0:
                gym.logger.warn("step() called after the cartpole terminated; call reset() first.")
            self.steps_beyond_terminated += 1
            reward = 0.0
        if self.render_mode == "human":
            self.render()
        return self.state.astype(np.float32), reward, terminated, False, {}


def make_cartpole(params: Params, start: str = "default", *, action_mode: str = "continuous") -> gym.Env:
    """Cart-pole (200 steps) with physics `params` = {"force_mag", "length"} (length = half-length)."""
    if start != "default":
        raise ValueError(f"unknown start {start!r} for cartpole; expected 'default' (CaDM uses Gymnasium's)")
    env = ParamCartPoleEnv(float(params["force_mag"]), float(params["length"]), action_mode=action_mode)
    return TimeLimit(env, max_episode_steps=EPISODE_STEPS)


def _grid(forces: tuple[float, float], lengths: tuple[float, float]) -> tuple[dict[str, Choice], ...]:
    return ({"force_mag": Choice(forces), "length": Choice(lengths)},)


def cartpole_family(action_mode: str = "continuous") -> TaskFamily:
    """The cart-pole family with CaDM's train set and its four test splits (4 tasks each)."""
    bang = action_mode == "bang_bang"
    return TaskFamily(
        name="cartpole_bang_bang" if bang else "cartpole",
        make_env=partial(make_cartpole, action_mode=action_mode),
        train={"force_mag": Choice(TRAIN_FORCES), "length": Choice(TRAIN_LENGTHS)},
        test_splits={
            "extreme_low": _grid((2.0, 2.5), (0.15, 0.20)),
            "moderate_low": _grid((3.0, 3.5), (0.25, 0.30)),
            "moderate_high": _grid((16.5, 17.0), (0.70, 0.75)),
            "extreme_high": _grid((17.5, 18.0), (0.80, 0.85)),
        },
        episode_steps=EPISODE_STEPS,
        default_cost=CostSpec(
            target=(0.0, 0.0, 0.0, 0.0), q=(0.1, 0.01, 1.0, 0.01), r=(0.0 if bang else 0.001,), terminal_weight=1.0
        ),
        obs_names=("x", "x_dot", "theta", "theta_dot"),
        action_names=("force",),
        default_planner={"horizon": 15, "samples": 256, "temperature": 0.1, "noise_scale": 0.5},
        description=("Gymnasium CartPole physics with CaDM's two actions (push +/- force_mag by the sign of the "
                     "action); force and pole length per task (CaDM)." if bang else
                     "Gymnasium CartPole physics, continuous push; force and pole length per task (CaDM)."),
    )


def cartpole_bang_bang_family() -> TaskFamily:
    """CaDM's actuation for the published comparison: the action's sign picks +/- force_mag."""
    return cartpole_family("bang_bang")

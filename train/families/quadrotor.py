"""Quadrotor family: a 3D quadrotor in pure numpy with payload, weak motors, drag and wind per task.

The action is what a companion computer sends a flight controller: collective thrust and
body-rate setpoints, tracked by a first-order rate loop. Tasks vary the payload mass, the
thrust coefficient (battery, worn motors), linear drag and a constant wind (Neural-Fly,
O'Connell et al. 2022). `suspended=True` hangs the payload on a rigid cable below the
drone as a spherical pendulum (Belkhale et al. 2021).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit
from mbmrl.runtime.reference import Reference, ReferenceLayout

from .base import Params, box_bounds

G = 9.81  # m/s^2
FRAME_MASS = 1.0  # kg, the nominal frame
MAX_THRUST = 2.0 * FRAME_MASS * G  # N at thrust_coef 1; a0 = 0 hovers the bare nominal frame
MAX_RATE = 3.0  # rad/s, body-rate setpoint at |a| = 1
RATE_TAU = 0.05  # s, time constant of the flight controller's rate loop
DT = 0.02  # s, control period (50 Hz)
SUBSTEPS = 4  # RK4 substeps per control step
EPISODE_STEPS = 500  # 10 s
SAFETY_RADIUS = 5.0  # m from the reference before the episode terminates
# Observation bounds: the references lie within 2 m of the origin, so a live drone stays within
# ~7 m; from rest it cannot reach ~30 m/s inside the box (at most ~3g of acceleration).
POSITION_BOUND = 10.0  # m
SPEED_BOUND = 50.0  # m/s
ACTION_PENALTY = 0.01
HOVER_POINT = (0.0, 0.0, 1.0)
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # first two columns of the identity rotation

BASE_OBS_NAMES = (
    "x", "y", "z", "vx", "vy", "vz", "r11", "r21", "r31", "r12", "r22", "r32", "wx", "wy", "wz",
)
PAYLOAD_OBS_NAMES = ("lx", "ly", "lz", "lvx", "lvy", "lvz")  # payload relative to the drone
ACTION_NAMES = ("thrust", "roll_rate", "pitch_rate", "yaw_rate")
RIGID_PARAMS = ("payload", "thrust_coef", "drag", "wind_x", "wind_y")
SUSPENDED_PARAMS = (*RIGID_PARAMS, "cable_length")
# The obs entries a reference feeds: position, and velocity as feed-forward (a moving target at rest lags)
REFERENCE_LAYOUT = ReferenceLayout(dt=DT, position=(0, 1, 2), velocity=(3, 4, 5))
CONTROL_TASKS: dict[str, Reference] = {
    "hover": Reference("hover", center=HOVER_POINT),
    # 2.5 m x 1.5 m in the x-z plane, one lap in 2 pi s: up to 1.9 m/s and 3 m/s^2 (vertically)
    "figure8": Reference("figure8", center=HOVER_POINT, size=(1.25, 0.75), period=2 * np.pi, plane="xz"),
}
TASKS = tuple(CONTROL_TASKS)


def quat_to_rot(q: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3), body to world, of a unit quaternion q = (w, x, y, z)."""
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def quat_rate(q: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """dq/dt (4,) = q ⊗ (0, omega) / 2 for body rates omega (3,)."""
    w, x, y, z = q
    p, r, s = omega
    return 0.5 * np.array([
        -x * p - y * r - z * s,
        w * p + y * s - z * r,
        w * r - x * s + z * p,
        w * s + x * r - y * p,
    ])


def _read_params(params: Params, suspended: bool) -> Params:
    """Physics parameters as floats, checked against the names the variant needs."""
    expected = SUSPENDED_PARAMS if suspended else RIGID_PARAMS
    missing = [k for k in expected if k not in params]
    unknown = [k for k in params if k not in expected]
    if missing or unknown:
        raise ValueError(
            f"quadrotor (suspended={suspended}) needs params {list(expected)}; "
            f"missing {missing}, unknown {unknown}"
        )
    return {k: float(params[k]) for k in expected}


def hover_fraction(params: Params) -> float:
    """Share of the available thrust needed to hover at rest against gravity and the wind's drag."""
    weight = FRAME_MASS * (1.0 + float(params["payload"])) * G
    wind_force = float(params["drag"]) * float(np.hypot(params["wind_x"], params["wind_y"]))
    return float(np.hypot(weight, wind_force) / (float(params["thrust_coef"]) * MAX_THRUST))


def hover_action(params: Params) -> float:
    """Thrust action a0 whose thrust exactly balances the total weight (level, no wind)."""
    weight = FRAME_MASS * (1.0 + float(params["payload"])) * G
    return 2.0 * weight / (float(params["thrust_coef"]) * MAX_THRUST) - 1.0


def peak_thrust_fraction(params: Params, reference: Reference, wind: float, gust: float = 0.0) -> float:
    """Largest share of the available thrust that following `reference` exactly takes (wind along x at up to
    `wind + gust` m/s): above 1 the drone cannot fly it, whatever the controller."""
    t = np.linspace(0.0, reference.period, 400)
    _, vel, acc = reference.at(t)  # (T, 3) each
    mass = FRAME_MASS * (1.0 + float(params["payload"]))
    air = np.array([wind + abs(gust), 0.0, 0.0]) - vel  # wind relative to the drone
    force = mass * (acc + np.array([0.0, 0.0, G])) - float(params["drag"]) * air  # thrust the rotors must give
    return float(np.linalg.norm(force, axis=1).max() / (float(params["thrust_coef"]) * MAX_THRUST))


class QuadrotorEnv(gym.Env):
    """A quadrotor (optionally with a suspended payload) tracking a hover point or a figure eight.

    Internal state (float64): p (3), v (3), quaternion q (4), body rates w (3), and with
    `suspended` the payload's position d (3) and velocity dd (3) relative to the drone.
    Observation (float32): p, v, the first two columns of R, w [, d, dd]; 15 or 21 numbers.
    """

    metadata = {"render_modes": [], "render_fps": int(1 / DT)}

    def __init__(
        self,
        params: Params,
        *,
        task: str | Reference = "hover",
        suspended: bool = False,
        max_episode_steps: int = EPISODE_STEPS,
        position_noise: float = 0.1,
        tilt_noise: float = 0.05,
        gust: tuple[float, float] = (0.0, 0.0),
    ):
        if isinstance(task, str) and task not in CONTROL_TASKS:
            raise ValueError(f"unknown quadrotor task {task!r}; expected one of {TASKS} or a Reference")
        self.params = _read_params(params, suspended)
        self.task, self.suspended = task, suspended
        self.ref = CONTROL_TASKS[task] if isinstance(task, str) else task
        self.max_episode_steps = max_episode_steps
        self.position_noise, self.tilt_noise = position_noise, tilt_noise
        self.obs_names = BASE_OBS_NAMES + (PAYLOAD_OBS_NAMES if suspended else ())
        self.obs_dim = len(self.obs_names)

        payload_mass = FRAME_MASS * self.params["payload"]
        # Rigid: the payload is part of the body. Suspended: the frame alone, payload via the cable.
        self.drone_mass = FRAME_MASS if suspended else FRAME_MASS + payload_mass
        self.reduced_mass = FRAME_MASS * payload_mass / (FRAME_MASS + payload_mass)
        self.cable_length = self.params.get("cable_length", 0.0)
        self.wind = np.array([self.params["wind_x"], self.params["wind_y"], 0.0])
        # gusts: wind(t) = wind + amplitude sin(omega t) along the wind's direction (x in calm air)
        self.gust_amplitude, self.gust_omega = float(gust[0]), float(gust[1])
        speed = float(np.linalg.norm(self.wind))
        self.gust_direction = self.wind / speed if speed > 0 else np.array([1.0, 0.0, 0.0])

        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        # Rates track setpoints within +-MAX_RATE without overshoot; 2x leaves room for rounding.
        bounds = [POSITION_BOUND] * 3 + [SPEED_BOUND] * 3 + [1.0] * 6 + [2.0 * MAX_RATE] * 3
        if suspended:
            bounds += [1.01 * self.cable_length] * 3 + [SPEED_BOUND] * 3
        high = np.array(bounds, dtype=np.float32)  # (obs_dim,)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.state = np.zeros(19 if suspended else 13)
        self.steps = 0

    def reference(self, t: float) -> np.ndarray:
        """Reference position (3,) at time t seconds."""
        return self.ref.at(t)[0][0]

    def wind_at(self, t: float) -> np.ndarray:
        """The wind (3,) at time t seconds: constant, plus the gust."""
        return self.wind + self.gust_amplitude * np.sin(self.gust_omega * t) * self.gust_direction

    def reference_obs(self, step: int, horizon: int) -> np.ndarray:
        """Target observations (horizon, obs_dim): row i is for the obs after step `step + 1 + i`.

        Position and velocity from the reference (the same targets a session holding `self.ref` plans with),
        level attitude, everything else zero, except that a suspended payload's target hangs straight down
        at (0, 0, -cable_length).
        """
        base = np.zeros((horizon, self.obs_dim), dtype=np.float32)
        base[:, 6:12] = IDENTITY_6D
        if self.suspended:
            base[:, 17] = -self.cable_length
        return self.ref.targets(base, REFERENCE_LAYOUT, step * DT)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start near the reference's first point, slightly tilted, at rest."""
        super().reset(seed=seed)
        rng = self.np_random
        p = self.reference(0.0) + rng.uniform(-self.position_noise, self.position_noise, size=3)
        axis_angle = np.zeros(3)
        axis_angle[:2] = rng.uniform(-self.tilt_noise, self.tilt_noise, size=2)  # small roll/pitch
        angle = float(np.linalg.norm(axis_angle))
        q = np.array([1.0, 0.0, 0.0, 0.0])
        if angle > 0.0:
            q = np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis_angle / angle])
        state = [p, np.zeros(3), q, np.zeros(3)]
        if self.suspended:
            state += [np.array([0.0, 0.0, -self.cable_length]), np.zeros(3)]
        self.state = np.concatenate(state)
        self.steps = 0
        return self._obs(), {"position_error": self._position_error()}

    def step(self, action):
        """Integrate one control period of the rigid body (and payload) under this task's physics."""
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)  # (4,)
        thrust = self.params["thrust_coef"] * (a[0] + 1.0) / 2.0 * MAX_THRUST
        rate_cmd = a[1:] * MAX_RATE
        wind = self.wind_at(self.steps * DT)  # (3,) held over the control period
        h = DT / SUBSTEPS
        s = self.state
        for _ in range(SUBSTEPS):
            k1 = self._derivative(s, thrust, rate_cmd, wind)
            k2 = self._derivative(s + 0.5 * h * k1, thrust, rate_cmd, wind)
            k3 = self._derivative(s + 0.5 * h * k2, thrust, rate_cmd, wind)
            k4 = self._derivative(s + h * k3, thrust, rate_cmd, wind)
            s = self._project(s + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4))
        self.state = s
        self.steps += 1

        error = self._position_error()
        obs = self._obs()
        finite = bool(np.all(np.isfinite(self.state)))
        terminated = not finite or error > SAFETY_RADIUS or self.state[2] < -1.0
        reward = (-error - ACTION_PENALTY * float(a @ a)) if finite else -2.0 * SAFETY_RADIUS
        if not finite:
            obs = np.clip(np.nan_to_num(obs), *box_bounds(self.observation_space))
        truncated = self.steps >= self.max_episode_steps
        return obs, float(reward), bool(terminated), bool(truncated), {"position_error": error}

    def _derivative(self, s: np.ndarray, thrust: float, rate_cmd: np.ndarray, wind: np.ndarray) -> np.ndarray:
        """ds/dt of the internal state s (13,) or (19,) under a fixed thrust, rate setpoint and wind."""
        v, q, w = s[3:6], s[6:10], s[10:13]
        force = thrust * quat_to_rot(q)[:, 2] - self.params["drag"] * (v - wind)  # (3,)
        acc = force / self.drone_mass
        acc[2] -= G
        ds = np.empty_like(s)
        ds[0:3] = v
        ds[6:10] = quat_rate(q, w)
        ds[10:13] = (rate_cmd - w) / RATE_TAU
        if self.suspended:
            d, dd = s[13:16], s[16:19]
            length = float(np.linalg.norm(d))
            n = d / length  # unit vector, drone -> payload
            rel_free = np.array([0.0, 0.0, -G]) - acc  # payload minus drone acceleration, cable slack
            centripetal = float(dd @ dd) / length
            # Rigid-rod tension keeping |d| constant; it pulls the drone towards the payload.
            tension = self.reduced_mass * (float(n @ rel_free) + centripetal)
            acc = acc + tension * n / self.drone_mass
            ds[13:16] = dd
            ds[16:19] = rel_free - n * (float(n @ rel_free) + centripetal)
        ds[3:6] = acc
        return ds

    def _project(self, s: np.ndarray) -> np.ndarray:
        """Renormalize the quaternion and put the payload back on its sphere (drift of the solver)."""
        s[6:10] /= np.linalg.norm(s[6:10])
        if self.suspended:
            n = s[13:16] / np.linalg.norm(s[13:16])
            s[13:16] = self.cable_length * n
            s[16:19] -= n * float(n @ s[16:19])
        return s

    def _obs(self) -> np.ndarray:
        s = self.state
        rot = np.clip(quat_to_rot(s[6:10]), -1.0, 1.0)  # rounding can leave a unit entry by an ulp
        parts = [s[0:6], rot[:, 0], rot[:, 1], s[10:13]]
        if self.suspended:
            parts.append(s[13:19])
        return np.concatenate(parts).astype(np.float32)  # (obs_dim,)

    def _position_error(self) -> float:
        return float(np.linalg.norm(self.state[0:3] - self.reference(self.steps * DT)))


def make_quadrotor(
    params: Params, start: str = "default", *, task: str | Reference = "hover", suspended: bool = False,
    gust: tuple[float, float] = (0.0, 0.0),
) -> gym.Env:
    """A `QuadrotorEnv` with physics `params`, limited to 500 steps (10 s)."""
    if start != "default":
        raise ValueError(f"unknown start {start!r} for quadrotor; expected 'default'")
    env = QuadrotorEnv(params, task=task, suspended=suspended, max_episode_steps=EPISODE_STEPS, gust=gust)
    return TimeLimit(env, max_episode_steps=EPISODE_STEPS)

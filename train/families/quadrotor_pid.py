"""The classical baseline for the quadrotor families: a cascaded PID position controller with acceleration
feed-forward and a geometric attitude loop (Lee et al. 2010; Neural-Fly's "nonlinear baseline" row).

Outer loop: a_cmd = a_ref - Kp e_p - Kd e_v - Ki int(e_p) + g z; thrust = m_nominal a_cmd . (body z).
Inner loop: the attitude error to the frame whose z axis is a_cmd (yaw 0) gives body-rate setpoints
w = -K_R e_R, sent as the rate commands the flight controller tracks. It knows the nominal drone (the
training distribution's mean payload and thrust), not the task: the integral term absorbs payload and wind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mbmrl.runtime.reference import Reference

from .quadrotor import DT, FRAME_MASS, MAX_RATE, MAX_THRUST, G


@dataclass(frozen=True)
class PIDGains:
    """Gains of the cascaded controller (per axis, SI units); defaults: the best of `tools/tune_pid.py`'s grid on
    8 training tasks (2.4 cm mean figure-eight error there; the PD's best 7.8 cm)."""

    kp: float = 16.0  # 1/s^2
    kd: float = 8.0  # 1/s
    ki: float = 16.0  # 1/s^3
    k_att: float = 8.0  # 1/s: body-rate setpoint per radian of attitude error
    integral_limit: float = 2.0  # m s: anti-windup clamp per axis
    max_tilt: float = 0.8  # rad
    nominal_payload: float = 0.2  # the controller's model of the drone: the train space's mean
    nominal_thrust_coef: float = 1.0


PD_GAINS = PIDGains(kd=11.0, ki=0.0)  # no integral (Neural-Fly's "nonlinear baseline"), tuned the same way


class QuadrotorPID:
    """A policy obs -> action following `reference`; call `reset()` before each episode."""

    def __init__(self, reference: Reference, gains: PIDGains = PIDGains(), dt: float = DT):
        self.reference, self.gains, self.dt = reference, gains, dt
        self.mass = FRAME_MASS * (1.0 + gains.nominal_payload)
        self.reset()

    def reset(self) -> None:
        """Zero the integral and restart the reference clock."""
        self.integral = np.zeros(3)
        self.step = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """The action (4,) for `obs` at the next reference time (one control period per call)."""
        g = self.gains
        p, v = obs[0:3].astype(np.float64), obs[3:6].astype(np.float64)
        c1, c2 = obs[6:9].astype(np.float64), obs[9:12].astype(np.float64)
        rot = np.stack([c1, c2, np.cross(c1, c2)], axis=1)  # (3, 3) body to world
        p_ref, v_ref, a_ref = (x[0] for x in self.reference.at(self.step * self.dt))
        self.step += 1
        e_p, e_v = p - p_ref, v - v_ref
        self.integral = np.clip(self.integral + e_p * self.dt, -g.integral_limit, g.integral_limit)
        acc = a_ref - g.kp * e_p - g.kd * e_v - g.ki * self.integral + np.array([0.0, 0.0, G])  # (3,)
        # limit the tilt: keep the vertical part, shrink the horizontal one
        horizontal = np.linalg.norm(acc[:2])
        max_horizontal = max(acc[2], 0.1) * np.tan(g.max_tilt)
        if horizontal > max_horizontal:
            acc[:2] *= max_horizontal / horizontal
        force = self.mass * acc
        thrust = float(force @ rot[:, 2])
        z_d = force / np.linalg.norm(force)
        y_d = np.cross(z_d, np.array([1.0, 0.0, 0.0]))
        y_d /= np.linalg.norm(y_d)
        rot_d = np.stack([np.cross(y_d, z_d), y_d, z_d], axis=1)
        m = rot_d.T @ rot - rot.T @ rot_d
        e_rot = 0.5 * np.array([m[2, 1], m[0, 2], m[1, 0]])  # vee of the skew part
        rates = -g.k_att * e_rot
        a0 = 2.0 * thrust / (g.nominal_thrust_coef * MAX_THRUST) - 1.0
        return np.clip(np.concatenate([[a0], rates / MAX_RATE]), -1.0, 1.0).astype(np.float32)

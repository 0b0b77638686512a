"""HalfCheetah families: Gymnasium's HalfCheetah-v5 (MuJoCo) with CaDM's physics changes.

Both follow CaDM (Lee et al., ICML 2020, `cadm/envs/config.py`,
`cadm/envs/half_cheetah_env.py`, `cadm/envs/half_cheetah_cripple_env.py`); episodes are
1000 steps.

`halfcheetah` -- params {"mass_scale", "damping_scale"}, mapped from the env's defaults
(copied when the env is built, so envs never share state):

    model.body_mass[:]   = default_body_mass   * mass_scale     (every body; world stays 0)
    model.dof_damping[:] = default_dof_damping * damping_scale  (every dof; root dofs stay 0)

As in CaDM, `body_inertia` is not scaled. Train scales {0.75, 0.85, 1.0, 1.15, 1.25} for
both; test splits (CaDM's `test_range`, each a 2 x 2 grid of mass x damping):
extreme_low {0.2, 0.3}, moderate_low {0.4, 0.5}, moderate_high {1.5, 1.6},
extreme_high {1.7, 1.8}.

`cripple_halfcheetah` -- param {"cripple_joint"}, an integer index (held as a float) into
the 6 action dims (bthigh, bshin, bfoot, fthigh, fshin, ffoot). As CaDM does, the action
is multiplied by a mask with 0 at that dim before stepping (so the control cost also sees
the masked action), and the crippled limb's geom is coloured red. Train joints {0, 1, 2, 3};
test split "unseen_joint" {4, 5}. CaDM's second test setting (joints 4 and 5 both
crippled, `extreme_set=[1]`) is not represented by this one-joint parameter.

Observation: Gymnasium's 17-dim obs, qpos[1:] (8) then qvel (9); the x position is
excluded and index 8 is qvel[0], the root's forward velocity. (CaDM's own obs instead
puts a finite-difference x velocity first; we keep Gymnasium's.) The root's pitch obs[1] is
wrapped into [-pi/2, 3pi/2) (`wrap_pitch`): Gymnasium's is unbounded, and a cheetah that
somersaults lands at 3pi or -3pi, physically its usual running-on-its-back pitch pi but an angle
no model has been trained on (CaDM's model reads sin and cos of it instead). The window holds
upright (0) and on-its-back (pi) running alike; a wrap happens once per full somersault.

Default cost: the env's own reward, which is known in closed form on the observation: forward velocity
obs[8] (qvel[0]; the env's reward uses the x displacement over the step, the same velocity averaged) minus
0.1 |a|^2, declared as the cost's known reward (`reward_source` 'known'; 'learned' plans with the model's
reward head instead). Planner: CEM with CaDM's 200 candidates and horizon 30, 3 iterations (the planner
ceiling, `tools/planner_ceiling.py`, measured it against MPPI and shorter horizons: docs/cadm.md).

Start states: "default" is Gymnasium's (qpos + U(-0.1, 0.1), qvel + 0.1 N(0, 1));
"cadm" is CaDM's (qpos and qvel + N(0, 0.001^2)), used for evaluation.
"""

from __future__ import annotations

from typing import cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.utils import RecordConstructorArgs

from . import mujoco_log
from .base import Choice, CostSpec, Params, TaskFamily

EPISODE_STEPS = 1000
TRAIN_SCALES = (0.75, 0.85, 1.0, 1.15, 1.25)
TRAIN_CRIPPLE_JOINTS = (0.0, 1.0, 2.0, 3.0)
TEST_CRIPPLE_JOINTS = (4.0, 5.0)
FORWARD_VELOCITY_INDEX = 8  # obs[8] = qvel[0], the root's x velocity
CTRL_COST = 0.1  # HalfCheetah-v5's ctrl_cost_weight
ACTION_NAMES = ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
OBS_NAMES = (
    ("rootz", "rooty")
    + ACTION_NAMES
    + ("rootx_vel", "rootz_vel", "rooty_vel")
    + tuple(f"{joint}_vel" for joint in ACTION_NAMES)
)
# chosen from the planner ceiling (docs/cadm.md): CEM, 200 candidates over 30 steps as CaDM, 3 iterations
PLANNER: dict[str, float | str] = {"method": "cem", "horizon": 30, "samples": 200, "iterations": 3, "noise_scale": 0.5}
# the default cost: the env's own reward, forward velocity minus the control cost (`reward_source` known)
COST = CostSpec.forward_reward(len(OBS_NAMES), len(ACTION_NAMES), FORWARD_VELOCITY_INDEX, CTRL_COST)


PITCH_INDEX = 1  # obs[1] = qpos[2], the root's pitch (rooty)

# An adapted cheetah model plans only once its running one-step and 10-step errors are under 0.4x the prior's
# (enter = leave x (1 - hysteresis)) and until they pass 0.5x: on the light cheetahs both models are far off and
# an adapted model at 0.6-0.9x the prior's error plans worse than the prior; on the heavy ones it is at 0.2-0.5x
# and plans better (docs/guard.md, "A margin for the half-cheetah").
GUARD = {"leave": 0.5}
# The heavy test cheetahs (masses and dampings 1.5-1.8) are the trained ones driven by about a / mass: estimate that
# actuator gain per session and run the model on a / g (`mbmrl.runtime.gain`; measured: docs/cadm.md, "Actuator gain");
# while the plant is clearly weaker (g >= 1.2 on the grid) plan 10 steps ahead, not 30 (docs/cadm.md)
GAIN = {"max_gain": 2.5, "plan_horizon": 10, "plan_above": 1.15}


def wrap_pitch(obs: np.ndarray) -> np.ndarray:
    """obs with its pitch wrapped into [-pi/2, 3pi/2): the same physical state, in the range training sees."""
    obs = np.array(obs, copy=True)
    obs[..., PITCH_INDEX] = (obs[..., PITCH_INDEX] + np.pi / 2) % (2 * np.pi) - np.pi / 2
    return obs


class WrapPitch(gym.ObservationWrapper, RecordConstructorArgs):
    """Wrap the root's pitch into [-pi/2, 3pi/2) (`wrap_pitch`)."""

    def __init__(self, env: gym.Env):
        RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The pitch wrapped."""
        return wrap_pitch(observation)


def _cheetah(env: gym.Env) -> HalfCheetahEnv:
    return cast(HalfCheetahEnv, env.unwrapped)


class ScaledPhysics(gym.Wrapper, RecordConstructorArgs):
    """Scale every body mass and joint damping of a MuJoCo env from its default values."""

    def __init__(self, env: gym.Env, mass_scale: float = 1.0, damping_scale: float = 1.0):
        RecordConstructorArgs.__init__(self, mass_scale=mass_scale, damping_scale=damping_scale)
        gym.Wrapper.__init__(self, env)
        model = _cheetah(env).model
        self.default_body_mass = model.body_mass.copy()
        self.default_dof_damping = model.dof_damping.copy()
        self.set_scales(mass_scale, damping_scale)

    def set_scales(self, mass_scale: float, damping_scale: float) -> None:
        """Set body_mass = defaults * mass_scale and dof_damping = defaults * damping_scale."""
        if mass_scale <= 0 or damping_scale < 0:
            raise ValueError(
                f"need mass_scale > 0 and damping_scale >= 0, got {mass_scale=}, {damping_scale=}"
            )
        self.mass_scale, self.damping_scale = float(mass_scale), float(damping_scale)
        model = _cheetah(self.env).model
        model.body_mass[:] = self.default_body_mass * self.mass_scale
        model.dof_damping[:] = self.default_dof_damping * self.damping_scale


class CrippleAction(gym.ActionWrapper, RecordConstructorArgs):
    """Disable one actuator by zeroing its action dim (CaDM's `cripple_mask`); colour its limb red."""

    def __init__(self, env: gym.Env, joint: int):
        RecordConstructorArgs.__init__(self, joint=joint)
        gym.ActionWrapper.__init__(self, env)
        if not isinstance(env.action_space, spaces.Box):
            raise TypeError(f"CrippleAction needs a Box action space, got {env.action_space}")
        n_act = int(env.action_space.shape[0])
        if not 0 <= joint < n_act:
            raise ValueError(f"cripple_joint must be an action index in [0, {n_act}), got {joint}")
        self.joint = joint
        self.mask = np.ones(n_act, dtype=np.float32)
        self.mask[joint] = 0.0
        model = _cheetah(env).model
        # CaDM colours the geom named like the crippled joint (joint_names[joint + 3]).
        joint_name = model.joint(int(model.actuator_trnid[joint, 0])).name
        model.geom_rgba[model.geom(joint_name).id, :3] = (1.0, 0.0, 0.0)

    def action(self, action: np.ndarray) -> np.ndarray:
        """Zero the crippled joint's torque."""
        return (self.mask * np.asarray(action)).astype(np.float32)


class CaDMStart(gym.Wrapper, RecordConstructorArgs):
    """Start as CaDM's HalfCheetah: init qpos and qvel plus N(0, 0.001^2) noise."""

    def __init__(self, env: gym.Env):
        RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Reset, then CaDM's start noise on qpos and qvel."""
        super().reset(seed=seed, options=options)
        base = _cheetah(self.env)
        rng = base.np_random
        qpos = base.init_qpos + rng.normal(0.0, 0.001, size=base.model.nq)
        qvel = base.init_qvel + rng.normal(0.0, 0.001, size=base.model.nv)
        base.set_state(qpos, qvel)
        return wrap_pitch(base._get_obs()), base._get_reset_info()


def _cripple_joint(value: float) -> int:
    joint = int(round(float(value)))
    if joint != float(value):
        raise ValueError(f"cripple_joint must hold an integer action index, got {value}")
    return joint


def make_halfcheetah(params: Params, start: str = "default") -> gym.Env:
    """HalfCheetah-v5 (1000 steps) with `params` from {"mass_scale", "damping_scale", "cripple_joint"}.

    Missing scales default to 1.0; without "cripple_joint" every actuator works.
    """
    unknown = set(params) - {"mass_scale", "damping_scale", "cripple_joint"}
    if unknown:
        raise ValueError(
            f"unknown halfcheetah params {sorted(unknown)}; expected mass_scale, damping_scale, cripple_joint"
        )
    if start not in ("default", "cadm"):
        raise ValueError(f"unknown start {start!r} for halfcheetah; expected 'default' or 'cadm'")
    mujoco_log.install()
    env: gym.Env = WrapPitch(gym.make("HalfCheetah-v5", max_episode_steps=EPISODE_STEPS))
    env = ScaledPhysics(env, params.get("mass_scale", 1.0), params.get("damping_scale", 1.0))
    if "cripple_joint" in params:
        env = CrippleAction(env, _cripple_joint(params["cripple_joint"]))
    if start == "cadm":
        env = CaDMStart(env)
    return env


def _scales(values: tuple[float, float]) -> tuple[dict[str, Choice], ...]:
    return ({"mass_scale": Choice(values), "damping_scale": Choice(values)},)


def _cheetah_family(name: str, train: dict, test_splits: dict, description: str, gain: dict | None = None
                    ) -> TaskFamily:
    """A HalfCheetah family: CaDM's start, cost and planner; the parameter spaces differ."""
    return TaskFamily(name=name, make_env=make_halfcheetah, train=train, test_splits=test_splits,
                      episode_steps=EPISODE_STEPS, default_cost=COST, obs_names=OBS_NAMES,
                      action_names=ACTION_NAMES, eval_start="cadm", default_planner=dict(PLANNER),
                      description=description, periodic_obs={PITCH_INDEX: 2 * np.pi}, default_guard=dict(GUARD),
                      default_gain=dict(gain or {}))


def halfcheetah_family() -> TaskFamily:
    """HalfCheetah with body masses and joint dampings scaled per task (CaDM's train and test sets)."""
    return _cheetah_family(
        "halfcheetah",
        train={"mass_scale": Choice(TRAIN_SCALES), "damping_scale": Choice(TRAIN_SCALES)},
        test_splits={
            "extreme_low": _scales((0.2, 0.3)),
            "moderate_low": _scales((0.4, 0.5)),
            "moderate_high": _scales((1.5, 1.6)),
            "extreme_high": _scales((1.7, 1.8)),
        },
        description="Gymnasium HalfCheetah-v5, all body masses and joint dampings scaled per task (CaDM).",
        gain=GAIN,
    )


def cripple_halfcheetah_family() -> TaskFamily:
    """HalfCheetah with one actuator disabled per task: train joints 0-3, test joints 4-5 (CaDM)."""
    return _cheetah_family(
        "cripple_halfcheetah",
        train={"cripple_joint": Choice(TRAIN_CRIPPLE_JOINTS)},
        test_splits={"unseen_joint": ({"cripple_joint": Choice(TEST_CRIPPLE_JOINTS)},)},
        description="Gymnasium HalfCheetah-v5 with one leg actuator disabled per task (CaDM).",
    )

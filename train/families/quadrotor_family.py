"""The quadrotor families: train and test spaces over `QuadrotorEnv`'s physics, the cost, the reference
layout and control tasks, and the classical baselines (`quadrotor_pid`) tracking evaluations fly beside them."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from .base import Choice, CostSpec, ParamDist, ParamSpace, TaskFamily, Uniform
from .quadrotor import (
    ACTION_NAMES,
    BASE_OBS_NAMES,
    CONTROL_TASKS,
    EPISODE_STEPS,
    HOVER_POINT,
    IDENTITY_6D,
    PAYLOAD_OBS_NAMES,
    REFERENCE_LAYOUT,
    make_quadrotor,
    peak_thrust_fraction,
)
from .quadrotor_pid import PD_GAINS, PIDGains, QuadrotorPID

BASELINES = {  # tracking evaluations fly these beside the adaptation modes
    "pid": lambda ref: QuadrotorPID(ref, PIDGains()),
    "pd": lambda ref: QuadrotorPID(ref, PD_GAINS),  # Neural-Fly's "nonlinear baseline": no integral term
}


# Train tasks need at most ~78% of the thrust to hover; every test task at most 85% (see tests).
TRAIN_SPACE: dict[str, ParamDist] = {
    "payload": Uniform(0.0, 0.4),
    "thrust_coef": Uniform(0.9, 1.1),
    "drag": Uniform(0.1, 0.3),
    "wind_x": Uniform(-3.0, 3.0),
    "wind_y": Uniform(-3.0, 3.0),
}
TEST_SPLITS: dict[str, tuple[ParamSpace, ...]] = {
    "moderate": (
        {  # heavier payload, stronger wind
            "payload": Choice((0.5, 0.6)), "thrust_coef": Choice((1.0,)), "drag": Choice((0.35,)),
            "wind_x": Choice((3.5,)), "wind_y": Choice((0.0, -3.5)),
        },
        {  # weaker motors, stronger wind
            "payload": Choice((0.1,)), "thrust_coef": Choice((0.8,)), "drag": Choice((0.35,)),
            "wind_x": Choice((-3.5, 3.5)), "wind_y": Choice((0.0, 3.5)),
        },
    ),
    "extreme": (
        {
            "payload": Choice((0.65, 0.7)), "thrust_coef": Choice((1.05,)), "drag": Choice((0.4,)),
            "wind_x": Choice((4.5, 5.0)), "wind_y": Choice((0.0,)),
        },
        {
            "payload": Choice((0.2,)), "thrust_coef": Choice((0.75,)), "drag": Choice((0.4,)),
            "wind_x": Choice((-4.5, 4.5)), "wind_y": Choice((-4.5, 4.5)),
        },
    ),
}


def _family(name: str, suspended: bool, description: str) -> TaskFamily:
    train: dict[str, ParamDist] = dict(TRAIN_SPACE)
    test_splits: Mapping[str, tuple[ParamSpace, ...]] = TEST_SPLITS
    q: tuple[float, ...] = (1.0,) * 3 + (0.1,) * 3 + (0.05,) * 6 + (0.01,) * 3
    target: tuple[float, ...] = HOVER_POINT + (0.0,) * 3 + IDENTITY_6D + (0.0,) * 3
    obs_names: tuple[str, ...] = BASE_OBS_NAMES
    if suspended:
        train["cable_length"] = Uniform(0.5, 1.0)
        test_splits = {
            split: tuple({**space, "cable_length": Choice((1.2,))} for space in split_spaces)
            for split, split_spaces in TEST_SPLITS.items()
        }
        q += (0.1, 0.1, 0.0) + (0.05,) * 3  # damp the swing; lz is fixed by the cable
        target += (0.0,) * 6
        obs_names += PAYLOAD_OBS_NAMES
    return TaskFamily(
        name=name,
        make_env=partial(make_quadrotor, suspended=suspended),
        train=train,
        test_splits=test_splits,
        episode_steps=EPISODE_STEPS,
        default_cost=CostSpec(target=target, q=q, r=(0.01,) * 4, terminal_weight=2.0),
        obs_names=obs_names,
        action_names=ACTION_NAMES,
        eval_start="default",
        default_planner={"horizon": 15, "samples": 256, "temperature": 0.1, "noise_scale": 0.3,
                         "noise_beta": 2.0},
        description=description,
        reference=REFERENCE_LAYOUT,
        control_tasks=CONTROL_TASKS,
        baselines=BASELINES,
        actuation_needed=peak_thrust_fraction,
    )


def quadrotor_family() -> TaskFamily:
    """Quadrotor hover with payload, thrust coefficient, drag and wind per task."""
    return _family(
        "quadrotor",
        suspended=False,
        description="3D quadrotor (thrust + body-rate commands) hovering at (0, 0, 1); payload mass, "
        "thrust coefficient, linear drag and constant wind per task (Neural-Fly style).",
    )


def quadrotor_payload_family() -> TaskFamily:
    """Quadrotor hover with a payload on a rigid cable (spherical pendulum), cable length per task."""
    return _family(
        "quadrotor_payload",
        suspended=True,
        description="3D quadrotor hovering at (0, 0, 1) with a payload hanging on a rigid cable "
        "(Belkhale et al. 2021); payload mass, cable length, thrust coefficient, drag and wind per task.",
    )

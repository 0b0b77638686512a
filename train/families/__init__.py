"""Built-in task families, and loading a user's family from `module:function`."""

from __future__ import annotations

import importlib

from .base import (
    Choice,
    CostSpec,
    Params,
    ParamSpace,
    TaskFamily,
    Uniform,
    box_bounds,
    enumerate_params,
    sample_params,
)

# name -> "module:function" returning a TaskFamily; imported lazily so that a family's
# heavy dependencies (MuJoCo) load only when it is used.
BUILTIN = {
    "pendulum": "mbmrl.train.families.pendulum:pendulum_family",
    "quadrotor": "mbmrl.train.families.quadrotor_family:quadrotor_family",
    "quadrotor_payload": "mbmrl.train.families.quadrotor_family:quadrotor_payload_family",
    "cartpole": "mbmrl.train.families.cartpole:cartpole_family",
    "cartpole_bang_bang": "mbmrl.train.families.cartpole:cartpole_bang_bang_family",
    "halfcheetah": "mbmrl.train.families.halfcheetah:halfcheetah_family",
    "cripple_halfcheetah": "mbmrl.train.families.halfcheetah:cripple_halfcheetah_family",
    "ant": "mbmrl.train.families.ant:ant_family",
}


def get_family(name: str) -> TaskFamily:
    """A built-in family by name, or a user's family given as `package.module:function`."""
    target = BUILTIN.get(name, name)
    if ":" not in target:
        raise ValueError(
            f"unknown task family {name!r}: expected one of {sorted(BUILTIN)} "
            "or 'package.module:function' returning a TaskFamily"
        )
    module_name, fn_name = target.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ValueError(f"task family {name!r}: cannot import {module_name!r} ({e})") from e
    family = getattr(module, fn_name)()
    if not isinstance(family, TaskFamily):
        raise TypeError(f"{target} returned {type(family).__name__}, expected a TaskFamily")
    return family


__all__ = [
    "BUILTIN", "Choice", "CostSpec", "Params", "ParamSpace", "TaskFamily", "Uniform",
    "box_bounds", "enumerate_params", "get_family", "sample_params",
]

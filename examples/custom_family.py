"""Bring your own system: wrap any Gymnasium env as a task family, then train, export and serve it.

Here: MountainCarContinuous-v0 whose engine power varies per task (a worn motor). The whole
family is the ~15 lines of `mountain_car_family`; nothing in the library changes.

    python examples/custom_family.py --out runs/mountaincar       # train + export + serve + control
    mbmrl train --family examples.custom_family:mountain_car_family # the same family from the CLI
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
from mbmrl.train.families import Choice, CostSpec, TaskFamily, Uniform


def make_mountain_car(params: dict, start: str = "default") -> gym.Env:
    """The env with this task's physics; `start` picks a start-state distribution (only 'default' here)."""
    if start != "default":
        raise ValueError(f"unknown start {start!r}; this family has only 'default'")
    env = gym.make("MountainCarContinuous-v0", max_episode_steps=200)
    env.unwrapped.power = float(params["power"])
    return env


def mountain_car_family() -> TaskFamily:
    """Engine power per task: train around Gymnasium's 0.0015, test weaker and stronger motors."""
    return TaskFamily(
        name="mountain_car",
        make_env=make_mountain_car,
        train={"power": Uniform(0.0012, 0.0018)},
        test_splits={"weak": ({"power": Choice((0.0009, 0.0010))},), "strong": ({"power": Choice((0.0021,))},)},
        episode_steps=200,
        default_cost=CostSpec(target=(0.45, 0.0), q=(1.0, 0.0), r=(0.01,), terminal_weight=5.0),
        obs_names=("position", "velocity"),
        action_names=("force",),
        default_planner={"horizon": 15, "samples": 256, "temperature": 0.1, "noise_scale": 0.5},
        description="MountainCarContinuous-v0 with per-task engine power (examples/custom_family.py).",
    )


def main() -> None:
    from mbmrl.export.config import ExportConfig
    from mbmrl.export.onnx_export import export_run
    from mbmrl.runtime.client import Client
    from mbmrl.runtime.local_server import local_server
    from mbmrl.train.config import TrainConfig
    from mbmrl.train.episode import run_episode
    from mbmrl.train.trainer import train

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/mountain_car")
    p.add_argument("--iters", type=int, default=600)
    args = p.parse_args()
    family = mountain_car_family()
    run = train(TrainConfig(family="examples.custom_family:mountain_car_family", out=args.out, n_tasks=40,
                            iters=args.iters, seq_len=48, oracle=False), family=family)
    artifact = export_run(ExportConfig(run=str(run), out=str(Path(args.out) / "artifact"), horizons=(15,)))
    with local_server(artifact) as url:
        session = Client(url).new_session(mode="recurrent", seed=0)
        for split, params in family.test_tasks():
            env = family.make_env(params, "default")
            ep = run_episode(env, lambda obs: session.act(obs).action, family.episode_steps, seed=0,
                             observe=session.observe)  # the session adapts online as it flies
            session.reset()
            print(f"{split:>6} power={params['power']:.4f}: return {ep.total_reward:7.1f}, "
                  f"final position {ep.next_obs[-1, 0]:+.2f}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()

"""A drone flies a figure eight in wind with a heavy payload, served over HTTP: the reference is sent once.

    mbmrl train --family quadrotor --n-tasks 200 --iters 5000 --out runs/quadrotor
    mbmrl export runs/quadrotor --out artifacts/quadrotor
    python examples/drone_figure8.py artifacts/quadrotor [--wind 8.5] [--mode bayes]

The session holds the figure eight (`reference=`) and advances it one control period per step; the robot
sends only its observation and the last transition. Prints the mean position error after 2 s beside the
classical PID baseline flying the same task.
"""

from __future__ import annotations

import argparse

import numpy as np
from mbmrl.runtime.client import Client
from mbmrl.runtime.local_server import local_server
from mbmrl.train.episode import run_episode
from mbmrl.train.evaluation.evaluate import stepping
from mbmrl.train.families.quadrotor import CONTROL_TASKS, DT, QuadrotorEnv
from mbmrl.train.families.quadrotor_pid import QuadrotorPID

# tracking settings (docs/tracking.md): position-dominant cost, no attitude target, no thrust penalty
TRACKING_COST = {"r": [0.0, 0.001, 0.001, 0.001], "q": [1, 1, 1, 0.1, 0.1, 0.1] + [0] * 6 + [0.01] * 3}
TRACKING_PLANNER = {"method": "cem", "iterations": 3, "noise_scale": 0.08}


def mean_error(ep) -> str:
    """Mean position error after 2 s, or when the flight ended early (left the 5 m safety box)."""
    err = np.array([i["position_error"] for i in ep.infos])
    if len(err) < 500:
        return f"crashed after {len(err) * DT:.2f} s"
    return f"{100 * err[(np.arange(len(err)) + 1) * DT > 2].mean():.1f} cm mean position error"


def main() -> None:
    """Serve the artifact, fly the figure eight through a session holding it, then the PID."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("--wind", type=float, default=4.2, help="m/s along x")
    ap.add_argument("--payload", type=float, default=0.5, help="share of the frame's mass")
    ap.add_argument("--mode", default="bayes")
    args = ap.parse_args()
    physics = {"payload": args.payload, "thrust_coef": 1.0, "drag": 0.35, "wind_x": args.wind, "wind_y": 0.0}
    figure8 = CONTROL_TASKS["figure8"]
    with local_server(args.artifact) as url:
        session = Client(url).new_session(mode=args.mode, seed=0, reference=figure8, window=256,  # steady wind
                                          planner=TRACKING_PLANNER, cost=TRACKING_COST)
        act, observe = stepping(session)  # one POST .../step per control step: the transition and the obs
        ep = run_episode(QuadrotorEnv(physics, task="figure8"), act, 500, seed=0, observe=observe)
        print(f"{args.mode} over HTTP: {mean_error(ep)} (reference clock {session.info()['reference_time']:.2f} s)")
    pid = run_episode(QuadrotorEnv(physics, task="figure8"), QuadrotorPID(figure8), 500, seed=0)
    print(f"PID baseline: {mean_error(pid)}")


if __name__ == "__main__":
    main()

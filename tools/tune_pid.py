"""Tune the quadrotor PID baseline's gains on training tasks (never on test tasks): a grid search over the
position and attitude gains, scored by the mean figure-eight position error (t > 2 s) over 8 tasks drawn
from the quadrotor family's train space. Prints the ranking; `PIDGains`' defaults are its winner.

    python tools/tune_pid.py
"""

from __future__ import annotations

import itertools

import numpy as np
from mbmrl.train.episode import run_episode
from mbmrl.train.families import get_family, sample_params
from mbmrl.train.families.quadrotor import CONTROL_TASKS, DT, QuadrotorEnv
from mbmrl.train.families.quadrotor_pid import PIDGains, QuadrotorPID


def score(gains: PIDGains, tasks: list[dict]) -> float:
    """Mean position error (m, t > 2 s) of the figure eight over `tasks`; inf if any episode crashes."""
    errors = []
    for i, params in enumerate(tasks):
        env = QuadrotorEnv(params, task="figure8")
        ep = run_episode(env, QuadrotorPID(CONTROL_TASKS["figure8"], gains), 500, seed=i)
        err = np.array([info["position_error"] for info in ep.infos])
        if len(err) < 500:
            return float("inf")
        errors.append(err[(np.arange(500) + 1) * DT > 2].mean())
    return float(np.mean(errors))


def main() -> None:
    """Rank gain sets of the PID and of the PD (no integral) on 8 training tasks."""
    rng = np.random.default_rng(0)
    family = get_family("quadrotor")
    tasks = [sample_params(family.train, rng) for _ in range(8)]
    for name, kis in (("PID", (3.0, 8.0, 16.0)), ("PD (no integral)", (0.0,))):
        results = []
        for kp, kd, ki, k_att in itertools.product((9.0, 16.0, 25.0, 36.0, 49.0), (5.0, 8.0, 11.0, 14.0), kis,
                                                   (8.0, 12.0)):
            gains = PIDGains(kp=kp, kd=kd, ki=ki, k_att=k_att)
            results.append((score(gains, tasks), gains))
        results.sort(key=lambda r: r[0])
        print(name)
        for err, g in results[:5]:
            print(f"  {err * 100:6.2f} cm  kp={g.kp} kd={g.kd} ki={g.ki} k_att={g.k_att}")


if __name__ == "__main__":
    main()

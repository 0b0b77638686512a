"""Why adapted plans fail (docs/guard.md): per task and mode, the adapted model's running error relative to the
prior's (h0, W0) along the trajectory an unguarded session flies: one step, and the mean over ages 1..k of its
own open-loop predictions along the executed actions. The guard only scores here (leave=100, hysteresis=0,
min_observed=0, plan_after=0: the adapted model always plans, exactly as with guard=False).

Usage: python tools/guard_cause.py ARTIFACT   (a pendulum artifact, e.g. the quickstart's)
"""

from __future__ import annotations

import sys

import numpy as np
from mbmrl.runtime.loader import load
from mbmrl.runtime.session import Session
from mbmrl.train.evaluation.evaluate import control_episode
from mbmrl.train.families import get_family

TASKS = [(1.6, 0.2), (1.8, 0.2), (0.4, 1.8), (1.8, 0.4), (0.7, 1.5)]  # (mass, length): fails, fails, helps...
HORIZONS = (1, 5, 10, 15)
SEEDS = 2


def ratios(rt, family, mode: str, params: dict, horizon: int) -> tuple[float, float, float]:
    """(mean return, one-step ratio, multi-step ratio) at the end of SEEDS episodes (errors averaged)."""
    sessions: list[Session] = []

    def new_session(**kw) -> Session:
        scoring_only = {"horizon": horizon, "leave": 100.0, "hysteresis": 0.0, "min_observed": 0, "plan_after": 0,
                        "forget": 0.98}
        sessions.append(Session(rt, guard=scoring_only, **kw))
        return sessions[-1]

    returns = [control_episode(new_session, mode, family, params, seed, family.episode_steps, params)["return"]
               for seed in range(SEEDS)]
    e = np.mean([s.guard.errors for s in sessions], axis=0)  # [one_adapted, one_prior, multi_adapted, multi_prior]
    return float(np.mean(returns)), e[0] / e[1], e[2] / e[3]


def main(artifact: str) -> None:
    """Print the table of docs/guard.md for `artifact`."""
    rt = load(artifact, threads=1)
    family = get_family(rt.manifest.family)
    print("| mode | task (mass, length) | return | 1-step | " + " | ".join(f"{k}-step" for k in HORIZONS[1:]) + " |")
    print("|---" * (4 + len(HORIZONS) - 1) + "|")
    for mode in ("recurrent", "gradient", "bayes"):
        for mass, length in TASKS:
            params = {"mass": mass, "length": length}
            rows = [ratios(rt, family, mode, params, k) for k in HORIZONS]
            multi = " | ".join(f"{r[2]:.2f}" for r in rows[1:])
            print(f"| {mode} | {mass}, {length} | {rows[0][0]:.1f} | {rows[0][1]:.2f} | {multi} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

"""How a half-cheetah run's training data hold the cheetah: upright or on its back, per kind of data.

A run's data (`RUN/data.npz`) mix random-action segments (task ids below the first MPC task) and MPC-flown ones.
Random segments are split by how smooth their actions are (lag-1 autocorrelation of the first action dim above
0.5: the smooth random walk of `--random-policy mixed`). A cheetah is "on its back" when its pitch (obs[1]) is
within 1 rad of pi, "upright" within 0.6 rad of 0; the forward velocity is obs[8].

Usage: python tools/cheetah_posture.py RUN/data.npz --random-tasks N   (N = the run's --n-tasks)
"""

from __future__ import annotations

import argparse

import numpy as np

PITCH, VELOCITY = 1, 8


def posture(obs: np.ndarray) -> dict[str, float]:
    """Shares of transitions on the back and upright, and the mean forward velocity in each (obs: (S, L, 17))."""
    pitch, vel = obs[..., PITCH], obs[..., VELOCITY]
    back, upright = np.abs(pitch - np.pi) < 1.0, np.abs(pitch) < 0.6
    return {"segments": float(len(obs)), "on back": float(back.mean()), "upright": float(upright.mean()),
            "velocity": float(vel.mean()), "velocity on back": float(vel[back].mean()) if back.any() else np.nan,
            "velocity upright": float(vel[upright].mean()) if upright.any() else np.nan}


def main() -> None:
    """Print the posture table of one run's data."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="a run's data.npz")
    ap.add_argument("--random-tasks", type=int, required=True, help="the run's --n-tasks (random-action tasks)")
    args = ap.parse_args()
    d = np.load(args.data)
    obs, acts, tasks = d["obs"], d["actions"], d["task_ids"]
    random = tasks < args.random_tasks
    lag1 = np.array([np.corrcoef(a[:-1, 0], a[1:, 0])[0, 1] for a in acts])
    groups = {"random, i.i.d.": random & (lag1 <= 0.5), "random, smooth walk": random & (lag1 > 0.5),
              "MPC": ~random}
    print("| data | segments | on its back | upright | velocity | on its back | upright |")
    print("|---|---|---|---|---|---|---|")
    for name, m in groups.items():
        if m.any():
            p = posture(obs[m])
            print(f"| {name} | {int(p['segments'])} | {p['on back']:.2f} | {p['upright']:.2f} | {p['velocity']:.2f} "
                  f"| {p['velocity on back']:.2f} | {p['velocity upright']:.2f} |")


if __name__ == "__main__":
    main()

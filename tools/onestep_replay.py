"""Which one-step rule keeps a guarded session's one-step error at or below `none`'s on every task?

Replays `mbmrl eval`'s prediction windows (the same tasks, random-action streams and targets: data seed 0 +
task index, so the numbers equal eval's), records per window both predictors' one-step errors and the
weight the runtime's guard gives the adapted model at several blend powers p, then scores the rules:
unguarded (weight 1), choose (`blend: 0`) and the inverse-error blend (docs/guard.md).

    python tools/onestep_replay.py ARTIFACT FAMILY [--windows 8] [--streams 2] [--max-tasks 0] [--json out.json]

Prints, per rule and adaptive mode, the worst task's NMSE ratio to `none` and the mean NMSE after 16 and 50
transitions.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json

import numpy as np
from mbmrl.runtime.guard import one_step_weight
from mbmrl.runtime.loader import load
from mbmrl.runtime.session import Session
from mbmrl.train.evaluation.evaluate import eval_episodes, target_starts
from mbmrl.train.families import get_family

MODES = ("recurrent", "gradient", "bayes")
CONTEXTS = (16, 50)
POWERS = (0, 1, 2, 4, 8)  # blend powers scored (0: the runtime's hard choice)


def _observe(s: Session, ep: dict, t: int, m: int) -> None:
    for c in range(t - m, t):
        s.observe(ep["obs"][c], ep["actions"][c], ep["next_obs"][c], float(ep["rewards"][c]))


def _one_step(rt, mode: str, guard: bool | None, ep: dict, t: int, m: int) -> np.ndarray:
    """The one-step error at target t after the m transitions before it, in training delta units."""
    s = Session(rt, mode, seed=0, guard=guard)
    _observe(s, ep, t, m)
    one, _ = s.predict(ep["obs"][t], ep["actions"][t:t + 1])
    return (one[0] - ep["next_obs"][t]) / rt.norm.delta_std  # (obs_dim,)


def replay(artifact: str, family: str, windows: int, streams: int, max_tasks: int) -> list[dict]:
    """One row per (task, window, context, mode): normalized one-step errors of none and the adapted model,
    and the adapted model's weight the runtime's guard (`one_step_weight`) gives at each blend power."""
    rt, fam = load(artifact), get_family(family)
    tasks = [t for sp in fam.test_splits for t in fam.test_tasks(sp)[: max_tasks or None]]
    rows = []
    for ti, (split, params) in enumerate(tasks):
        eps = eval_episodes(fam, params, streams, fam.episode_steps, seed=ti)
        deltas = np.concatenate([(ep["next_obs"] - ep["obs"]) / rt.norm.delta_std for ep in eps])
        task_std = np.sqrt(np.maximum(deltas.var(axis=0), 1e-8))  # NMSE: the task's own delta variance
        for ep in eps:
            for t in target_starts(ep["ends"], max(CONTEXTS), 15, max(1, windows // len(eps))):
                for m in CONTEXTS:
                    d_none = _one_step(rt, "none", None, ep, t, m) / task_std  # (obs_dim,)
                    for mode in MODES:
                        g = Session(rt, mode, seed=0)  # guarded, for its running errors
                        _observe(g, ep, t, m)
                        d_ad = _one_step(rt, mode, False, ep, t, m) / task_std
                        rows.append({"task": ti, "split": split, "params": params, "m": m, "mode": mode,
                                     "d_none": d_none.tolist(), "d_ad": d_ad.tolist(),
                                     "weights": {str(p): one_step_weight(dataclasses.replace(g.guard_config, blend=p),
                                                                         g.guard) for p in POWERS}})
        print(ti, split, params, flush=True)
    return rows


def score(rows: list[dict]) -> None:
    """Print each rule's worst-task ratio / mean NMSE per mode and context."""
    rules = {"unguarded": None} | {("choose (blend 0)" if p == 0 else f"blend p={p}"): str(p) for p in POWERS}
    for name, key in rules.items():
        err: dict = collections.defaultdict(float)
        base: dict = collections.defaultdict(float)
        means: dict = collections.defaultdict(list)
        for x in rows:
            w = 1.0 if key is None else x["weights"][key]
            d = w * np.array(x["d_ad"]) + (1 - w) * np.array(x["d_none"])
            v = float(np.mean(d ** 2))
            k = (x["mode"], x["m"], x["task"])
            err[k] += v
            base[k] += float(np.mean(np.array(x["d_none"]) ** 2))
            means[(x["mode"], x["m"])].append(v)
        cells = []
        for mode in MODES:
            for m in CONTEXTS:
                worst = max(err[k] / max(base[k], 1e-12) for k in err if k[:2] == (mode, m))
                cells.append(f"{mode[:3]}@{m} {worst:.2f}/{np.mean(means[(mode, m)]):.4f}")
        print(f"{name:18s}", " ".join(cells))


def main() -> None:
    """Replay, optionally save the rows, print the rules' scores."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact")
    ap.add_argument("family")
    ap.add_argument("--windows", type=int, default=8, help="target windows per task (eval's --windows)")
    ap.add_argument("--streams", type=int, default=2, help="random-action episodes per task (eval's default 2)")
    ap.add_argument("--max-tasks", type=int, default=0, help="first N tasks of each test split (0 = all)")
    ap.add_argument("--json", default="", help="also write the per-window rows here")
    args = ap.parse_args()
    rows = replay(args.artifact, args.family, args.windows, args.streams, args.max_tasks)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f)
    score(rows)


if __name__ == "__main__":
    main()

"""How far a learned model's own plans are from what they do: each step's chosen plan replayed in the simulator.

    python tools/plan_gap.py ARTIFACT [--split default|SPLIT] [--mode none] [--steps 300] [--every 5]
        [--max-tasks N] [--ceiling] [--json out.json]

Flies MPC episodes with the artifact's model (as `mbmrl eval` does), and every `--every` steps replays the plan
the session just chose, open loop from the same state, in MuJoCo under the task's own physics
(`mbmrl.train.ceiling.SimulatorDynamics`). It prints the forward velocity the model predicted along the plan
beside the velocity the plan really reaches, per stretch of the horizon. A model that predicts more than its plans
reach is being exploited by the planner (pessimism, ensembles); one that predicts about what they reach, while the
perfect-model planner runs far faster (tools/planner_ceiling.py), holds its plans back where it has no data.
`--ceiling` also plans from the same states with the simulator as the model (the perfect-model planner) and asks
the learned model what it predicts for those plans: does it know that the fast plans are fast?
Half-cheetah observation layout (forward velocity obs[8]).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from cheetah_posture import VELOCITY  # tools/, this script's own folder
from mbmrl.runtime.dynamics import CostTerms
from mbmrl.runtime.loader import load
from mbmrl.runtime.session import Session
from mbmrl.train.ceiling import SimulatorDynamics, ceiling_runtime
from mbmrl.train.episode import run_episode
from mbmrl.train.families import get_family

STRETCHES = ((0, 5), (5, 15), (15, 30))  # steps of the plan compared separately


def fly(rt, family, params: dict, mode: str, steps: int, every: int, seed: int, ceiling: bool) -> dict:
    """One episode; every `every` steps the chosen plan's predicted and simulated velocities (H,) each (and, with
    `ceiling`, the same for the perfect-model planner's plan from that state)."""
    env = family.make_env(params, family.eval_start)
    sim = SimulatorDynamics(env, rt.manifest.hidden_size, rt.feature_dim)
    session = Session(rt, mode, seed=seed)
    perfect = Session(ceiling_runtime(rt, env), "none", seed=seed, gain=False) if ceiling else None
    horizon = session.planner.horizon
    pending: list[dict] = []
    out: dict[str, list] = {"predicted": [], "simulated": [], "ceiling predicted": [], "ceiling simulated": []}
    t = [0]

    def record(obs: np.ndarray, plan: np.ndarray, key: str) -> None:
        """Both velocities along `plan`, NaN-padded to the planner's horizon (a session whose actuator gain is out
        of range plans fewer steps: the artifact's `plan_horizon`)."""
        terms = CostTerms.build(session.cost, len(plan), rt.feature_dim)
        _, states = sim.rollout(obs, np.zeros(1), np.zeros(1), plan[None], terms)  # (1, H', O)
        pad = lambda v: np.pad(v, (0, horizon - len(v)), constant_values=np.nan)  # noqa: E731
        out[f"{key}predicted"].append(pad(session.predict(obs, plan)[0][:, VELOCITY]))  # the plan, through the model
        out[f"{key}simulated"].append(pad(states[0, :, VELOCITY]))

    def act(obs: np.ndarray) -> np.ndarray:
        _, res = session.step(obs, transition=pending.pop() if pending else None)
        if t[0] % every == 0:
            record(obs, res.plan, "")
            if perfect is not None:
                record(obs, perfect.act(obs).plan, "ceiling ")
        t[0] += 1
        return res.action

    def observe(obs, action, next_obs, reward) -> None:
        pending.append({"obs": obs, "action": action, "next_obs": next_obs, "reward": reward})

    ep = run_episode(env, act, steps, seed=seed, observe=observe)
    return {**{k: np.array(v) for k, v in out.items() if v}, "return": ep.total_reward,
            "velocity": float(ep.next_obs[:, VELOCITY].mean())}


def main() -> None:
    """Print, per task, the predicted and simulated velocity of the session's own plans."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("--split", default="default", help="'default' (the env's own physics) or a test split name")
    ap.add_argument("--mode", default="none")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=5, help="replay every k-th step's plan")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tasks", type=int, default=0)
    ap.add_argument("--ceiling", action="store_true",
                    help="also the perfect-model planner's plans from the same states, through the learned model")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    rt = load(args.artifact)
    family = get_family(rt.manifest.family)
    tasks = [("default", {})] if args.split == "default" else family.test_tasks(args.split)
    rows = []
    for split, params in tasks[: args.max_tasks or None]:
        r = fly(rt, family, params, args.mode, args.steps, args.every, args.seed, args.ceiling)
        row: dict = {"split": split, "params": params, "return": r["return"], "velocity": r["velocity"]}
        print(f"{split} {params}: return {r['return']:.1f}, episode velocity {r['velocity']:.2f} m/s", flush=True)
        for key in ("", "ceiling ") if args.ceiling else ("",):
            plans = row.setdefault("ceiling plans" if key else "own plans", {})
            for a, b in STRETCHES:
                plans[f"steps {a + 1}-{b}"] = {"predicted": float(np.nanmean(r[f"{key}predicted"][:, a:b])),
                                               "simulated": float(np.nanmean(r[f"{key}simulated"][:, a:b]))}
            print(f"  {'perfect-model' if key else 'its own'} plans' velocity (m/s), predicted / simulated: "
                  + ", ".join(f"{k} {v['predicted']:.2f} / {v['simulated']:.2f}" for k, v in plans.items()),
                  flush=True)
        rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"artifact": args.artifact, "mode": args.mode, "steps": args.steps, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()

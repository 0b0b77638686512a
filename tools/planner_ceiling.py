"""The planner's ceiling on a MuJoCo family: MPC episodes planned with the simulator itself as the model.

    python tools/planner_ceiling.py ARTIFACT [--split moderate|default] [--planner horizon=30,iterations=2]
        [--cost '{"reward_weight": 1}'] [--steps 1000] [--seeds 1] [--max-tasks N] [--json out.json] [--posture]
        [--model-params '{"mass_scale": 1, "damping_scale": 1}' [--model-gain G]]

The artifact gives the family, the default cost and planner (a session's settings); the sessions plan with
`mbmrl.train.ceiling.SimulatorDynamics` — every sampled sequence simulated in MuJoCo under the task's own
physics — so the returns say what this planner reaches with a perfect model. Compare with `mbmrl eval` of the
same artifact and planner: the gap is the model's, the rest the planner's.

`--model-params` plans with a simulator of *fixed* physics (e.g. the training range's centre) while the plant is
each task's own: a perfect model of the wrong physics, the ceiling of a model that does not adapt. `--model-gain G`
drives that simulator with the planned actions / G: the ceiling of a nominal model with the actuator gain G.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from cheetah_posture import VELOCITY, posture  # tools/, this script's own folder
from mbmrl.runtime.loader import load
from mbmrl.runtime.planner import parse_planner
from mbmrl.runtime.session import Session
from mbmrl.train.ceiling import ceiling_runtime
from mbmrl.train.config import cost_overrides
from mbmrl.train.episode import run_episode
from mbmrl.train.evaluation.evaluate import stepping
from mbmrl.train.families import get_family


def episode_posture(obs: np.ndarray, chunk: int = 100) -> dict:
    """A half-cheetah episode's shares upright / on its back and its mean velocity per `chunk` steps (obs: (T, 17))."""
    p = posture(obs)
    return {"on back": round(p["on back"], 3), "upright": round(p["upright"], 3),
            f"velocity per {chunk} steps": [round(float(obs[i:i + chunk, VELOCITY].mean()), 2)
                                            for i in range(0, len(obs), chunk)]}


def main() -> None:
    """Fly each task's episodes with a perfect model; print and optionally save the returns."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("--split", default="default", help="'default' (the env's own physics) or a test split name")
    ap.add_argument("--planner", default="", help="planner overrides, e.g. 'horizon=30,iterations=2'")
    ap.add_argument("--cost", default="", help="cost overrides as a JSON object, e.g. '{\"reward_weight\": 1}'")
    ap.add_argument("--steps", type=int, default=0, help="episode length (0: the family's)")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--max-tasks", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="MuJoCo rollout threads")
    ap.add_argument("--json", default="")
    ap.add_argument("--model-params", default="",
                    help="plan with the simulator at these physics (JSON object) instead of each task's own")
    ap.add_argument("--model-gain", type=float, default=1.0,
                    help="the planning simulator receives the planned actions / this (with --model-params at the "
                         "nominal physics: a perfect model that knows the heavy cheetah's actuator gain)")
    ap.add_argument("--posture", action="store_true",
                    help="half-cheetahs: also how much of each episode is upright / on its back, and its velocity")
    args = ap.parse_args()
    rt = load(args.artifact)
    family = get_family(rt.manifest.family)
    tasks = [("default", {})] if args.split == "default" else family.test_tasks(args.split)
    tasks = tasks[: args.max_tasks or None]
    planner, cost = parse_planner(args.planner), (cost_overrides(args.cost) or None)
    steps = args.steps or family.episode_steps
    model_params = json.loads(args.model_params) if args.model_params else None
    if args.model_gain <= 0:
        ap.error(f"--model-gain must be > 0 (the planned actions are divided by it), got {args.model_gain}")
    rows = []
    for split, params in tasks:
        for seed in range(args.seeds):
            t0 = time.time()
            env = family.make_env(params, family.eval_start)  # the simulator reads its model, with its own data
            sim = env if model_params is None else family.make_env(model_params, family.eval_start)
            engine = ceiling_runtime(rt, sim, args.threads, 1.0 / args.model_gain)
            session = Session(engine, "none", planner=planner, cost=cost, seed=seed,
                              gain=False)  # no estimate: a perfect model needs none, a fixed one has --model-gain
            act, observe = stepping(session)
            ep = run_episode(env, act, steps, seed=seed, observe=observe)
            env.close()
            if sim is not env:
                sim.close()
            rows.append({"split": split, "params": params, "model_params": params if sim is env else model_params,
                         "model_gain": args.model_gain, "seed": seed, "return": ep.total_reward,
                         "steps": len(ep.rewards), "seconds": time.time() - t0})
            print(f"{split} {params} seed {seed}: return {ep.total_reward:.1f} over {len(ep.rewards)} steps "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)
            if args.posture:
                rows[-1]["posture"] = episode_posture(ep.next_obs)
                high = np.asarray(env.action_space.high)  # share of torques within 10% of their bound, and mean |a|
                rows[-1]["posture"]["near a bound"] = round(float((np.abs(ep.actions) >= 0.9 * high).mean()), 3)
                rows[-1]["posture"]["mean |a| / bound"] = round(float((np.abs(ep.actions) / high).mean()), 3)
                print("  " + ", ".join(f"{k} {v}" for k, v in rows[-1]["posture"].items()), flush=True)
    mean = float(np.mean([r["return"] for r in rows]))
    print(f"planner ceiling ({session.planner.to_dict()}): mean return {mean:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"artifact": args.artifact, "planner": session.planner.to_dict(), "cost": session.cost.to_dict(),
                       "rows": rows, "mean_return": mean}, f, indent=2)


if __name__ == "__main__":
    main()

"""Fly half-cheetahs of any mass and damping with and without actuator-gain adaptation: the validation probe.

The settings of `mbmrl.runtime.gain` were chosen on cheetahs outside every split (masses and dampings 1.4, 1.45,
1.35, 1.65: heavier than training's 1.25, none in a test grid), not on the test splits. One 1000-step episode per
task and setting from CaDM's start, the same seed for every setting; `--fixed-gain G` holds the gain at G (the
oracle's 1 / mass, say) instead of estimating it.

Usage: python tools/gain_probe.py ARTIFACT --tasks 1.4,1.4 1.65,1.65 1.45,1.35 --gain off on '{"horizon": 10}'
       python tools/gain_probe.py ARTIFACT --planner '' horizon=15,iterations=5 (one run per planner and gain)
       python tools/gain_probe.py ARTIFACT --mode bayes --cost '' '{"uncertainty_weight": 0.1}' (one run per cost)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np


def episode(artifact: str, mass: float, damping: float, mode: str, gain: str, fixed: float, steps: int,
            planner: str = "", cost: str = "", guard: str = "on", seed: int = 0) -> dict:
    """One episode's return and the gain the session ran at (median over steps)."""
    from mbmrl.runtime.loader import load
    from mbmrl.runtime.planner import parse_planner
    from mbmrl.runtime.session import Session
    from mbmrl.train.families.halfcheetah import make_halfcheetah

    rt = load(artifact)
    setting: bool | dict = {"on": True, "off": False}[gain] if gain in ("on", "off") else json.loads(gain)
    if fixed:
        setting = {"every": 10**9}  # never re-estimated: the gain stays where it is set below
    s = Session(rt, mode, seed=seed, gain=setting, planner=parse_planner(planner) if planner else None,
                cost=json.loads(cost) if cost else None, guard=None if guard == "on" else False)
    if fixed:
        s.gain = dataclasses.replace(s.gain, gain=np.array(fixed, dtype=np.float32))
    env = make_halfcheetah({"mass_scale": mass, "damping_scale": damping}, start="cadm")
    obs, _ = env.reset(seed=seed)
    total, gains, transition = 0.0, [], None
    for _ in range(steps):
        _, res = s.step(obs, transition)
        nxt, r, *_ = env.step(res.action)
        total += float(r)
        transition, obs = {"obs": obs, "action": res.action, "next_obs": nxt}, nxt
        gains.append(s.g)
    label = " / ".join(x for x in (mode, gain if not fixed else f"fixed {fixed}", planner, cost,
                                   "" if guard == "on" else "unguarded") if x)
    return {"mass": mass, "damping": damping, "gain_setting": label,
            "return": total, "median_gain": float(np.median(gains))}


def main() -> None:
    """Print one row per task and setting, then each setting's mean."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("--tasks", nargs="+", default=["1.4,1.4", "1.65,1.65", "1.45,1.35"], help="MASS,DAMPING ...")
    ap.add_argument("--gain", nargs="+", default=["off", "on"], help="off, on, or JSON settings (one run each)")
    ap.add_argument("--fixed-gain", type=float, nargs="*", default=[], help="also fly with the gain held here")
    ap.add_argument("--planner", nargs="+", default=[""], help="planner overrides ('' = the artifact's), one run each")
    ap.add_argument("--cost", nargs="+", default=[""], help="cost overrides, JSON ('' = the artifact's), one run each")
    ap.add_argument("--mode", nargs="+", default=["none"], help="adaptation modes, one run each")
    ap.add_argument("--guard", choices=["on", "off"], default="on", help="the adaptation guard (on: the artifact's)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="the episode's start and the session's sampling")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    tasks = [tuple(float(x) for x in t.split(",")) for t in args.tasks]
    runs = [(mode, p, c) for mode in args.mode for c in args.cost for p in args.planner]
    jobs = [(m, d, mode, g, 0.0, p, c) for mode, p, c in runs for g in args.gain for m, d in tasks]
    jobs += [(m, d, mode, "on", f, p, c) for mode, p, c in runs for f in args.fixed_gain for m, d in tasks]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(episode, *zip(*[(args.artifact, m, d, mode, g, f, args.steps, p, c, args.guard,
                                              args.seed)
                                             for m, d, mode, g, f, p, c in jobs], strict=True)))
    print("| mass, damping | gain | return | median gain |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['mass']}, {r['damping']} | {r['gain_setting']} | {r['return']:.1f} | {r['median_gain']:.2f} |")
    for setting in dict.fromkeys(r["gain_setting"] for r in rows):
        mean = np.mean([r["return"] for r in rows if r["gain_setting"] == setting])
        print(f"mean over {len(tasks)} tasks, gain {setting}: {mean:.1f}")


if __name__ == "__main__":
    main()

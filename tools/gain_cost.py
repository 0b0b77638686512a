"""What a transition's gain bookkeeping costs a control loop: this tree's `runtime/gain.py` against another git
revision's, interleaved on the same transitions in one process (the machine's noise hits both alike).

Usage: python tools/gain_cost.py ARTIFACT --old REV [--steps 1200]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def main() -> None:
    """Print mean, p50, p99 and max of `fold_plant` per transition for both, and whether they agree."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("--old", required=True, help="git revision whose runtime/gain.py is the baseline")
    ap.add_argument("--steps", type=int, default=1200)
    args = ap.parse_args()
    from mbmrl.runtime import gain as new
    from mbmrl.runtime.loader import load

    src = subprocess.run(["git", "show", f"{args.old}:runtime/gain.py"], check=True, capture_output=True).stdout
    with tempfile.NamedTemporaryFile("wb", suffix=".py", delete=False) as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("mbmrl.runtime._gain_old", f.name)  # its relative imports resolve
    assert spec and spec.loader
    old = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = old
    spec.loader.exec_module(old)
    os.unlink(f.name)

    rt = load(args.artifact)
    rng = np.random.default_rng(0)
    mods = {"old": old, "new": new}
    cfgs = {k: m.GainConfig() for k, m in mods.items()}
    states = {k: m.init_gain(cfgs[k], rt.obs_dim, rt.action_dim) for k, m in mods.items()}
    times: dict[str, list[float]] = {"old": [], "new": []}
    obs = (0.1 * rng.standard_normal(rt.obs_dim)).astype(np.float32)
    for t in range(args.steps):
        a = rng.uniform(rt.action_low, rt.action_high).astype(np.float32)
        nxt = (obs + 0.05 * rng.standard_normal(rt.obs_dim)).astype(np.float32)
        for k in ("old", "new") if t % 2 else ("new", "old"):  # alternate who goes first
            t0 = time.perf_counter()
            states[k], _ = mods[k].fold_plant(cfgs[k], states[k], obs, a, nxt, rt)
            if t >= args.steps // 6:  # after a warm-up
                times[k].append((time.perf_counter() - t0) * 1e3)
        obs = nxt
    print(f"fold_plant per transition, {len(times['new'])} transitions, ms (old = {args.old})")
    for k, v in times.items():
        x = np.array(v)
        print(f"{k}: mean {x.mean():.3f}  p50 {np.percentile(x, 50):.3f}  p99 {np.percentile(x, 99):.3f}  "
              f"max {x.max():.3f}")
    rel = np.abs(states["old"].scores - states["new"].scores).max() / np.abs(states["old"].scores).max()
    print(f"gain old {float(states['old'].gain)}, new {float(states['new'].gain)}; scores differ by {rel:.1e} "
          "(relative)")


if __name__ == "__main__":
    main()

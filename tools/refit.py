"""Train a fresh model on a finished run's data: compare model settings on the same 200k steps, offline.

A protocol run (`mbmrl train --protocol cadm`) costs hours of collection; the model settings it was flown with
can be compared much faster on the data it collected. This trains a new model (the run's own settings with
the overrides given) on RUN/data.npz and writes a run directory `mbmrl export` and `mbmrl eval` take as they
are. The normalization is the run's own (by default: what its model was trained with) or computed from all
the data (`--stats all`, as `--renormalize` does).

Usage: python tools/refit.py RUN --out OUT [--iters 3000] [--stats run|all] [--seed 0] [key=value ...]
       e.g. python tools/refit.py runs/hc_uniform --out runs/refit_d4 mlp_depth=4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from mbmrl.train.checkpoint import Checkpoint
from mbmrl.train.config import TrainConfig, load_run_config
from mbmrl.train.data import Segments
from mbmrl.train.families import get_family
from mbmrl.train.trainer import build_model, fit, normalization_stats, objective_weights, split_by_task


def overrides(items: list[str]) -> dict:
    """['mlp_depth=4', 'lr=3e-4'] -> typed TrainConfig overrides (a clear error for an unknown field)."""
    kinds = {f.name: type(f.default) for f in dataclasses.fields(TrainConfig)}
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in kinds:
            raise SystemExit(f"refit: unknown setting {key!r}; expected TrainConfig fields like mlp_depth=4")
        out[key] = value.lower() in ("1", "true", "yes") if kinds[key] is bool else kinds[key](value)
    return out


def main() -> None:
    """Parse the command line, train the fresh model, write OUT/ (model.pt, config.json, metrics.json, data.npz)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--out", required=True)
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--stats", choices=("run", "all"), default="run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("settings", nargs="*", help="TrainConfig overrides, key=value")
    args = ap.parse_intermixed_args()
    run, out = Path(args.run), Path(args.out)
    old = Checkpoint.load(run / "model.pt")
    cfg = dataclasses.replace(load_run_config(run), **overrides(args.settings), iters=args.iters, seed=args.seed,
                              out=str(out), mpc_rounds=0, protocol="")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({**dataclasses.asdict(cfg), "refit_of": str(run),
                                                 "refit_stats": args.stats}, indent=2))
    family = get_family(cfg.family)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    segs = Segments.load(run / "data.npz").continuous(family.periodic_obs)
    train_idx, val_idx = split_by_task(segs, cfg.val_frac, rng)
    low, high = np.asarray(old.action_low, np.float32), np.asarray(old.action_high, np.float32)
    prior = old.model()
    stats = normalization_stats(segs, low, high) if args.stats == "all" else {
        name: buf.numpy() for name, buf in prior.named_buffers() if name.endswith(("_mean", "_std"))}
    model = build_model(cfg, prior.args.obs_dim, prior.args.action_dim, stats)
    t0 = time.time()
    history = fit(model, segs, train_idx, val_idx, cfg, torch.device("cpu"), rng, "refit", None,
                  objective_weights(family.default_cost, cfg.objective_weight))
    facts = {k: getattr(old, k) for k in ("family", "param_names", "action_low", "action_high", "family_info")}
    Checkpoint.of(model, config=dataclasses.asdict(cfg), **facts).save(out / "model.pt")
    (out / "data.npz").unlink(missing_ok=True)
    (out / "data.npz").symlink_to((run / "data.npz").resolve())
    (out / "metrics.json").write_text(json.dumps({"final": {"model": history[-1]}, "history": {"model": history},
                                                  "wall_seconds": time.time() - t0}, indent=2))
    print(f"refit: {out} ({time.time() - t0:.0f} s); final {history[-1]}")


if __name__ == "__main__":
    main()

"""Do an ensemble's members disagree as much as they are wrong? Open-loop rollouts on a run's own data.

    python tools/member_spread.py RUN_OR_CHECKPOINT [--data DATA] [--last 300] [--segments 200] [--start 16]
        [--horizon 30] [--index I] [--seed 0] [--json out.json]

From `--start` transitions into each of `--segments` segments drawn from the last `--last` of the run's data
(the latest rounds' on-policy data; RUN/data.npz, or the run a `RUN/rounds/roundNN.pt` checkpoint belongs to),
every member rolls the recorded actions open loop, with the prior belief h0 (mode `none`) and with the belief
h_t the segment's first transitions folded (`recurrent`), as the planner rolls its candidates. The quantity is
the one the planner ranks plans by: the known reward's observation term summed over the steps (the family cost's
`reward.linear`, the half-cheetah's forward velocity), or observation `--index I`. Per horizon it prints the R^2 of
the members' mean against what happened, the RMS of that error and the RMS of the members' spread (standard
deviation across members). Members that agree far more than they are right give the planner no warning where it
exploits their shared errors (PETS's trajectory sampling relies on the spread; `--bootstrap` widens it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from mbmrl.train import losses as L
from mbmrl.train.checkpoint import Checkpoint

HORIZONS = (1, 5, 10, 20, 30)


def rollout_sums(model, b: L.Batch, h: torch.Tensor, start: int, horizon: int, weights: torch.Tensor) -> np.ndarray:
    """Every member's cumulative sum of `weights . x` along its open-loop rollout: (K, B, horizon)."""
    out = []
    with torch.no_grad():
        for k in range(model.args.ensemble):
            h_proj, x, q = model.member(k).fh(h), b.obs[:, start], []
            for j in range(horizon):
                x = model.step(x, b.actions[:, start + j], h_proj, model.W0, k)[0]
                q.append(x @ weights)
            out.append(torch.stack(q, 1).cumsum(1))
    return torch.stack(out).numpy()


def spread_table(model, b: L.Batch, start: int, horizon: int, weights: torch.Tensor) -> dict[str, list[dict]]:
    """Per belief ('none': h0, 'recurrent': h_start) and horizon: R^2, error RMS and member spread RMS."""
    truth = (b.next_obs[:, start:start + horizon] @ weights).cumsum(1).numpy()  # (B, horizon)
    with torch.no_grad():
        h_t = L.encode(model, b).h[:, start]
    beliefs = {"none": model.h0.expand(b.obs.shape[0], -1), "recurrent": h_t}
    out = {}
    for name, h in beliefs.items():
        sums = rollout_sums(model, b, h, start, horizon, weights)  # (K, B, horizon)
        err = sums.mean(0) - truth
        rows = []
        for t in sorted({*(x for x in HORIZONS if x <= horizon), horizon}):
            e, spread = err[:, t - 1], sums[:, :, t - 1].std(0)
            rows.append({"horizon": t, "r2": float(1 - (e**2).mean() / truth[:, t - 1].var()),
                         "error_rms": float(np.sqrt((e**2).mean())), "spread_rms": float(np.sqrt((spread**2).mean())),
                         "bias": float(e.mean()),
                         "spread_error_corr": float(np.corrcoef(spread, np.abs(e))[0, 1]) if spread.std() > 0 else 0.0})
        out[name] = rows
    return out


def main() -> None:
    """Parse the command line, load the model and data, print (and optionally write) the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a run directory (its model.pt) or a checkpoint file (RUN/rounds/roundNN.pt)")
    ap.add_argument("--data", default="", help="segments to roll (default: the run's data.npz)")
    ap.add_argument("--last", type=int, default=300, help="draw from the last this many segments")
    ap.add_argument("--segments", type=int, default=200)
    ap.add_argument("--start", type=int, default=16, help="transitions folded into the belief before rolling")
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--index", type=int, default=-1, help="roll this observation instead of the reward's term")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    path = Path(args.model)
    ckpt_path = path / "model.pt" if path.is_dir() else path
    run = path if path.is_dir() else (path.parent.parent if path.parent.name == "rounds" else path.parent)
    data_path = Path(args.data) if args.data else run / "data.npz"
    for p in (ckpt_path, data_path):
        if not p.exists():
            raise SystemExit(f"member_spread: {p} does not exist; pass a run directory with model.pt and data.npz, "
                             "a RUN/rounds/roundNN.pt checkpoint, or --data")
    ckpt = Checkpoint.load(ckpt_path)
    model = ckpt.model()
    if model.oracle:
        raise SystemExit("member_spread: an oracle model has no belief to roll; pass the run's model.pt")
    obs_dim = model.args.obs_dim
    if args.index >= 0:
        if args.index >= obs_dim:
            raise SystemExit(f"member_spread: --index {args.index} is outside the {obs_dim} observations")
        weights = torch.zeros(obs_dim)
        weights[args.index] = 1.0
    else:
        linear = (ckpt.family_info["default_cost"].get("reward") or {}).get("linear")
        if linear is None or not np.any(linear):
            raise SystemExit(f"member_spread: family {ckpt.family!r} declares no known reward with an observation "
                             "term; pass --index I to roll observation I")
        weights = torch.as_tensor(linear, dtype=torch.float32)
    d = np.load(data_path)
    n, seq = d["obs"].shape[:2]
    if not 0 <= args.start < args.start + args.horizon <= seq:
        raise SystemExit(f"member_spread: --start {args.start} + --horizon {args.horizon} must fit the data's "
                         f"{seq}-step segments")
    pool = np.arange(max(0, n - args.last), n)
    idx = np.sort(np.random.default_rng(args.seed).choice(pool, min(args.segments, len(pool)), replace=False))
    t = lambda k: torch.as_tensor(d[k][idx]).float()  # noqa: E731
    b = L.Batch(t("obs"), t("actions"), t("next_obs"), t("rewards"), t("params"))
    table = spread_table(model, b, args.start, args.horizon, weights)
    print(f"{ckpt_path}: {model.args.ensemble} members, {len(idx)} segments of the last {len(pool)}, "
          f"from step {args.start}")
    print(f"{'belief':<10} {'horizon':>7} {'R2':>6} {'error rms':>10} {'spread rms':>11} {'bias':>7} {'corr':>6}")
    for name, rows in table.items():
        for r in rows:
            print(f"{name:<10} {r['horizon']:>7} {r['r2']:>6.2f} {r['error_rms']:>10.3f} {r['spread_rms']:>11.3f} "
                  f"{r['bias']:>+7.3f} {r['spread_error_corr']:>6.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": str(ckpt_path), "segments": len(idx), "table": table},
                                              indent=2))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()

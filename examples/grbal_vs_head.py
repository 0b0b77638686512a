"""Does adapting only the linear head lose much against GrBAL's adapt-all-weights? Measured, same data.

GrBAL (Nagabandi et al. 2019) meta-trains a feed-forward dynamics model so that ONE SGD step on
*all* its weights over the past M=16 transitions predicts the next 16 well (its code: inner rate
1e-3). Our `gradient` mode takes k steps on the head only (closed form, numpy, cheap on a device).
This script meta-trains both from scratch on the same data (an `mbmrl train` run's data.npz), the
same network and the same budget, with the recurrent belief switched off (h = h0) so that the
only difference is *which* weights the inner step adapts:

    all-weights: W' = W - alpha * grad_W L_ctx over every weight (alpha meta-learned, init 1e-3),
                 second-order MAML through torch.autograd.grad(create_graph=True)
    head-only:   k=2 steps on the head, per-output step size meta-learned (our mbmrl.train.losses)

and scores both on the family's *test-range* tasks with GrBAL's protocol (adapt on 16, score the
next 16), NMSE per task as in `mbmrl eval`. Torch evaluation from the trained weights (this is a
research comparison, not the deployed artifact).

    python examples/grbal_vs_head.py RUN_DIR --iters 3000 --out grbal.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from mbmrl.train import losses as L
from mbmrl.train.config import TrainConfig, load_run_config
from mbmrl.train.data import Segments
from mbmrl.train.evaluation.evaluate import eval_episodes
from mbmrl.train.families import get_family
from mbmrl.train.model import DynamicsModel
from mbmrl.train.trainer import build_model, normalization_stats
from torch.func import functional_call

M = 16  # GrBAL: adapt on the past 16 transitions, score on the next 16


class Predictor(torch.nn.Module):
    """Feed-forward view of the model (h fixed at h0) so functional_call can swap in adapted weights."""

    def __init__(self, model: DynamicsModel):
        super().__init__()
        self.model = model

    def forward(self, obs, action):  # (B, T, ...) -> (B, T, P)
        m = self.model
        return m.features(obs, action, m.h0.expand(*obs.shape[:-1], -1)) @ m.W0


def adapted_weights(pred: Predictor, log_lr: torch.Tensor, obs, act, y, create_graph: bool) -> dict:
    """One SGD step on every weight of the predictor over a context (GrBAL's inner update)."""
    params = {k: v for k, v in pred.named_parameters() if v.requires_grad}
    loss = ((functional_call(pred, params, (obs, act)) - y) ** 2).mean()
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph, allow_unused=True)
    lr = log_lr.exp()
    return {k: v - lr * g if g is not None else v for (k, v), g in zip(params.items(), grads, strict=True)}


def head_only_W(model: DynamicsModel, obs, act, y, steps: int) -> torch.Tensor:
    phi = model.features(obs, act, model.h0.expand(*obs.shape[:-1], -1))  # (B, M, D)
    return L.gradient_head(model, phi, y, steps)  # (B, D, P)


def meta_train(kind: str, segs: Segments, stats: dict, cfg: TrainConfig, iters: int, seed: int) -> tuple:
    """Meta-train a fresh model with one inner-loop kind ('all' or 'head'); returns (model, log_lr, seconds)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(cfg, segs.obs.shape[-1], segs.actions.shape[-1], stats)
    # only the feed-forward network (+ the head's step sizes for head-only) learns: h stays h0
    learn = ("fx.", "f2.", "f3.", "W0") + (("log_step_size",) if kind == "head" else ())
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(learn))
    pred = Predictor(model)
    log_lr = torch.nn.Parameter(torch.tensor(float(np.log(1e-3))))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad] + [log_lr], lr=cfg.lr)
    t0 = time.time()
    for _ in range(iters):
        idx = rng.choice(len(segs), size=cfg.batch_size)
        s = int(rng.integers(0, segs.obs.shape[1] - 2 * M + 1))
        o, a, n, r = (torch.as_tensor(x[idx, s : s + 2 * M])
                      for x in (segs.obs, segs.actions, segs.next_obs, segs.rewards))
        y = model.targets(o, n, r)  # (B, 2M, P)
        if kind == "all":
            w = adapted_weights(pred, log_lr, o[:, :M], a[:, :M], y[:, :M], create_graph=True)
            loss = ((functional_call(pred, w, (o[:, M:], a[:, M:])) - y[:, M:]) ** 2).mean()
        else:
            W = head_only_W(model, o[:, :M], a[:, :M], y[:, :M], cfg.gradient_steps)
            phi = model.features(o[:, M:], a[:, M:], model.h0.expand(*o[:, M:].shape[:-1], -1))
            loss = ((phi @ W - y[:, M:]) ** 2).mean()
        loss = loss + 0.5 * ((pred(o, a) - y) ** 2).mean()  # the unadapted model stays a sane prior
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
    return model, log_lr.detach(), time.time() - t0


def _nmse(pred: torch.Tensor, y: torch.Tensor, o_dim: int, task_var: torch.Tensor) -> float:
    return float((((pred - y)[..., :o_dim]) ** 2 / task_var).mean())


def evaluate(kind: str, model: DynamicsModel, log_lr, family, tasks, windows: int, seed: int) -> dict:
    """Test-range NMSE (per-task normalized) before and after adaptation on 16, scored on the next 16."""
    pred = Predictor(model)
    before, after, adapt_ms = [], [], []
    for ti, (_, params) in enumerate(tasks):
        eps = eval_episodes(family, params, 2, family.episode_steps, seed=seed * 7919 + ti)
        d = np.concatenate([(e["next_obs"] - e["obs"]) for e in eps]) / model.delta_std.numpy()
        task_var = torch.as_tensor(np.maximum(d.var(0), 1e-8))
        b_err, a_err = [], []
        for e in eps:
            ok = [s for s in range(0, len(e["obs"]) - 2 * M + 1) if not e["ends"][s : s + 2 * M - 1].any()]
            for s in sorted({ok[int(i)] for i in np.linspace(0, len(ok) - 1, windows // 2)}) if ok else []:
                o, a, n, r = (torch.as_tensor(e[k][None, s : s + 2 * M])
                              for k in ("obs", "actions", "next_obs", "rewards"))
                y = model.targets(o, n, r)
                o_dim = model.args.obs_dim
                t0 = time.perf_counter()
                if kind == "all":
                    w = adapted_weights(pred, log_lr, o[:, :M], a[:, :M], y[:, :M], create_graph=False)
                    with torch.no_grad():
                        p_after = functional_call(pred, w, (o[:, M:], a[:, M:]))
                else:
                    with torch.no_grad():
                        W = head_only_W(model, o[:, :M], a[:, :M], y[:, :M], 2)
                        p_after = model.features(o[:, M:], a[:, M:], model.h0.expand(1, M, -1)) @ W
                adapt_ms.append((time.perf_counter() - t0) * 1e3)
                with torch.no_grad():
                    p_before = pred(o[:, M:], a[:, M:])
                b_err.append(_nmse(p_before, y[:, M:], o_dim, task_var))
                a_err.append(_nmse(p_after.detach(), y[:, M:], o_dim, task_var))
        before.append(np.mean(b_err))
        after.append(np.mean(a_err))
    n_adapted = (sum(p.numel() for p in model.parameters() if p.requires_grad) if kind == "all"
                 else model.W0.numel())
    return {"nmse_before": float(np.mean(before)), "nmse_after": float(np.mean(after)),
            "adapted_weights": int(n_adapted), "adapt_ms_torch": float(np.median(adapt_ms)),
            "inner_lr": float(log_lr.exp()) if kind == "all" else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="an `mbmrl train` run directory (its data.npz and config.json are used)")
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--windows", type=int, default=8, help="adapt/score windows per test task")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="grbal_vs_head.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = Path(args.run)
    cfg = load_run_config(run)
    family = get_family(cfg.family)
    segs = Segments.load(run / "data.npz")
    if segs.obs.shape[1] < 2 * M:
        raise SystemExit(f"segments of {segs.obs.shape[1]} steps are shorter than 2 x {M}; train with --seq-len >= 32")
    env = family.make_env(family.test_tasks(next(iter(family.test_splits)))[0][1], "default")
    stats = {k: torch.as_tensor(v) for k, v in normalization_stats(segs, env.action_space.low,
                                                                     env.action_space.high).items()}
    env.close()
    tasks = [t for sp in family.test_splits for t in family.test_tasks(sp)]
    result = {"family": family.name, "run": str(run), "iters": args.iters, "test_tasks": len(tasks)}
    for kind in ("head", "all"):
        model, log_lr, secs = meta_train(kind, segs, stats, cfg, args.iters, args.seed)
        result[kind] = {"train_seconds": secs, **evaluate(kind, model.eval(), log_lr, family, tasks,
                                                           args.windows, args.seed)}
        if kind == "all":  # give GrBAL every chance: the best inner rate chosen on the test tasks themselves
            sweep = {m: evaluate(kind, model, log_lr + float(np.log(m)), family, tasks, args.windows, args.seed)
                     for m in (3.0, 10.0, 30.0, 100.0)}
            best = min(sweep.values(), key=lambda r: r["nmse_after"])
            result[kind]["lr_sweep"] = {str(r["inner_lr"]): r["nmse_after"] for r in sweep.values()}
            result[kind]["best_lr"] = best["inner_lr"] if best["nmse_after"] < result[kind]["nmse_after"] \
                else result[kind]["inner_lr"]
            result[kind]["nmse_after_best_lr"] = min(best["nmse_after"], result[kind]["nmse_after"])
        print(f"{kind}: {result[kind]}")
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\nGrBAL protocol (adapt on {M}, score next {M}) on {len(tasks)} test-range {family.name} tasks, NMSE:")
    print("| inner loop | adapted weights | before | after | after, best test-tuned rate | adapt (torch, ms) |")
    print("|---|---|---|---|---|---|")
    for kind, name in (("all", "all weights, 1 SGD step (GrBAL)"), ("head", "head only, 2 steps (mbmrl)")):
        r = result[kind]
        best = f"{r['nmse_after_best_lr']:.4f} (rate {r['best_lr']:.3g})" if "best_lr" in r else "-"
        print(f"| {name} | {r['adapted_weights']} | {r['nmse_before']:.4f} | {r['nmse_after']:.4f} | {best} | "
              f"{r['adapt_ms_torch']:.2f} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

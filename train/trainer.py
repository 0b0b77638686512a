"""Meta-training loop: collect data across tasks, fit the model, write the run directory.

RUN/ gets config.json (resolved), data.npz, model.pt (+ oracle.pt), metrics.json and
train_curve.png.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import trange

from . import losses as L
from .config import TrainConfig
from .data import Segments, collect_random
from .families import TaskFamily, get_family, sample_params
from .model import DynamicsModel, ModelArgs


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; an explicit cuda request without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was requested but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


def normalization_stats(segs: Segments, action_low: np.ndarray, action_high: np.ndarray,
                        ) -> dict[str, np.ndarray]:
    """Mean/std of observations, deltas, rewards (from data) and actions (from their bounds)."""
    flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
    obs, delta = flat(segs.obs), flat(segs.next_obs - segs.obs)
    std = lambda x: np.maximum(x.std(0), 1e-4).astype(np.float32)  # noqa: E731
    return {
        "obs_mean": obs.mean(0), "obs_std": std(obs),
        "action_mean": ((action_low + action_high) / 2).astype(np.float32),
        "action_std": ((action_high - action_low) / 2).astype(np.float32),
        "delta_mean": delta.mean(0), "delta_std": std(delta),
        "reward_mean": np.array([segs.rewards.mean()], np.float32),
        "reward_std": np.array([max(segs.rewards.std(), 1e-4)], np.float32),
        "param_mean": segs.params.mean(0), "param_std": std(segs.params),
    }


def to_batch(segs: Segments, idx: np.ndarray, device: torch.device) -> L.Batch:
    """Segments `idx` as tensors on `device`."""
    t = lambda x: torch.as_tensor(x[idx], device=device)  # noqa: E731
    return L.Batch(t(segs.obs), t(segs.actions), t(segs.next_obs), t(segs.rewards), t(segs.params))


def split_by_task(segs: Segments, val_frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Segment indices for training and for validation on held-out tasks."""
    tasks = np.unique(segs.task_ids)
    val_tasks = rng.choice(tasks, size=max(1, int(round(val_frac * len(tasks)))), replace=False)
    is_val = np.isin(segs.task_ids, val_tasks)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


@torch.no_grad()
def validation_errors(model: DynamicsModel, batch: L.Batch, context: int, cfg: TrainConfig) -> dict[str, float]:
    """One-step normalized delta MSE at position `context` (after that many transitions), per mode."""
    model.eval()
    e = L.encode(model, batch)
    o = model.args.obs_dim
    err = lambda pred, t: float(((pred[:, t, :o] - e.y[:, t, :o]) ** 2).mean())  # noqa: E731
    phi0 = model.features(batch.obs, batch.actions, model.h0.expand_as(e.h))
    out = {"recurrent" if not model.oracle else "oracle": err(e.phi @ model.W0, context)}
    if not model.oracle:
        out["none"] = err(phi0 @ model.W0, context)
        if cfg.gradient_weight > 0:
            lo = max(0, context - cfg.window)
            W = L.adapt_gradient(model, e.phi[:, lo:context], e.y[:, lo:context], cfg.gradient_steps)
            out["gradient"] = err(e.phi @ W, context)
        if cfg.bayes_weight > 0:
            W, _ = L.bayes_posterior(model, e.phi[:, :context], e.y[:, :context])
            out["bayes"] = err(e.phi @ W, context)
    model.train()
    return out


def fit(model: DynamicsModel, segs: Segments, train_idx: np.ndarray, val_idx: np.ndarray, cfg: TrainConfig,
        device: torch.device, rng: np.random.Generator, desc: str) -> list[dict]:
    """Meta-train `model` on segments; returns the logged history."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.iters, eta_min=cfg.lr * 0.05)
    val_batch = to_batch(segs, val_idx, device)
    context = min(16, segs.obs.shape[1] - 1)
    history: list[dict] = []
    bar = trange(cfg.iters, desc=desc, disable=not cfg.progress, leave=False)
    for it in bar:
        b = to_batch(segs, rng.choice(train_idx, size=cfg.batch_size), device)
        e = L.encode(model, b)
        parts = {"recurrent": L.recurrent_loss(model, e)}
        if not model.oracle:
            parts["none"] = cfg.none_weight * L.none_loss(model, b, e)
            if cfg.gradient_weight > 0:
                parts["gradient"] = cfg.gradient_weight * L.gradient_loss(model, e, cfg.window, cfg.gradient_steps)
            if cfg.bayes_weight > 0:
                parts["bayes"] = cfg.bayes_weight * L.bayes_loss(model, e, cfg.window)
        if cfg.rollout_steps > 1:
            parts["multistep"] = cfg.multistep_weight * L.multistep_loss(model, b, e, cfg.rollout_steps)
        loss = sum(parts.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        if it % 100 == 0 or it == cfg.iters - 1:
            row = {"iter": it, "loss": loss.item(), **{f"loss_{k}": v.item() for k, v in parts.items()}}
            row.update({f"val_{k}": v for k, v in validation_errors(model, val_batch, context, cfg).items()})
            history.append(row)
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k.startswith("val_")})
    return history


def build_model(cfg: TrainConfig, obs_dim: int, action_dim: int, stats: dict, n_task_params: int = 0,
                device: torch.device | str = "cpu") -> DynamicsModel:
    """A fresh model (oracle if n_task_params > 0) with normalization statistics from the data."""
    args = ModelArgs(obs_dim, action_dim, cfg.hidden_size, cfg.feature_dim, cfg.mlp_width, n_task_params)
    model = DynamicsModel(args)
    keys = ["obs", "action", "delta", "reward"] + (["param"] if n_task_params else [])
    model.set_normalization({f"{k}_{s}": stats[f"{k}_{s}"] for k in keys for s in ("mean", "std")})
    return model.to(device)


def plot_history(histories: dict[str, list[dict]], path: Path) -> None:
    """Validation error vs iteration, one line per mode (log-y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, hist in histories.items():
        for k in [k for k in hist[-1] if k.startswith("val_")]:
            ax.plot([r["iter"] for r in hist], [r[k] for r in hist], label=f"{name}: {k[4:]}",
                    linestyle="--" if k == "val_oracle" else "-")
    ax.set(xlabel="iteration", ylabel="one-step error after 16 transitions (normalized MSE)", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def family_info(family: TaskFamily) -> dict:
    """What export needs to know about the family, stored in the checkpoint (self-describing runs)."""
    return {"name": family.name, "description": family.description, "obs_names": list(family.obs_names),
            "action_names": list(family.action_names), "default_cost": family.default_cost.to_dict(),
            "default_planner": dict(family.default_planner), "param_ranges": family.param_ranges(),
            "eval_start": family.eval_start, "episode_steps": family.episode_steps}


def train(cfg: TrainConfig, family: TaskFamily | None = None) -> Path:
    """Collect data, meta-train (and the oracle), and write the run directory. Returns its path."""
    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    family = family or get_family(cfg.family)
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    probe = family.make_env(sample_params(family.train, np.random.default_rng(0)), "default")
    low, high = probe.action_space.low.astype(np.float32), probe.action_space.high.astype(np.float32)
    obs_dim, action_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
    probe.close()
    segs = collect_random(family, cfg.n_tasks, cfg.episodes_per_task, cfg.seq_len, rng, progress=cfg.progress)
    segs.save(out / "data.npz")
    train_idx, val_idx = split_by_task(segs, cfg.val_frac, rng)
    stats = normalization_stats(segs, low, high)

    model = build_model(cfg, obs_dim, action_dim, stats, device=device)
    histories = {"model": fit(model, segs, train_idx, val_idx, cfg, device, rng, "meta-train")}
    meta = {"family": family.name, "param_names": list(family.param_names), "action_low": low.tolist(),
            "action_high": high.tolist(), "config": dataclasses.asdict(cfg), "family_info": family_info(family)}
    torch.save({**model.cpu().checkpoint(), **meta}, out / "model.pt")
    if cfg.oracle:
        oracle = build_model(cfg, obs_dim, action_dim, stats, n_task_params=len(family.param_names), device=device)
        histories["oracle"] = fit(oracle, segs, train_idx, val_idx, cfg, device, rng, "oracle")
        torch.save({**oracle.cpu().checkpoint(), **meta}, out / "oracle.pt")
    metrics = {"final": {k: h[-1] for k, h in histories.items()}, "history": histories,
               "n_segments": len(segs), "device": str(device), "wall_seconds": time.time() - t0}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_history(histories, out / "train_curve.png")
    return out


"""Meta-training loop: collect data across tasks, fit the model, write the run directory.

RUN/ gets config.json (resolved), data.npz, model.pt (+ oracle.pt), metrics.json,
train_curve.png and tb/ (TensorBoard scalars). Under torchrun only rank 0 writes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import operator
import sys
import time
from pathlib import Path

import numpy as np
import torch
from mbmrl.runtime.cost import Cost
from mbmrl.runtime.guard import objective_dims
from mbmrl.runtime.planner import parse_planner
from tqdm.auto import trange

from . import distributed as dist
from . import losses as L
from .checkpoint import Checkpoint
from .config import TrainConfig, cost_overrides, load_run_config, with_protocol
from .data import Segments, collect_random, collect_random_vector
from .explore import collect_mpc
from .families import CostSpec, TaskFamily, box_bounds, get_family, sample_params
from .model import DynamicsModel, ModelArgs
from .resume import RoundState, load_round, save_round


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
            W = L.gradient_head(model, e.phi[:, lo:context], e.y[:, lo:context], cfg.gradient_steps)
            out["gradient"] = err(e.phi @ W, context)
        if cfg.bayes_weight > 0:
            W, _ = L.bayes_posterior(model, e.phi[:, :context], e.y[:, :context])
            out["bayes"] = err(e.phi @ W, context)
    model.train()
    return out


def loss_parts(model: DynamicsModel, b: L.Batch, e: L.Encoded, cfg: TrainConfig,
               target_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The weighted meta-training losses on one encoded batch, by part; their sum is the training loss.
    `target_weight` (P,) weighs the outputs in the prediction losses (`objective_weights`)."""
    w_rec = 1.0 if model.oracle else cfg.recurrent_weight  # the oracle's only loss
    parts = {}  # a part whose weight is 0 is not computed (nor logged)
    if w_rec > 0:
        parts["recurrent"] = w_rec * L.recurrent_loss(model, e, gaussian=cfg.gaussian_nll, weight=target_weight)
    if not model.oracle:
        parts["none"] = cfg.none_weight * L.none_loss(model, b, e, weight=target_weight)
        if cfg.gradient_weight > 0:
            parts["gradient"] = cfg.gradient_weight * L.gradient_loss(model, e, cfg.window, cfg.gradient_steps)
        if cfg.bayes_weight > 0:
            parts["bayes"] = cfg.bayes_weight * L.bayes_loss(model, e, cfg.window, cfg.noise_prior)
    if cfg.rollout_steps > 1:
        parts["multistep"] = cfg.multistep_weight * L.multistep_loss(model, b, e, cfg.rollout_steps,
                                                                       none_weight=cfg.none_weight,
                                                                       recurrent_weight=w_rec)
    return parts


def autocast(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA with --amp (no loss scaling needed); elsewhere plain float32."""
    if cfg.amp and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def rank_shard(batch_size: int) -> slice:
    """This rank's slice of a global batch of `batch_size` (equal shares, so shard means average exactly)."""
    n = dist.world_size()
    if batch_size % n:
        raise ValueError(f"--batch-size {batch_size} is the global batch and must divide evenly across the "
                         f"{n} torchrun processes; use a multiple of {n}")
    per_rank = batch_size // n
    return slice(dist.rank() * per_rank, (dist.rank() + 1) * per_rank)


def objective_weights(cost: CostSpec, weight: float) -> np.ndarray | None:
    """Per-output loss weights (obs_dim + 1,): 1 + `weight` on the outputs the planning cost reads (the
    observation dims the guard weighs, `objective_dims`; the reward output when the reward is learned),
    rescaled to mean 1. None when `weight` is 0 (every output alike)."""
    if weight == 0:
        return None
    reads = objective_dims(Cost.from_dict(cost.to_dict(), len(cost.q), len(cost.r)))
    reads = np.append(reads, cost.reward_source == "learned" and cost.reward_weight != 0)
    w = 1.0 + weight * reads.astype(np.float32)
    return (w / w.mean()).astype(np.float32)


def optimizer(model: DynamicsModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with `cfg.weight_decay` on the GRU's and feature MLPs' weight matrices only: the head W0, its
    Bayesian prior, V and every vector (biases, h0, step sizes, noise) are not shrunk toward zero. Plain Adam
    without decay (the runs made before the option, to the bit)."""
    if cfg.weight_decay == 0:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
    decay = [p for name, p in model.named_parameters() if p.ndim == 2 and name.split(".")[-1].startswith("weight")]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)


def bootstrap_weights(n_segments: int, train_idx: np.ndarray, members: int, rng: np.random.Generator) -> np.ndarray:
    """(K, n_segments) weights: member k's count of each segment in its own resample, with replacement, of
    `train_idx` (PETS's bootstrap), divided by the segment's count in `train_idx` (batches already draw a
    repeated segment that much more often); every segment's expected weight is 1, 0 off `train_idx`."""
    mult = np.bincount(train_idx, minlength=n_segments).astype(np.float32)
    draws = rng.choice(train_idx, size=(members, len(train_idx)))  # (K, n_train)
    counts = np.stack([np.bincount(d, minlength=n_segments) for d in draws]).astype(np.float32)
    return np.divide(counts, mult, out=np.zeros_like(counts), where=mult > 0)


def fit(model: DynamicsModel, segs: Segments, train_idx: np.ndarray, val_idx: np.ndarray, cfg: TrainConfig,
        device: torch.device, rng: np.random.Generator, desc: str, writer=None,
        target_weight: np.ndarray | None = None, opt: torch.optim.Optimizer | None = None) -> list[dict]:
    """Meta-train `model` on segments (data-parallel under torchrun); returns the logged history (rank 0's).

    Every rank draws the same global batch indices from the shared `rng` and trains on its slice;
    gradients are averaged over ranks, so N processes take the same steps as one with the whole batch.
    `opt`: an optimizer over `model` to continue (its moment estimates kept), else a fresh one; either way the
    cosine schedule starts at `cfg.lr`. `cfg.bootstrap`: each member's resample is drawn here, once per call.
    """
    weight = None if target_weight is None else torch.as_tensor(target_weight, device=device)
    if opt is None:
        opt = optimizer(model, cfg)
    for group in opt.param_groups:  # the schedule below starts from `initial_lr`
        group["lr"] = group["initial_lr"] = cfg.lr
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.iters, eta_min=cfg.lr * 0.05)
    val_batch = to_batch(segs, val_idx, device)
    context = min(16, segs.obs.shape[1] - 1)
    shard = rank_shard(cfg.batch_size)
    dist.broadcast_parameters(model.parameters())
    boot = bootstrap_weights(len(segs), train_idx, model.args.ensemble, rng) if cfg.bootstrap else None
    history: list[dict] = []
    bar = trange(cfg.iters, desc=desc, disable=not (cfg.progress and dist.is_main()), leave=False)
    for it in bar:
        idx = rng.choice(train_idx, size=cfg.batch_size)  # the global batch: identical on every rank
        b = to_batch(segs, idx[shard], device)
        mw = None if boot is None else torch.as_tensor(boot[:, idx[shard]], device=device)  # (K, B)
        e = L.encode(model, b, mw)  # float32: under autocast cuDNN's GRU would run in float16, without loss scaling
        with autocast(cfg, device):
            parts = loss_parts(model, b, e, cfg, weight)
            loss = functools.reduce(operator.add, parts.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        dist.average_gradients(model.parameters())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        if it % cfg.log_every == 0 or it == cfg.iters - 1:
            # mean of equal-size shard losses = the loss over the global batch
            logged = dist.mean_over_ranks(torch.stack([v.detach().float() for v in (loss, *parts.values())]))
            if not dist.is_main():
                continue
            row = {"iter": it, **dict(zip(["loss", *(f"loss_{k}" for k in parts)], logged.tolist(), strict=True))}
            row.update({f"val_{k}": v for k, v in validation_errors(model, val_batch, context, cfg).items()})
            history.append(row)
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k.startswith("val_")})
            if writer is not None:  # TensorBoard SummaryWriter, on rank 0 only
                for k in row.keys() - {"iter"}:
                    writer.add_scalar(f"{desc}/{k}", row[k], it)
    return history


def build_model(cfg: TrainConfig, obs_dim: int, action_dim: int, stats: dict, n_task_params: int = 0,
                device: torch.device | str = "cpu") -> DynamicsModel:
    """A fresh model (oracle if n_task_params > 0) with normalization statistics from the data."""
    args = ModelArgs(obs_dim, action_dim, cfg.hidden_size, cfg.feature_dim, cfg.mlp_width, n_task_params,
                     ensemble=cfg.ensemble, mlp_depth=cfg.mlp_depth, member_heads=cfg.member_heads,
                     feature_activation=cfg.feature_activation)
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


def round_returns(k: int, returns: np.ndarray, env_steps: int) -> dict:
    """One MPC round's episode returns as a learning-curve point (`env_steps`: segment steps collected so far)."""
    return {"round": k, "env_steps": env_steps, "mean": float(np.mean(returns)), "min": float(np.min(returns)),
            "max": float(np.max(returns)), "returns": [float(r) for r in returns]}


def plot_learning_curve(curve: list[dict], path: Path) -> None:
    """Mean (and min-max band of) the on-policy episodes' returns against the environment steps collected."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [c["env_steps"] for c in curve]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, [c["mean"] for c in curve], marker="o", label="mean over the round's tasks")
    ax.fill_between(x, [c["min"] for c in curve], [c["max"] for c in curve], alpha=0.25, label="min-max")
    ax.set(xlabel="environment steps collected (segments)", ylabel="episode return (exploration noise on)",
           title="on-policy MPC rounds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def family_info(family: TaskFamily, planner: dict | None = None) -> dict:
    """What export needs to know about the family, stored in the checkpoint (self-describing runs); `planner`
    overrides the family's planner defaults (`mbmrl train --planner`)."""
    return {"name": family.name, "description": family.description, "obs_names": list(family.obs_names),
            "action_names": list(family.action_names), "default_cost": family.default_cost.to_dict(),
            "default_planner": {**family.default_planner, **(planner or {})}, "param_ranges": family.param_ranges(),
            "eval_start": family.eval_start, "episode_steps": family.episode_steps,
            "reference": family.reference.to_dict() if family.reference else None,
            "periodic_obs": {str(k): float(v) for k, v in family.periodic_obs.items()},
            "default_guard": dict(family.default_guard), "default_gain": dict(family.default_gain)}


def open_tensorboard(path: Path):
    """A TensorBoard SummaryWriter at `path`, or None (after one warning) when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        print(f"mbmrl train: warning: no TensorBoard scalars ({e}); `pip install tensorboard` or pass "
              "--no-tensorboard", file=sys.stderr)
        return None
    return SummaryWriter(str(path))


def collect(family: TaskFamily, cfg: TrainConfig, rng: np.random.Generator) -> Segments:
    """Random-action training data, sequentially or from `cfg.collect_envs` parallel envs."""
    progress = cfg.progress and dist.is_main()
    if cfg.collect_envs > 1:
        return collect_random_vector(family, cfg.n_tasks, cfg.episodes_per_task, cfg.seq_len, rng,
                                     cfg.collect_envs, progress=progress, policy=cfg.random_policy)
    return collect_random(family, cfg.n_tasks, cfg.episodes_per_task, cfg.seq_len, rng, progress=progress,
                          policy=cfg.random_policy)


def recorded_segments(spec: str, seq_len: int, param_names: tuple[str, ...], first_task_id: int) -> Segments:
    """Recorded sessions (`mbmrl serve --record`) as training segments: each session is a task of unknown
    parameters (NaN), its consecutive transitions cut into `seq_len` segments."""
    from mbmrl.runtime.recording import read_recording

    from .replay import follows, recording_files, sessions_of

    sessions = {name: [m for topic, _, m in read_recording(list(files)) if topic == "/mbmrl/transition"]
                for name, files in sessions_of(recording_files(spec)).items()}
    parts = []
    for k, trans in enumerate(sessions.values()):
        obs, nxt = (np.asarray([t[key] for t in trans], np.float32) for key in ("obs", "next_obs"))
        breaks = np.flatnonzero(~follows(obs, nxt)) + 1
        for run in np.split(np.arange(len(trans)), breaks):  # consecutive stretches only
            for start in range(0, len(run) - seq_len + 1, seq_len):
                idx = run[start : start + seq_len]
                parts.append((idx, trans, k))
    if not parts:
        raise ValueError(f"{spec}: no recorded stretch of {seq_len} consecutive transitions to train on")

    if any(trans[i]["reward"] is None for idx, trans, _ in parts for i in idx):
        raise ValueError(f"{spec}: some recorded transitions have no reward; the model learns rewards too, so "
                         "fine-tune only on sessions whose robot sent them")

    def stack(key: str) -> np.ndarray:
        return np.stack([np.asarray([trans[i][key] for i in idx], np.float32) for idx, trans, _ in parts])

    return Segments(stack("obs"), stack("action"), stack("next_obs"), stack("reward"),
                    np.full((len(parts), len(param_names)), np.nan, np.float32),
                    np.array([first_task_id + k for _, _, k in parts]), param_names)


def fine_tune_config(cfg: TrainConfig) -> TrainConfig:
    """The --init run's own config (model, losses, adaptation settings, family), with this call's budget,
    output, seed and data (and `--cost`, when given): what the fine-tuned model is trained and exported with. No
    new environment steps: the saved config already holds its protocol's values, so the protocol is dropped (it
    would refill `mpc_rounds`)."""
    base = load_run_config(cfg.init, drop=("init", "data", "data_repeat"))
    return dataclasses.replace(base, out=cfg.out, iters=cfg.iters, seed=cfg.seed, init=cfg.init, data=cfg.data,
                               data_repeat=cfg.data_repeat, progress=cfg.progress, device=cfg.device,
                               threads=cfg.threads, mpc_rounds=0, protocol="", oracle=cfg.oracle and not cfg.data,
                               cost=cfg.cost or base.cost)


def train(cfg: TrainConfig, family: TaskFamily | None = None) -> Path:
    """Collect data, meta-train (and the oracle), and write the run directory. Returns its path.

    Under `torchrun --nproc_per_node=N` this runs data-parallel on N processes; only rank 0 writes files.
    """
    if cfg.init:
        cfg = fine_tune_config(cfg)
    cfg = with_protocol(cfg)
    family = family or get_family(cfg.family)
    if cfg.cost:  # the run's planning cost: the exploring sessions' and the artifact's default
        family = dataclasses.replace(family, default_cost=family.default_cost.merged(cost_overrides(cfg.cost)))
    with dist.process_group(resolve_device(cfg.device)) as device:
        return _train(cfg, family, device)


def _train(cfg: TrainConfig, family: TaskFamily, device: torch.device) -> Path:
    t0 = time.time()
    rank_shard(cfg.batch_size)  # a batch that cannot be split evenly fails here, before data collection
    out, main = Path(cfg.out), dist.is_main()
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)  # every rank: same init and the same random context splits in the losses
    rng = np.random.default_rng(cfg.seed)  # every rank: same data, same global batches

    probe = family.make_env(sample_params(family.train, np.random.default_rng(0)), "default")
    low, high = box_bounds(probe.action_space)
    obs_dim, action_dim = len(box_bounds(probe.observation_space)[0]), len(low)
    probe.close()
    resumed = load_round(out, cfg) if cfg.resume else None  # --resume: continue after the last finished round
    writer = open_tensorboard(out / "tb") if cfg.tensorboard and main else None
    target_weight = objective_weights(family.default_cost, cfg.objective_weight)
    if resumed:
        state, segs = resumed
        segs = segs.continuous(family.periodic_obs)
        train_idx, val_idx, stats, curve, histories = (state.train_idx, state.val_idx, state.stats, state.curve,
                                                       state.histories)
        model = build_model(cfg, obs_dim, action_dim, stats, device=device)
        model.load_state_dict(state.model)
        opt = optimizer(model, cfg) if cfg.keep_optimizer else None  # --keep-optimizer: Adam's moments go on
        if opt is not None and state.optimizer is not None:
            opt.load_state_dict(state.optimizer)
        rng.bit_generator.state, first_round = state.rng, state.round
        torch.set_rng_state(state.torch_rng)
        if main:
            print(f"mbmrl train: resuming {out} after MPC round {first_round}", file=sys.stderr, flush=True)
    else:
        # fine-tune (--init): the run's own data (so its normalization) and weights, plus recorded sessions
        segs = Segments.load(Path(cfg.init) / "data.npz") if cfg.init else collect(family, cfg, rng)
        segs = segs.continuous(family.periodic_obs)  # a wrapped angle's jump is no dynamics (every source too)
        train_idx, val_idx = split_by_task(segs, cfg.val_frac, rng)
        stats = normalization_stats(segs, low, high)
        if cfg.data:  # (the oracle is off then: recorded tasks have no known parameters)
            rec = recorded_segments(cfg.data, cfg.seq_len, segs.param_names,
                                    first_task_id=int(segs.task_ids.max()) + 1)
            train_idx = np.concatenate([train_idx, np.tile(len(segs) + np.arange(len(rec)), cfg.data_repeat)])
            segs = Segments.concat([segs, rec.continuous(family.periodic_obs)])
        model = (Checkpoint.load(Path(cfg.init) / "model.pt").model().to(device).train() if cfg.init
                 else build_model(cfg, obs_dim, action_dim, stats, device=device))
        opt = optimizer(model, cfg) if cfg.keep_optimizer else None
        histories = {"model": fit(model, segs, train_idx, val_idx, cfg, device, rng, "meta-train", writer,
                                  target_weight, opt)}
        curve, first_round = [], 0  # curve: the on-policy rounds' episode returns, the run's learning curve
    facts = {"family": family.name, "param_names": list(family.param_names), "action_low": low.tolist(),
             "action_high": high.tolist(), "config": dataclasses.asdict(cfg),
             "family_info": family_info(family, parse_planner(cfg.planner))}
    for k in range(first_round, cfg.mpc_rounds):
        # rank 0 flies and broadcasts; the shared rng advances the same way on every rank (one draw)
        explore_rng = np.random.default_rng(int(rng.integers(2**63)))
        flown = collect_mpc(model, facts, family, cfg.mpc_tasks, 1, cfg.seq_len, cfg.mpc_noise, explore_rng,
                          first_task_id=int(segs.task_ids.max()) + 1, progress=cfg.progress,
                          engine=cfg.mpc_engine, workdir=out / "explore", workers=cfg.collect_envs,
                          member=cfg.mpc_member if cfg.ensemble > 1 else -1, thompson=cfg.mpc_thompson,
                          noise_corr=cfg.mpc_noise_corr, mode=cfg.mpc_mode) \
            if dist.is_main() else None
        new, returns = dist.broadcast_from_main(flown)
        train_idx = np.concatenate([train_idx, len(segs) + np.arange(len(new))])
        segs = Segments.concat([segs, new.continuous(family.periodic_obs)])
        curve.append(round_returns(k + 1, returns, env_steps=int(segs.obs.shape[0] * segs.obs.shape[1])))
        if main:
            print(f"mbmrl train: MPC round {k + 1}: mean return {curve[-1]['mean']:.1f} "
                  f"(min {curve[-1]['min']:.1f}, max {curve[-1]['max']:.1f}) over {len(returns)} episodes",
                  file=sys.stderr, flush=True)
            if writer is not None:
                writer.add_scalar("explore/return_mean", curve[-1]["mean"], curve[-1]["env_steps"])
        if cfg.renormalize:  # CaDM recomputes its statistics from all data before every fit
            stats = normalization_stats(segs, low, high)
            model.set_normalization({name: v for name, v in stats.items() if not name.startswith("param_")})
        round_cfg = dataclasses.replace(cfg, iters=cfg.mpc_iters, lr=cfg.mpc_lr or cfg.lr)
        histories[f"mpc{k + 1}"] = fit(model, segs, train_idx, val_idx, round_cfg, device, rng,
                                       f"meta-train (MPC round {k + 1})", writer, target_weight, opt)
        if main and cfg.keep_rounds:
            (out / "rounds").mkdir(exist_ok=True)
            Checkpoint.of(model, **facts).save(out / "rounds" / f"round{k + 1:02d}.pt")
        if main:  # a killed run continues from here with --resume
            save_round(out, RoundState(k + 1, dataclasses.asdict(cfg), model.state_dict(), train_idx, val_idx, stats,
                                       curve, histories, rng.bit_generator.state, torch.get_rng_state(),
                                       None if opt is None else opt.state_dict()), segs)
    if main:
        if cfg.mpc_rounds == 0:  # with rounds, the last one's `save_round` already wrote these very data
            segs.save(out / "data.npz")  # random (+ on-policy) data: what the model and the oracle saw
        Checkpoint.of(model, **facts).save(out / "model.pt")
    if cfg.oracle:
        oracle = build_model(cfg, obs_dim, action_dim, stats, n_task_params=len(family.param_names), device=device)
        histories["oracle"] = fit(oracle, segs, train_idx, val_idx, cfg, device, rng, "oracle", writer,
                                  target_weight)
        if main:
            Checkpoint.of(oracle, **facts).save(out / "oracle.pt")
    if not main:
        return out
    if writer is not None:
        writer.close()
    metrics = {"final": {k: h[-1] for k, h in histories.items()}, "history": histories,
               "n_segments": len(segs), "device": str(device), "world_size": dist.world_size(),
               "wall_seconds": time.time() - t0}
    if curve:
        metrics["mpc_returns"] = curve
        plot_learning_curve(curve, out / "learning_curve.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_history(histories, out / "train_curve.png")
    return out

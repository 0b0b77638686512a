"""Model-based exploration rounds: the model being trained flies MPC on training tasks to collect
on-policy data, as CaDM and PETS do after their random first round.

Random actions rarely reach the states a controller visits (a balanced pole, a running cheetah, a
drone holding a hover in wind). The controller is the runtime's own `Session` (`recurrent` mode: the
belief folds each transition as on the device) over the torch engine.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from mbmrl.runtime.guard import GuardConfig
from mbmrl.runtime.loader import load
from mbmrl.runtime.model import Runtime
from mbmrl.runtime.session import Session
from tqdm.auto import tqdm

from .checkpoint import Checkpoint, manifest_for
from .data import Segments, to_segments
from .episode import Episode, run_episode
from .families import TaskFamily, sample_params
from .model import DynamicsModel
from .torch_dynamics import torch_runtime


def mpc_episode(session: Session, env, steps: int, noise: float, rng: np.random.Generator, seed: int,
                corr: float = 0.0) -> Episode:
    """One MPC episode with the adapting session; `noise` (fraction of the half-range) perturbs each action.

    `corr` in [0, 1) makes the perturbation an AR(1) process, e_t = corr e_{t-1} + sqrt(1 - corr^2) xi_t, with the
    same spread as white noise (corr 0, the same draws): a push held for about 1 / (1 - corr) steps moves the body
    where white noise averages out, so the data reach states the plans alone never visit."""
    low, high = session.rt.action_low, session.rt.action_high
    half = (high - low) / 2
    e: np.ndarray | None = None  # the perturbation's state; the first step draws it at its stationary spread
    innovation = np.sqrt(1.0 - corr * corr)  # keeps the AR(1) process at white noise's spread

    def act(obs: np.ndarray) -> np.ndarray:
        nonlocal e
        a = session.act(obs).action
        xi = rng.standard_normal(len(low))
        e = xi if corr == 0.0 or e is None else corr * e + innovation * xi
        return np.clip(a + noise * half * e, low, high).astype(np.float32)

    return run_episode(env, act, steps, seed=seed, observe=session.observe)


def exploration_runtime(model: DynamicsModel, facts: dict, engine: str, workdir: Path | None) -> Runtime:
    """A runtime over `model` as it is now: the torch engine, or (`engine` 'onnx') the model exported to
    `workdir`, its planning horizon only, verified against torch as `mbmrl export` does."""
    ckpt = Checkpoint.of(model, **facts)
    if engine == "torch":
        return torch_runtime(model, ckpt)
    if workdir is None:
        raise ValueError("the onnx exploration engine needs a workdir to export the model into")
    from mbmrl.export.config import ExportConfig  # export imports train: import it only when asked
    from mbmrl.export.onnx_export import export_checkpoint

    workdir.mkdir(parents=True, exist_ok=True)
    ckpt.save(workdir / "model.pt")
    horizon = int(manifest_for(model, ckpt).default_planner["horizon"])
    export_checkpoint(workdir / "model.pt", workdir / "artifact", ExportConfig(horizons=(horizon,)), gain_horizon=False)
    return load(workdir / "artifact")


def collect_mpc(model: DynamicsModel, facts: dict, family: TaskFamily, n_tasks: int, episodes_per_task: int,
                seg_len: int, noise: float, rng: np.random.Generator, first_task_id: int,
                progress: bool = True, engine: str = "torch", workdir: Path | None = None,
                workers: int = 1, member: int = -1, thompson: bool = False,
                noise_corr: float = 0.0, mode: str = "recurrent") -> tuple[Segments, np.ndarray]:
    """On-policy data from `n_tasks` new training tasks, flown by MPC with `model` (the family's default cost
    and the run's planner) on `engine` ('torch', or 'onnx': exported to `workdir` first), and each episode's
    return (n_tasks * episodes_per_task,), exploration noise included: the run's learning curve.

    `facts` are the run's checkpoint facts (`Checkpoint` fields besides the weights). With `workers` > 1 tasks
    fly at once on a thread pool (ONNX Runtime and MuJoCo release the GIL); each task draws from its own
    generator, seeded from `rng` up front, so the data do not depend on `workers`. An ensemble flies on all its
    members (`member` -1) or on member `member` alone; with `thompson` task i flies member i mod K alone.
    `noise_corr` correlates the exploration noise in time (`mpc_episode`); the sessions fly adaptation `mode`.
    """
    was_training = model.training
    model.eval()
    if thompson:
        K = model.args.ensemble
        rts = [exploration_runtime(model.member_model(k), facts, engine, None if workdir is None
                                   else workdir / f"member{k}") for k in range(min(K, n_tasks))]
    else:
        rts = [exploration_runtime(model if member < 0 else model.member_model(member), facts, engine, workdir)]
    task_rngs = [np.random.default_rng(int(rng.integers(2**63))) for _ in range(n_tasks)]

    def fly(i: int) -> list[tuple[dict, list[float]]]:
        task_rng, rt = task_rngs[i], rts[i % len(rts)]
        p = sample_params(family.train, task_rng)
        env = family.make_env(p, family.eval_start)
        out = []
        for _ in range(episodes_per_task):
            # the runtime's default guard, not the family's deployment margin (`default_guard`, chosen on test
            # physics), and no actuator-gain adaptation (a test-physics default too): the data a schedule collects
            # stay those of the runs docs/cadm.md reports
            session = Session(rt, mode, seed=int(task_rng.integers(2**31)), guard=GuardConfig(), gain=False)
            ep = mpc_episode(session, env, family.episode_steps, noise, task_rng, seed=int(task_rng.integers(2**31)),
                             corr=noise_corr)
            out.append((ep.arrays(), [p[k] for k in family.param_names]))
        env.close()
        return out

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        flown = list(tqdm(pool.map(fly, range(n_tasks)), total=n_tasks, desc="collect (MPC)",
                          disable=not progress, leave=False))
    episodes = [ep for task in flown for ep, _ in task]
    params = [pr for task in flown for _, pr in task]
    task_ids = [first_task_id + i for i, task in enumerate(flown) for _ in task]
    model.train(was_training)
    returns = np.array([float(np.sum(ep["rewards"])) for ep in episodes])
    return to_segments(episodes, params, task_ids, seg_len, family.param_names), returns

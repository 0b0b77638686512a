"""Model-based exploration rounds: the model being trained flies MPC on training tasks to collect
on-policy data, as CaDM and PETS do after their random first round.

Random actions rarely reach the states a controller visits (a balanced pole, a running cheetah, a
drone holding a hover in wind). The controller is the runtime's own `Session` (`recurrent` mode: the
belief folds each transition as on the device) over the torch engine.
"""

from __future__ import annotations

import numpy as np
from mbmrl.runtime.session import Session
from tqdm.auto import tqdm

from .checkpoint import Checkpoint
from .data import Segments, to_segments
from .episode import Episode, run_episode
from .families import TaskFamily, sample_params
from .model import DynamicsModel
from .torch_dynamics import torch_runtime


def mpc_episode(session: Session, env, steps: int, noise: float, rng: np.random.Generator, seed: int) -> Episode:
    """One MPC episode with the adapting session; `noise` (fraction of the half-range) perturbs each action."""
    low, high = session.rt.action_low, session.rt.action_high
    half = (high - low) / 2

    def act(obs: np.ndarray) -> np.ndarray:
        a = session.act(obs).action
        return np.clip(a + noise * half * rng.standard_normal(len(low)), low, high).astype(np.float32)

    return run_episode(env, act, steps, seed=seed, observe=session.observe)


def collect_mpc(model: DynamicsModel, facts: dict, family: TaskFamily, n_tasks: int, episodes_per_task: int,
                seg_len: int, noise: float, rng: np.random.Generator, first_task_id: int,
                progress: bool = True) -> Segments:
    """On-policy data from `n_tasks` new training tasks, flown by MPC with `model` (family default cost).

    `facts` are the run's checkpoint facts (`Checkpoint` fields besides the weights).
    """
    was_training = model.training
    model.eval()
    rt = torch_runtime(model, Checkpoint.of(model, **facts))
    episodes, params, task_ids = [], [], []
    for i in tqdm(range(n_tasks), desc="collect (MPC)", disable=not progress, leave=False):
        p = sample_params(family.train, rng)
        env = family.make_env(p, family.eval_start)
        for _ in range(episodes_per_task):
            session = Session(rt, "recurrent", seed=int(rng.integers(2**31)))
            ep = mpc_episode(session, env, family.episode_steps, noise, rng, seed=int(rng.integers(2**31)))
            episodes.append(ep.arrays())
            params.append([p[k] for k in family.param_names])
            task_ids.append(first_task_id + i)
        env.close()
    model.train(was_training)
    return to_segments(episodes, params, task_ids, seg_len, family.param_names)

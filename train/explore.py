"""Model-based exploration rounds: the model being trained flies MPC on training tasks to collect
on-policy data, as CaDM and PETS do after their random first round.

Random actions rarely reach the states a controller visits (a balanced pole, a running cheetah, a
drone holding a hover in wind); the planner here is the runtime's own (`mbmrl.runtime.planner`),
costing samples with the torch twin of the exported rollout graph, and the belief `h` folds each
transition as it would on the device (`recurrent` mode).
"""

from __future__ import annotations

import numpy as np
import torch
from mbmrl.runtime.cost import Cost
from mbmrl.runtime.planner import PlannerConfig, plan, shift_plan
from tqdm.auto import tqdm

from .data import Segments, to_segments
from .families import TaskFamily, sample_params
from .model import DynamicsModel


@torch.no_grad()
def mpc_episode(model: DynamicsModel, env, cost: Cost, planner: PlannerConfig, steps: int, noise: float,
                rng: np.random.Generator, seed: int) -> dict[str, np.ndarray]:
    """One MPC episode with the adapting model; `noise` (fraction of the half-range) perturbs each action."""
    dev = model.W0.device
    t = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32), device=dev)  # noqa: E731
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    half = (high - low) / 2
    terms = {"q": t(cost.q), "r": t(cost.r), "terminal_weight": t([cost.terminal_weight]),
             "reward_weight": t([cost.reward_weight]), "uncertainty_weight": t([0.0]),
             "w_cov": torch.zeros(model.args.feature_dim, model.args.feature_dim, device=dev)}
    h = model.h0[None]  # (1, hidden)
    mean = np.tile((low + high) / 2, (planner.horizon, 1)).astype(np.float32)  # (H, A)
    rec: dict[str, list] = {"obs": [], "actions": [], "next_obs": [], "rewards": []}
    obs, _ = env.reset(seed=seed)
    for step in range(steps):
        o = t(obs)[None]  # (1, O)
        target = t(cost.target_for(planner.horizon, step))  # (H, O)

        def objective(actions: np.ndarray, o=o, h=h, target=target) -> np.ndarray:  # (N, H, A) -> (N,)
            return model.rollout_costs(o, h, model.W0, t(actions), target, **terms)[0].cpu().numpy()

        p = plan(objective, mean, low, high, planner, rng)
        mean = shift_plan(p)
        a = np.clip(p[0] + noise * half * rng.standard_normal(len(low)), low, high).astype(np.float32)
        nxt, r, term, trunc, _ = env.step(a)
        h = model.gru_step(h, o, t(a)[None], t(nxt)[None], t([[r]]))  # the belief adapts as on the device
        for k, v in zip(rec, (obs, a, nxt, r), strict=True):
            rec[k].append(v)
        obs = nxt
        if term or trunc:
            break
    return {k: np.asarray(v, dtype=np.float32) for k, v in rec.items()}


def collect_mpc(model: DynamicsModel, family: TaskFamily, n_tasks: int, episodes_per_task: int, seg_len: int,
                noise: float, rng: np.random.Generator, first_task_id: int, progress: bool = True) -> Segments:
    """On-policy data from `n_tasks` new training tasks, flown by MPC with `model` (family default cost)."""
    was_training = model.training
    model.eval()
    cost = Cost.from_dict(family.default_cost.to_dict(), model.args.obs_dim, model.args.action_dim)
    planner = PlannerConfig().replace(**family.default_planner)
    episodes, params, task_ids = [], [], []
    for i in tqdm(range(n_tasks), desc="collect (MPC)", disable=not progress, leave=False):
        p = sample_params(family.train, rng)
        env = family.make_env(p, family.eval_start)
        for _ in range(episodes_per_task):
            episodes.append(mpc_episode(model, env, cost, planner, family.episode_steps, noise, rng,
                                        seed=int(rng.integers(2**31))))
            params.append([p[k] for k in family.param_names])
            task_ids.append(first_task_id + i)
        env.close()
    model.train(was_training)
    return to_segments(episodes, params, task_ids, seg_len, family.param_names)

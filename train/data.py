"""Data collection across many sampled tasks, stored with the task parameters.

Episodes are cut into fixed-length segments (S, L, ...) so meta-training can sample
a task's context and targets from one contiguous stretch of its dynamics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import TimeLimit
from mbmrl.runtime.validation import continuous
from tqdm.auto import tqdm

from .config import RANDOM_POLICIES
from .episode import replay, run_episode
from .families import TaskFamily, box_bounds, sample_params


@dataclass
class Segments:
    """Contiguous transition segments, each from one task."""

    obs: np.ndarray  # (S, L, obs_dim)
    actions: np.ndarray  # (S, L, act_dim)
    next_obs: np.ndarray  # (S, L, obs_dim)
    rewards: np.ndarray  # (S, L)
    params: np.ndarray  # (S, n_params) true task parameters (for the oracle only)
    task_ids: np.ndarray  # (S,) which sampled task each segment came from
    param_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.obs)

    def save(self, path: str | Path) -> None:
        """Write as a compressed npz."""
        np.savez_compressed(
            path, obs=self.obs, actions=self.actions, next_obs=self.next_obs, rewards=self.rewards,
            params=self.params, task_ids=self.task_ids, param_names=np.array(self.param_names),
        )

    @classmethod
    def load(cls, path: str | Path) -> Segments:
        """Read what `save` wrote."""
        with np.load(path) as z:
            return cls(z["obs"], z["actions"], z["next_obs"], z["rewards"], z["params"], z["task_ids"],
                       tuple(str(n) for n in z["param_names"]))

    def continuous(self, periodic: Mapping[int, float]) -> Segments:
        """These segments with next_obs on the `periodic` dims (dim -> period) within half a period of obs
        (`mbmrl.runtime.validation.continuous`, as sessions do): a wrapped angle's transition keeps its true delta."""
        if not periodic:
            return self
        return dataclasses.replace(self, next_obs=continuous(self.next_obs, self.obs, periodic))

    @staticmethod
    def concat(parts: list[Segments]) -> Segments:
        """All segments of `parts`, in order."""
        cat = lambda k: np.concatenate([getattr(p, k) for p in parts])  # noqa: E731
        return Segments(cat("obs"), cat("actions"), cat("next_obs"), cat("rewards"), cat("params"),
                        cat("task_ids"), parts[0].param_names)


def random_actions(rng: np.random.Generator, low: np.ndarray, high: np.ndarray, steps: int,
                   policy: str = "mixed") -> np.ndarray:
    """Exploration actions (steps, act_dim): i.i.d. uniform or a smooth random walk, chosen per episode
    ('mixed'), or always i.i.d. uniform ('uniform': CaDM's and PETS's random round, `action_space.sample()`).

    Smooth actions reach states (fast spins, large swings) that white noise never does; on the half-cheetah
    they also flip it onto its back in most episodes.
    """
    if policy not in RANDOM_POLICIES:
        raise ValueError(f"random action policy must be one of {RANDOM_POLICIES}, got {policy!r}")
    if policy == "uniform" or rng.random() < 0.5:
        return rng.uniform(low, high, size=(steps, len(low))).astype(np.float32)
    mid, half = (low + high) / 2, (high - low) / 2
    a, out = rng.uniform(-1, 1, len(low)), []
    for _ in range(steps):
        a = np.clip(0.9 * a + 0.45 * rng.standard_normal(len(low)), -1, 1)
        out.append(mid + half * a)
    return np.asarray(out, dtype=np.float32)


def to_segments(episodes: list[dict], params: list[list[float]], task_ids: list[int], seg_len: int,
                param_names: tuple[str, ...]) -> Segments:
    """Cut episodes into non-overlapping segments of `seg_len`.

    Whole segments come from inside one episode. What is left of a task's episodes (tails shorter
    than `seg_len`, e.g. every episode of a cart-pole that falls after 20 steps) is joined, in order,
    into one stream of that task and cut again: a segment may then span a reset. That is harmless
    for the one-step losses (each transition is a valid sample of the task's dynamics and the belief
    only needs same-task transitions); the open-loop multi-step loss sees such a jump as an error.
    """
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "actions", "next_obs", "rewards")}
    seg_params, seg_tasks = [], []
    tails: dict[int, list[dict]] = {}

    def cut(ep: dict, p, tid) -> None:
        n = len(ep["obs"]) // seg_len
        for i in range(n):
            sl = slice(i * seg_len, (i + 1) * seg_len)
            for k in parts:
                parts[k].append(ep[k][sl])
            seg_params.append(p)
            seg_tasks.append(tid)
        if len(ep["obs"]) > n * seg_len:
            tails.setdefault(tid, []).append({k: ep[k][n * seg_len:] for k in parts})

    task_params = {}
    for ep, p, tid in zip(episodes, params, task_ids, strict=True):
        cut(ep, p, tid)
        task_params[tid] = p
    for tid, rest in list(tails.items()):
        if len(rest) > 1:
            cut({k: np.concatenate([r[k] for r in rest]) for k in parts}, task_params[tid], tid)
    if not seg_params:
        raise ValueError(f"no task collected seg_len={seg_len} transitions; lower --seq-len or collect "
                         f"more episodes per task (--episodes-per-task)")
    return Segments(
        np.stack(parts["obs"]), np.stack(parts["actions"]), np.stack(parts["next_obs"]), np.stack(parts["rewards"]),
        np.asarray(seg_params, dtype=np.float32), np.asarray(seg_tasks), param_names,
    )


def collect_random(family: TaskFamily, n_tasks: int, episodes_per_task: int, seg_len: int,
                   rng: np.random.Generator, start: str = "default", progress: bool = True,
                   policy: str = "mixed") -> Segments:
    """Random-action data from `n_tasks` tasks sampled from the family's train space (`policy`: see
    `random_actions`)."""
    episodes, params, task_ids = [], [], []
    for task in tqdm(range(n_tasks), desc="collect (random)", disable=not progress, leave=False):
        p = sample_params(family.train, rng)
        env = family.make_env(p, start)
        low, high = box_bounds(env.action_space)
        for _ in range(episodes_per_task):
            acts = random_actions(rng, low, high, family.episode_steps, policy)
            ep = run_episode(env, replay(acts), family.episode_steps, seed=int(rng.integers(2**31)))
            episodes.append(ep.arrays())
            params.append([p[k] for k in family.param_names])
            task_ids.append(task)
        env.close()
    return to_segments(episodes, params, task_ids, seg_len, family.param_names)


def _time_limited_env(make_env, params, start: str, steps: int) -> gym.Env:
    """The task's env, truncated after `steps` (where the sequential rollout stops)."""
    return TimeLimit(make_env(params, start), max_episode_steps=steps)


def rollout_vector(envs: gym.vector.VectorEnv, rng: np.random.Generator, episodes: int, steps: int,
                   policy: str = "mixed") -> list[list[dict[str, np.ndarray]]]:
    """Run `episodes` random-action episodes in every sub-env of a SAME_STEP-autoreset vector env.

    Returns, per sub-env, its episodes as `Episode.arrays()` records. A sub-env that ends an episode is
    reset inside that same `step`: the returned observation already starts its next episode and the
    episode's true last next-observation is `info["final_obs"]`, so no transition crosses a reset.
    """
    if envs.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
        raise ValueError(f"rollout_vector needs autoreset_mode=SAME_STEP, got {envs.metadata.get('autoreset_mode')}")
    n, space = envs.num_envs, envs.single_action_space
    low, high = box_bounds(space)
    plans = [[random_actions(rng, low, high, steps, policy) for _ in range(episodes)] for _ in range(n)]
    done: list[list[dict]] = [[] for _ in range(n)]
    rec: list[dict[str, list]] = [{k: [] for k in ("obs", "actions", "next_obs", "rewards")} for _ in range(n)]
    obs, _ = envs.reset(seed=[int(rng.integers(2**31)) for _ in range(n)])  # type: ignore[arg-type]
    while any(len(d) < episodes for d in done):
        # finished sub-envs keep stepping (their results are ignored) until every one is done
        acts = np.stack([plans[i][min(len(done[i]), episodes - 1)][len(rec[i]["obs"])] for i in range(n)])
        nxt, rew, term, trunc, info = envs.step(acts)
        for i in range(n):
            if len(done[i]) == episodes:
                continue
            ended = term[i] or trunc[i]
            last = info["final_obs"][i] if ended else nxt[i]  # nxt[i] already starts the next episode
            for k, v in zip(("obs", "actions", "next_obs", "rewards"), (obs[i], acts[i], last, rew[i]), strict=True):
                rec[i][k].append(v)
            if ended:
                done[i].append({k: np.asarray(v, dtype=np.float32) for k, v in rec[i].items()})
                rec[i] = {k: [] for k in rec[i]}
        obs = nxt
    return done


def collect_random_vector(family: TaskFamily, n_tasks: int, episodes_per_task: int, seg_len: int,
                          rng: np.random.Generator, num_envs: int, start: str = "default", progress: bool = True,
                          asynchronous: bool = True, policy: str = "mixed") -> Segments:
    """Random-action data like `collect_random`, stepping `num_envs` tasks at once in a Gymnasium vector env.

    Each sub-env is one task with its own parameters; episodes stop at `family.episode_steps` as in the
    sequential path. The samples come from the same distribution but not in the same rng order, so the
    data differ from `collect_random`'s for the same seed. `asynchronous` runs sub-envs in subprocesses.
    """
    episodes, params, task_ids = [], [], []
    vector_env = AsyncVectorEnv if asynchronous else SyncVectorEnv
    with tqdm(total=n_tasks, desc=f"collect (random, {num_envs} envs)", disable=not progress, leave=False) as bar:
        for first in range(0, n_tasks, num_envs):
            tasks = range(first, min(first + num_envs, n_tasks))
            task_params = [sample_params(family.train, rng) for _ in tasks]
            envs = vector_env([partial(_time_limited_env, family.make_env, p, start, family.episode_steps)
                               for p in task_params], autoreset_mode=AutoresetMode.SAME_STEP)
            try:
                per_env = rollout_vector(envs, rng, episodes_per_task, family.episode_steps, policy)
            finally:
                envs.close()
            for task, p, eps in zip(tasks, task_params, per_env, strict=True):
                episodes += eps
                params += [[p[k] for k in family.param_names]] * len(eps)
                task_ids += [task] * len(eps)
            bar.update(len(tasks))
    return to_segments(episodes, params, task_ids, seg_len, family.param_names)

"""`evaluate(protocol, family, tasks, backends) -> EvalResult`: adaptation curves and MPC returns (DESIGN §7).

Everything runs through sessions of the deployed model: in-process `Session`s or HTTP `RemoteSession`s
(a backend is any `new_session(mode=, seed=, task_params=)` callable), so we measure what we deploy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from mbmrl.runtime.validation import wrapped
from tqdm.auto import tqdm

from ..data import random_actions
from ..episode import Observer, Policy, replay, run_episode
from ..families import Params, TaskFamily, box_bounds
from .protocol import EvalProtocol
from .result import ERROR_KEYS, EvalResult, TaskResult, mean_or_none

NewSession = Callable[..., Any]  # (mode=, seed=, task_params=) -> Session | RemoteSession



def close(session: Any) -> None:
    """End a session: an HTTP `RemoteSession` is deleted on the server; an in-process one needs nothing."""
    if hasattr(session, "close"):
        session.close()


def session_policy(session: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The session's MPC action for an observation."""
    return lambda obs: session.act(obs).action


def stepping(session: Any) -> tuple[Policy, Observer]:
    """A policy and an observer that drive `session` with one `step` per control step (one round trip
    over HTTP): the observer keeps the transition, the policy sends it with the next observation."""
    pending: list[dict] = []

    def act(obs: np.ndarray) -> np.ndarray:
        _, result = session.step(obs, transition=pending.pop() if pending else None)
        return result.action

    def observe(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, reward: float) -> None:
        pending.append({"obs": obs, "action": action, "next_obs": next_obs, "reward": reward})

    return act, observe


# ---------------------------------------------------------------------------- data
def eval_episodes(family: TaskFamily, params: Params, n: int, steps: int, seed: int,
                  controller: NewSession | None = None) -> list[dict]:
    """`n` streams of at least `steps` transitions on one task: the ground truth for prediction.

    Random actions by default; with `controller` (a `new_session` of a planner, e.g. the `none` mode),
    the transitions it flies from the family's evaluation start, the same for every evaluated mode.
    A stream is one episode, or (when episodes end early, e.g. a falling cart-pole) several episodes of
    the task joined in order; `ends[i]` marks a transition after which the env was reset.
    """
    rng = np.random.default_rng(seed)
    env = family.make_env(params, "default" if controller is None else family.eval_start)
    low, high = box_bounds(env.action_space)
    streams = []
    for i in range(n):
        parts: list[dict] = []
        total = 0
        while total < steps:
            ep_seed = seed * 1000 + i + 100_000 * len(parts)
            sess = None if controller is None else controller(mode="none", seed=ep_seed)
            act = replay(random_actions(rng, low, high, steps)) if sess is None else session_policy(sess)
            ep = run_episode(env, act, steps, seed=ep_seed).arrays()
            close(sess)
            ep["ends"] = np.zeros(len(ep["obs"]), dtype=bool)
            ep["ends"][-1] = True
            parts.append(ep)
            total += len(ep["obs"])
        streams.append({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    env.close()
    return streams


def target_starts(ends: np.ndarray, m_max: int, horizon: int, n: int) -> list[int]:
    """Up to `n` evenly spaced target steps t with m_max transitions before them and `horizon` steps after
    inside one episode (the context before t may span resets: it only needs transitions of the task)."""
    ok = [t for t in range(m_max, len(ends) - horizon + 1) if not ends[t : t + horizon - 1].any()]
    if not ok:
        return []
    return sorted({ok[int(i)] for i in np.linspace(0, len(ok) - 1, n)})


# ---------------------------------------------------------------------------- prediction
def prediction_errors(new_session: NewSession, mode: str, episodes: list[dict], delta_std: np.ndarray,
                      protocol: EvalProtocol, task_params: Params | None, periodic: Mapping[int, float] | None = None,
                      ) -> dict[int, dict[str, float | None]]:
    """Normalized one-step and H-step errors after m context transitions, for each m in the protocol.

    On `periodic` obs dims (the family's wrapped angles) an error counts modulo the period.
    `one_step`/`h_step`: mean over obs dims of ((predicted - true) / delta_std)^2, the surprise's
    units (delta_std from training). `*_nmse`: the same squared errors divided by the variance of
    this task's own true deltas (per dim), so tasks far outside training do not swamp a mean.
    Each window has fixed targets (after the longest context); for every m a fresh session
    observes the m transitions just before them, then predicts one step and H steps open-loop,
    so the curve over m changes only the amount of context.
    """
    contexts, horizon = protocol.contexts, protocol.horizon
    errs: dict[str, dict[int, list[float]]] = {k: {m: [] for m in contexts} for k in (*ERROR_KEYS, "coverage95")}
    # per-task normalization: the spread of this task's own true deltas, in model units, so that
    # every test task weighs the same in a mean over tasks (NMSE = 1 is "as bad as predicting the mean")
    deltas = np.concatenate([wrapped(ep["next_obs"] - ep["obs"], periodic) / delta_std for ep in episodes])
    task_var = np.maximum(deltas.var(axis=0), 1e-8)  # (obs_dim,)
    per_ep = max(1, protocol.windows // max(len(episodes), 1))
    for ep in episodes:
        for t in target_starts(ep["ends"], max(contexts), horizon, per_ep):
            # the same target transitions for every m: only the context before them varies
            for m in contexts:
                sess = new_session(mode=mode, seed=0, task_params=task_params)
                for c in range(t - m, t):
                    sess.observe(ep["obs"][c], ep["actions"][c], ep["next_obs"][c], float(ep["rewards"][c]))
                # a one-step prediction, then an H-step one (a guarded session may pick its model by the length)
                one, var = sess.predict(ep["obs"][t], ep["actions"][t : t + 1])
                pred, _ = sess.predict(ep["obs"][t], ep["actions"][t : t + horizon])
                if var is not None:  # is each true one-step delta inside the 95% interval?
                    inside = np.abs(one[0] - ep["next_obs"][t]) <= 1.959964 * np.sqrt(var[0])
                    errs["coverage95"][m].append(float(inside.mean()))
                err = wrapped(pred - ep["next_obs"][t : t + horizon], periodic) / delta_std  # (H, obs_dim)
                err1 = wrapped(one[0] - ep["next_obs"][t], periodic) / delta_std  # (obs_dim,)
                errs["one_step"][m].append(float(np.mean(err1**2)))
                errs["h_step"][m].append(float(np.mean(err**2)))
                errs["one_step_nmse"][m].append(float(np.mean(err1**2 / task_var)))
                errs["h_step_nmse"][m].append(float(np.mean(err**2 / task_var)))
                close(sess)
    return {m: {k: mean_or_none(errs[k][m]) for k in errs if k in ERROR_KEYS or errs[k][m]} for m in contexts}


# ---------------------------------------------------------------------------- control
def control_episode(new_session: NewSession, mode: str, family: TaskFamily, params: Params, seed: int,
                    steps: int, task_params: Params | None = None) -> dict:
    """One MPC episode from the family's evaluation start; the session adapts online as it goes."""
    env = family.make_env(params, family.eval_start)
    sess = new_session(mode=mode, seed=seed, task_params=task_params)
    act, observe = stepping(sess)
    ep = run_episode(env, act, steps, seed=seed, observe=observe)
    env.close()
    close(sess)
    out = {"return": ep.total_reward, "steps": len(ep.rewards)}
    if ep.infos and "position_error" in ep.infos[0]:
        out["position_rmse"] = float(np.sqrt(np.mean([i["position_error"] ** 2 for i in ep.infos])))
    return out


# ---------------------------------------------------------------------------- whole evaluation
def evaluate(protocol: EvalProtocol, family: TaskFamily, tasks: list[tuple[str, Params]], modes: list[str],
             backends: Callable[[], Mapping[str, NewSession]], delta_std: np.ndarray,
             prediction_controller: NewSession | None = None, workers: int = 1, progress: bool = True,
             ) -> EvalResult:
    """Prediction errors and MPC episodes for every (task, mode): the one evaluation loop.

    `backends()` gives, per mode, a `new_session` callable (in-process `Session`, or an HTTP
    `Client.new_session`); it is called once per task so a worker thread can hold its own connections.
    Every session gets the task's true parameters (only an oracle reads them). With `workers` > 1
    tasks run on a thread pool (ONNX Runtime and HTTP release the GIL).
    """
    steps = protocol.episode_steps or family.episode_steps

    def run_task(ti: int) -> TaskResult:
        split, params = tasks[ti]
        new_session = backends()
        eps = eval_episodes(family, params, protocol.streams, family.episode_steps, seed=protocol.data_seed + ti,
                            controller=prediction_controller)
        result = TaskResult(split, params)
        for mode in modes:
            result.prediction[mode] = prediction_errors(new_session[mode], mode, eps, delta_std, protocol, params,
                                                        family.periodic_obs)
            result.control[mode] = [control_episode(new_session[mode], mode, family, params, protocol.seed + s,
                                                    steps, params) for s in range(protocol.seeds)]
        return result

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(tqdm(pool.map(run_task, range(len(tasks))), total=len(tasks), desc="eval",
                            disable=not progress))
    return EvalResult(family.name, protocol, modes, results)

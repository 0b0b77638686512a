"""`mbmrl eval`: adaptation curves and MPC returns on a family's test tasks (DESIGN §7).

Everything runs through the deployed artifact: either in-process with `mbmrl.runtime`
or over HTTP with `mbmrl.runtime.client` (both expose `new_session(...)`), so we
measure what we deploy. No torch is imported here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from mbmrl.runtime import Runtime
from mbmrl.train.data import random_actions, rollout_episode
from mbmrl.train.families import Params, TaskFamily, get_family

CONTEXTS = "0,1,2,4,8,16,32,50"


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation of an artifact on held-out (test-range) tasks."""

    artifact: str = field(default="artifact", metadata={"help": "artifact directory from `mbmrl export`"})
    family: str = field(default="", metadata={"help": "task family (default: the artifact's own)"})
    split: str = field(default="test", metadata={"help": "'test' (all test splits) or one split name"})
    out: str = field(default="eval", metadata={"help": "output directory for eval.json and plots"})
    modes: str = field(default="none,recurrent,gradient,bayes,oracle", metadata={"help": "modes to evaluate"})
    contexts: str = field(default=CONTEXTS, metadata={"help": "context sizes m for the adaptation curve"})
    prediction_data: str = field(default="random", metadata={
        "help": "transitions for the prediction errors: 'random' actions, or 'mpc' = flown by the non-adaptive "
                "(none-mode) MPC controller from the evaluation start, the same transitions for every mode"})
    horizon: int = field(default=15, metadata={"help": "H for the open-loop H-step prediction error"})
    windows: int = field(default=8, metadata={"help": "context windows per task for the prediction error"})
    seeds: int = field(default=2, metadata={"help": "MPC episodes per task (different start states)"})
    episode_steps: int = field(default=0, metadata={"help": "MPC episode length (0 = the family's)"})
    control: bool = field(default=True, metadata={"help": "run MPC episodes"})
    max_tasks: int = field(default=0, metadata={"help": "evaluate only the first N tasks of each split (0 = all)"})
    threads: int = field(default=1, metadata={"help": "ONNX Runtime intra-op threads"})
    workers: int = field(default=1, metadata={"help": "tasks evaluated in parallel (threads; e.g. 2 on 2 cores)"})
    seed: int = field(default=0, metadata={"help": "seed for evaluation data and planners"})
    markdown: bool = field(default=False, metadata={"help": "also write results.md (README-ready tables)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


# ---------------------------------------------------------------------------- data
def eval_episodes(family: TaskFamily, params: Params, n: int, steps: int, seed: int,
                  controller: Callable | None = None) -> list[dict]:
    """`n` streams of at least `steps` transitions on one task: the ground truth for prediction.

    Random actions by default; with `controller` (a `new_session` of a planner, e.g. the `none` mode),
    the transitions it flies from the family's evaluation start, the same for every evaluated mode.
    A stream is one episode, or (when episodes end early, e.g. a falling cart-pole) several episodes of
    the task joined in order; `ends[i]` marks a transition after which the env was reset.
    """
    rng = np.random.default_rng(seed)
    env = family.make_env(params, "default" if controller is None else family.eval_start)
    low, high = env.action_space.low, env.action_space.high
    streams = []
    for i in range(n):
        parts, total = [], 0
        while total < steps:
            ep_seed = seed * 1000 + i + 100_000 * len(parts)
            if controller is None:
                acts = random_actions(rng, low, high, steps)
                policy = lambda o, t, acts=acts: acts[t]  # noqa: E731
            else:
                sess = controller(mode="none", seed=ep_seed)
                policy = lambda o, t, sess=sess: sess.act(o).action  # noqa: E731
            ep = rollout_episode(env, policy, steps, seed=ep_seed)
            if controller is not None:
                _close(sess)
            ep["ends"] = np.zeros(len(ep["obs"]), dtype=bool)
            ep["ends"][-1] = True
            parts.append(ep)
            total += len(ep["obs"])
        streams.append({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    env.close()
    return streams


def parse_contexts(text: str) -> tuple[int, ...]:
    """'0,1,2,4' -> (0, 1, 2, 4), sorted and unique; a clear error for anything else."""
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise ValueError(f"--contexts must be comma-separated integers like {CONTEXTS!r}, got {text!r}") from None
    if not values or values[0] < 0:
        raise ValueError(f"--contexts must be non-negative integers, got {text!r}")
    return tuple(values)


def _close(session) -> None:
    """End a session: an HTTP `RemoteSession` is deleted on the server; an in-process one needs nothing."""
    close = getattr(session, "close", None)
    if close:
        close()


def target_starts(ends: np.ndarray, m_max: int, horizon: int, n: int) -> list[int]:
    """Up to `n` evenly spaced target steps t with m_max transitions before them and `horizon` steps after
    inside one episode (the context before t may span resets: it only needs transitions of the task)."""
    ok = [t for t in range(m_max, len(ends) - horizon + 1) if not ends[t : t + horizon - 1].any()]
    if not ok:
        return []
    return sorted({ok[int(i)] for i in np.linspace(0, len(ok) - 1, n)})


# ---------------------------------------------------------------------------- prediction
def prediction_errors(new_session: Callable, mode: str, episodes: list[dict], delta_std: np.ndarray,
                      contexts: tuple[int, ...], horizon: int, windows: int, task_params: Params | None,
                      ) -> dict[int, dict[str, float]]:
    """Normalized one-step and H-step errors after m context transitions, for each m in `contexts`.

    `one_step`/`h_step`: mean over obs dims of ((predicted - true) / delta_std)^2, the surprise's
    units (delta_std from training). `*_nmse`: the same squared errors divided by the variance of
    this task's own true deltas (per dim), so tasks far outside training do not swamp a mean.
    Each window has fixed targets (after the longest context); for every m a fresh session
    observes the m transitions just before them, then predicts one step and `horizon` steps
    open-loop, so the curve over m changes only the amount of context.
    """
    m_max = max(contexts)
    one = {m: [] for m in contexts}
    multi = {m: [] for m in contexts}
    # per-task normalization: the spread of this task's own true deltas, in model units, so that
    # every test task weighs the same in a mean over tasks (NMSE = 1 is "as bad as predicting the mean")
    deltas = np.concatenate([(ep["next_obs"] - ep["obs"]) / delta_std for ep in episodes])
    task_var = np.maximum(deltas.var(axis=0), 1e-8)  # (obs_dim,)
    nmse_one = {m: [] for m in contexts}
    nmse_multi = {m: [] for m in contexts}
    covered = {m: [] for m in contexts}  # bayes: is each true one-step delta inside the 95% interval?
    per_ep = max(1, windows // max(len(episodes), 1))
    for ep in episodes:
        for t in target_starts(ep["ends"], m_max, horizon, per_ep):
            # the same target transitions for every m: only the context before them varies
            for m in contexts:
                sess = new_session(mode=mode, seed=0, task_params=task_params)
                for c in range(t - m, t):
                    sess.observe(ep["obs"][c], ep["actions"][c], ep["next_obs"][c], float(ep["rewards"][c]))
                pred, var = sess.predict(ep["obs"][t], ep["actions"][t : t + horizon])
                if var is not None:
                    inside = np.abs(pred[0] - ep["next_obs"][t]) <= 1.959964 * np.sqrt(var[0])
                    covered[m].append(float(inside.mean()))
                err = (pred - ep["next_obs"][t : t + horizon]) / delta_std  # (H, obs_dim)
                one[m].append(float(np.mean(err[0] ** 2)))
                multi[m].append(float(np.mean(err**2)))
                nmse_one[m].append(float(np.mean(err[0] ** 2 / task_var)))
                nmse_multi[m].append(float(np.mean(err**2 / task_var)))
                _close(sess)
    return {m: {"one_step": _mean(one[m]), "h_step": _mean(multi[m]), "one_step_nmse": _mean(nmse_one[m]),
                "h_step_nmse": _mean(nmse_multi[m]), **({"coverage95": _mean(covered[m])} if covered[m] else {})}
            for m in contexts}


def _mean(values: list) -> float | None:
    """Mean of the values that exist; None when there are none (e.g. episodes too short for a window)."""
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


# ---------------------------------------------------------------------------- control
def control_episode(new_session: Callable, mode: str, family: TaskFamily, params: Params, seed: int,
                    steps: int, task_params: Params | None = None) -> dict:
    """One MPC episode from the family's evaluation start; the session adapts online as it goes."""
    env = family.make_env(params, family.eval_start)
    sess = new_session(mode=mode, seed=seed, task_params=task_params)
    obs, _ = env.reset(seed=seed)
    total, infos = 0.0, []
    for _ in range(steps):
        a = sess.act(obs).action
        nxt, r, term, trunc, info = env.step(a)
        if mode != "none":
            sess.observe(obs, a, nxt, float(r))
        total += float(r)
        infos.append(info)
        obs = nxt
        if term or trunc:
            break
    env.close()
    _close(sess)
    out = {"return": total, "steps": len(infos)}
    if infos and "position_error" in infos[0]:
        out["position_rmse"] = float(np.sqrt(np.mean([i["position_error"] ** 2 for i in infos])))
    return out


def summarize(values: list[float]) -> dict[str, float]:
    """Mean, std and count of a list of numbers."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "n": int(a.size)}


# ---------------------------------------------------------------------------- whole evaluation
def available_modes(requested: str, rt: Runtime, oracle_rt: Runtime | None) -> list[str]:
    """Requested modes this artifact offers (oracle only when ARTIFACT/oracle exists)."""
    modes = []
    for m in [x.strip() for x in requested.split(",") if x.strip()]:
        if m == "oracle" and oracle_rt is not None or m in rt.modes and m != "oracle":
            modes.append(m)
    return modes


def evaluate_tasks(family: TaskFamily, tasks: list[tuple[str, Params]], modes: list[str],
                   backends: Callable[[], dict[str, Callable]], delta_std: np.ndarray, contexts: tuple[int, ...],
                   horizon: int, windows: int, seeds: int, steps: int, seed: int, data_seed: Callable[[int], int],
                   prediction_controller: Callable | None = None, workers: int = 1, progress: bool = True,
                   ) -> list[tuple[int, str, dict, list[dict]]]:
    """Prediction errors and `seeds` MPC episodes for every (task, mode): the one evaluation loop.

    `backends()` gives, per mode, a `new_session` callable (in-process `Runtime.new_session`, or an HTTP
    `Client.new_session`); it is called once per task so a worker thread can hold its own connections.
    With `workers` > 1 tasks run on a thread pool (ONNX Runtime and HTTP release the GIL).
    Returns (task index, mode, {m: errors}, [episode results]) in task order.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    def run_task(ti: int) -> list[tuple[int, str, dict, list[dict]]]:
        _, params = tasks[ti]
        new_session = backends()
        eps = eval_episodes(family, params, 2, family.episode_steps, seed=data_seed(ti),
                            controller=prediction_controller)
        out = []
        for mode in modes:
            tp = params if mode == "oracle" else None
            errs = prediction_errors(new_session[mode], mode, eps, delta_std, contexts, horizon, windows, tp)
            episodes = [control_episode(new_session[mode], mode, family, params, seed + s, steps, tp)
                        for s in range(seeds)]
            out.append((ti, mode, errs, episodes))
        return out

    results = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for r in tqdm(pool.map(run_task, range(len(tasks))), total=len(tasks), desc="eval", disable=not progress):
            results += r
    return results


def evaluate(cfg: EvalConfig) -> dict:
    """Prediction curves and MPC returns for every mode on every test task; returns the eval dict."""
    if cfg.prediction_data not in ("random", "mpc"):
        raise ValueError(f"--prediction-data must be 'random' or 'mpc', got {cfg.prediction_data!r}")
    t0 = time.time()
    rt = Runtime(cfg.artifact, threads=cfg.threads)
    oracle_dir = Path(cfg.artifact) / "oracle"
    oracle_rt = Runtime(oracle_dir, threads=cfg.threads) if (oracle_dir / "manifest.json").is_file() else None
    family = get_family(cfg.family or rt.manifest["family"])
    modes = available_modes(cfg.modes, rt, oracle_rt)
    splits_run = list(family.test_splits) if cfg.split == "test" else [cfg.split]
    tasks = [t for sp in splits_run for t in family.test_tasks(sp)[: cfg.max_tasks or None]]
    steps = cfg.episode_steps or family.episode_steps
    contexts = tuple(m for m in parse_contexts(cfg.contexts) if m + cfg.horizon < family.episode_steps)
    pred: dict = {m: {c: [] for c in contexts} for m in modes}
    splits = [s for s, _ in tasks]
    returns: dict = {m: {} for m in modes}
    extra: dict = {m: {} for m in modes}
    per_task: list[dict] = [{"split": sp, "params": p, "control": {}} for sp, p in tasks]
    backends = {m: (oracle_rt if m == "oracle" else rt).new_session for m in modes}
    jobs = evaluate_tasks(family, tasks, modes, lambda: backends, rt.norm.delta_std, contexts, cfg.horizon,
                          cfg.windows, cfg.seeds if cfg.control else 0, steps, cfg.seed,
                          data_seed=lambda ti: cfg.seed * 7919 + ti,
                          prediction_controller=rt.new_session if cfg.prediction_data == "mpc" else None,
                          workers=cfg.workers, progress=cfg.progress)
    for ti, mode, errs, episodes in jobs:
        split = tasks[ti][0]
        for c in contexts:
            pred[mode][c].append(errs[c])
        for ep in episodes:
            per_task[ti]["control"].setdefault(mode, []).append(ep)
            returns[mode].setdefault(split, []).append(ep["return"])
            if "position_rmse" in ep:
                extra[mode].setdefault(split, []).append(ep["position_rmse"])
    result = {
        "family": family.name, "split": cfg.split, "artifact": str(cfg.artifact), "modes": modes,
        "contexts": list(contexts), "horizon": cfg.horizon, "prediction_data": cfg.prediction_data,
        "tasks": [{"split": s, **p} for s, p in tasks],
        "prediction": {m: {str(c): {k: _mean([e[k] for e in pred[m][c]])
                                    for k in ("one_step", "h_step", "one_step_nmse", "h_step_nmse")}
                           for c in contexts} for m in modes},
        "bayes_coverage95": ({str(c): _mean([e.get("coverage95") for e in pred["bayes"][c]]) for c in contexts}
                             if "bayes" in modes else None),
        "prediction_by_split": {
            m: {sp: {str(c): {k: _mean([e[k] for e, s in zip(pred[m][c], splits, strict=True) if s == sp])
                              for k in ("one_step", "one_step_nmse")} for c in contexts}
                for sp in dict.fromkeys(splits)}
            for m in modes},
        "config": asdict(cfg),
    }
    if cfg.control:
        result["per_task"] = per_task
        result["control"] = {m: {"all": summarize(sum(returns[m].values(), [])),
                                 **{s: summarize(v) for s, v in returns[m].items()}} for m in modes}
        if any(extra[m] for m in modes):
            result["position_rmse"] = {m: {"all": summarize(sum(extra[m].values(), [])),
                                           **{s: summarize(v) for s, v in extra[m].items()}} for m in modes}
    result["wall_seconds"] = time.time() - t0
    return result


def plot_curves(result: dict, out: Path) -> None:
    """adaptation_curve.png (error vs m, log-x, oracle dashed) and returns.png (mean ± std per mode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ctx = result["contexts"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "one_step_nmse", "one-step"),
                           (axes[1], "h_step_nmse", f"{result['horizon']}-step open-loop")):
        for m in result["modes"]:
            y = [result["prediction"][m][str(c)][key] or np.nan for c in ctx]
            ax.plot([max(c, 0.5) for c in ctx], y, marker="o", label=m, linestyle="--" if m == "oracle" else "-")
        ax.set(xscale="log", yscale="log", xlabel="context transitions m (0 plotted at 0.5)",
               ylabel="NMSE of delta (per-task normalized)",
               title=f"{result['family']} {result['split']}: {title} error")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "adaptation_curve.png", dpi=120)
    plt.close(fig)
    if "control" in result:
        fig, ax = plt.subplots(figsize=(6, 4))
        modes = result["modes"]
        splits = [s for s in result["control"][modes[0]] if s != "all"]
        width = 0.8 / max(len(splits), 1)
        for i, s in enumerate(splits):
            mean = [result["control"][m][s]["mean"] for m in modes]
            std = [result["control"][m][s]["std"] for m in modes]
            ax.bar(np.arange(len(modes)) + i * width, mean, width, yerr=std, label=s, capsize=3)
        ax.set_xticks(np.arange(len(modes)) + width * (len(splits) - 1) / 2, modes)
        ax.set(ylabel="MPC episode return (mean ± std)", title=f"{result['family']}: control on test tasks")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "returns.png", dpi=120)
        plt.close(fig)


def markdown_tables(result: dict) -> str:
    """README-ready tables generated from eval.json."""
    modes, ctx = result["modes"], result["contexts"]
    lines = []
    for key, what in (("one_step_nmse", "NMSE: squared error / variance of the task's own deltas"),
                      ("one_step", "MSE in model units: squared error / training delta variance")):
        lines += [f"One-step prediction error after m transitions ({what}) — {result['family']}, "
                  f"split `{result['split']}`:", "", "| mode | " + " | ".join(f"m={c}" for c in ctx) + " |",
                  "|---|" + "---|" * len(ctx)]
        for m in modes:
            vals = [result["prediction"][m][str(c)][key] for c in ctx]
            lines.append(f"| {m} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in vals) + " |")
        lines.append("")
    if result.get("bayes_coverage95"):
        cov = result["bayes_coverage95"]
        lines += ["`bayes` calibration: fraction of true one-step deltas inside the 95% predictive interval: "
                  + ", ".join(f"m={c}: {cov[str(c)]:.3f}" for c in ctx if cov[str(c)] is not None), ""]
    if "control" in result:
        splits = [s for s in result["control"][modes[0]] if s != "all"]
        lines += ["MPC episode return (mean ± std over tasks × seeds):", "",
                  "| mode | all | " + " | ".join(splits) + " |", "|---|---|" + "---|" * len(splits)]
        for m in modes:
            c = result["control"][m]
            lines.append(f"| {m} | {c['all']['mean']:.1f} ± {c['all']['std']:.1f} | "
                         + " | ".join(f"{c[s]['mean']:.1f} ± {c[s]['std']:.1f}" for s in splits) + " |")
    return "\n".join(lines) + "\n"


def run_eval(cfg: EvalConfig) -> dict:
    """`mbmrl eval`: evaluate, write eval.json + plots (+ results.md), print the tables."""
    result = evaluate(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(result, indent=2))
    plot_curves(result, out)
    md = markdown_tables(result)
    if cfg.markdown:
        (out / "results.md").write_text(md)
    print(md)
    print(f"wrote {out}/eval.json, adaptation_curve.png, returns.png in {result['wall_seconds']:.0f} s")
    return result

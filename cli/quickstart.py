"""`mbmrl quickstart`: the whole loop in minutes on a CPU.

Collect pendulum data across tasks, meta-train (plus the oracle), export to ONNX, serve
the artifact on a free loopback port, and over HTTP adapt and control pendulums from
CaDM's test range (never seen in training). Writes DIR/summary.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CADM_TABLE1_PENDULUM_MODERATE = {"vanilla dynamics model": -928.4, "+CaDM context encoder": -593.7}


@dataclass(frozen=True)
class QuickstartConfig:
    """Budget of the quickstart (defaults take about 7 minutes on 2 CPU cores)."""

    out: str = field(default="quickstart", metadata={"help": "output directory"})
    iters: int = field(default=2500, metadata={"help": "meta-training iterations"})
    n_tasks: int = field(default=150, metadata={"help": "training tasks"})
    episodes_per_task: int = field(default=3, metadata={"help": "random episodes per training task"})
    control_seeds: int = field(default=2, metadata={"help": "MPC episodes per test task and mode"})
    windows: int = field(default=8, metadata={"help": "context windows per test task for the prediction error"})
    episode_steps: int = field(default=200, metadata={"help": "MPC episode length"})
    max_tasks: int = field(default=0, metadata={"help": "evaluate only the first N test tasks per split (0 = all)"})
    seed: int = field(default=0, metadata={"help": "seed"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


def quickstart(cfg: QuickstartConfig) -> dict:
    """Run the whole loop; returns (and writes) the summary."""
    from mbmrl.export.onnx_export import ExportConfig, export_run
    from mbmrl.runtime import load_manifest
    from mbmrl.runtime.client import Client
    from mbmrl.train.config import TrainConfig
    from mbmrl.train.families import get_family
    from mbmrl.train.trainer import train

    from .evaluation import evaluate_tasks
    from .local_server import local_server

    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.__dict__, indent=2))
    print(f"[1/4] collecting data from {cfg.n_tasks} pendulum tasks and meta-training ({cfg.iters} iterations)")
    tcfg = TrainConfig(out=str(out / "run"), n_tasks=cfg.n_tasks, episodes_per_task=cfg.episodes_per_task,
                       iters=cfg.iters, seed=cfg.seed, device="cpu", progress=cfg.progress)
    train(tcfg)
    t_train = time.time() - t0
    print(f"      done in {t_train:.0f} s")
    print("[2/4] exporting to ONNX and verifying parity against torch")
    artifact = export_run(ExportConfig(run=tcfg.out, out=str(out / "artifact"), horizons=(15,)))
    family = get_family("pendulum")
    tasks = [t for split in family.test_splits for t in family.test_tasks(split)[: cfg.max_tasks or None]]
    modes = ["none", "recurrent", "gradient", "bayes", "oracle"]
    print(f"[3/4] serving the artifact on loopback; adapting and controlling {len(tasks)} test-range pendulums")
    pred = {m: {} for m in modes}
    pred_units = {m: [] for m in modes}
    returns = {m: {} for m in modes}
    with local_server(artifact) as url, local_server(artifact / "oracle") as oracle_url:
        delta_std = np.asarray(load_manifest(artifact)["normalization"]["delta_std"])

        def backends() -> dict:  # fresh clients (connections) for each task, so worker threads never share one
            return {m: Client(oracle_url if m == "oracle" else url).new_session for m in modes}

        # two workers keep both cores busy: ONNX Runtime releases the GIL while the server plans
        jobs = evaluate_tasks(family, tasks, modes, backends, delta_std, (16,), 1, cfg.windows, cfg.control_seeds,
                              cfg.episode_steps, cfg.seed, data_seed=lambda ti: 10_000 + ti, workers=2,
                              progress=cfg.progress)
        for ti, mode, errs, episodes in jobs:
            split = tasks[ti][0]
            pred[mode].setdefault(split, []).append(errs[16]["one_step_nmse"])
            pred_units[mode].append(errs[16]["one_step"])
            returns[mode].setdefault(split, []).extend(ep["return"] for ep in episodes)
    summary = {
        "prediction_error": {m: float(np.mean(sum(pred[m].values(), []))) for m in modes},
        "prediction_error_by_split": {s: {m: float(np.mean(pred[m][s])) for m in modes} for s in family.test_splits},
        "prediction_error_definition": "mean over test tasks of the one-step NMSE after 16 context transitions: "
                                       "squared delta error divided by the variance of that task's own true "
                                       "deltas, averaged over observation dims and context windows",
        "prediction_error_model_units": {m: float(np.mean(pred_units[m])) for m in modes},
        "context_size": 16,
        "control_return": {m: float(np.mean(sum(returns[m].values(), []))) for m in modes},
        "control_return_by_split": {s: {m: float(np.mean(returns[m][s])) for m in modes}
                                    for s in family.test_splits},
        "cadm_table1_pendulum_moderate": CADM_TABLE1_PENDULUM_MODERATE,
        "tasks": [{"split": s, **p} for s, p in tasks],
        "episode_steps": cfg.episode_steps,
        "start_distribution": "CaDM (hanging down)",
        "train_seconds": t_train,
        "wall_seconds": time.time() - t0,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("[4/4] results on test-range pendulums (never seen in training)")
    print(f"{'mode':<12}{'NMSE @16':>10}{'MSE units @16':>15}{'return (all)':>14}{'moderate':>11}{'extreme':>11}")
    for m in modes:
        by = summary["control_return_by_split"]
        print(f"{m:<12}{summary['prediction_error'][m]:>10.4f}{summary['prediction_error_model_units'][m]:>15.4f}"
              f"{summary['control_return'][m]:>14.1f}{by['moderate'][m]:>11.1f}{by['extreme'][m]:>11.1f}")
    print(f"CaDM Table 1 (Pendulum, moderate test): vanilla {CADM_TABLE1_PENDULUM_MODERATE['vanilla dynamics model']}"
          f", +CaDM {CADM_TABLE1_PENDULUM_MODERATE['+CaDM context encoder']}")
    print(f"wrote {out / 'summary.json'}; artifact in {artifact}; total {summary['wall_seconds']:.0f} s")
    return summary

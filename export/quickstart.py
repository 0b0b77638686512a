"""`mbmrl quickstart`: the whole loop in minutes on a CPU.

Collect pendulum data across tasks, meta-train (plus the oracle), export to ONNX, serve
the artifact on a free loopback port, and over HTTP adapt and control pendulums from
CaDM's test range (never seen in training). Writes DIR/summary.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from mbmrl.runtime.artifact import Manifest
from mbmrl.runtime.client import Client
from mbmrl.runtime.flags import write_config
from mbmrl.runtime.local_server import local_server
from mbmrl.train.config import TrainConfig
from mbmrl.train.evaluation.evaluate import evaluate
from mbmrl.train.evaluation.protocol import EvalProtocol
from mbmrl.train.evaluation.result import EvalResult
from mbmrl.train.families import get_family
from mbmrl.train.trainer import train

from .config import ExportConfig, QuickstartConfig
from .onnx_export import export_run

CONTEXT = 16  # transitions of context before the reported prediction error
CADM_TABLE1_PENDULUM_MODERATE = {"vanilla dynamics model": -928.4, "+CaDM context encoder": -593.7}


def quickstart(cfg: QuickstartConfig) -> dict:
    """Run the whole loop; returns (and writes) the summary."""
    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_config(cfg, out / "config.json")
    print(f"[1/4] collecting data from {cfg.n_tasks} pendulum tasks and meta-training ({cfg.iters} iterations)")
    tcfg = TrainConfig(out=str(out / "run"), n_tasks=cfg.n_tasks, episodes_per_task=cfg.episodes_per_task,
                       iters=cfg.iters, seed=cfg.seed, device="cpu", progress=cfg.progress, mlp_width=cfg.mlp_width,
                       planner=f"samples={cfg.samples}")
    train(tcfg)
    t_train = time.time() - t0
    print(f"      done in {t_train:.0f} s")
    print("[2/4] exporting to ONNX and verifying parity against torch")
    artifact = export_run(ExportConfig(run=tcfg.out, out=str(out / "artifact"), horizons=(15,)))
    family = get_family("pendulum")
    tasks = [t for split in family.test_splits for t in family.test_tasks(split)[: cfg.max_tasks or None]]
    modes = ["none", "recurrent", "gradient", "bayes", "oracle"]
    protocol = EvalProtocol(contexts=(CONTEXT,), horizon=1, windows=cfg.windows, seeds=cfg.control_seeds,
                            episode_steps=cfg.episode_steps, seed=cfg.seed, data_seed=10_000)
    print(f"[3/4] serving the artifact on loopback; adapting and controlling {len(tasks)} test-range pendulums")
    with local_server(artifact) as url, local_server(artifact / "oracle") as oracle_url:

        def backends() -> dict:  # fresh clients (connections) for each task, so worker threads never share one
            return {m: Client(oracle_url if m == "oracle" else url).new_session for m in modes}

        # two workers keep both cores busy: ONNX Runtime releases the GIL while the server plans
        result = evaluate(protocol, family, tasks, modes, backends, Manifest.load(artifact).normalization.delta_std,
                          workers=2, progress=cfg.progress)
    summary = summarize_result(result)
    summary.update(train_seconds=t_train, wall_seconds=time.time() - t0)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("[4/4] results on test-range pendulums (never seen in training)")
    print_summary(summary, result.splits)
    print(f"wrote {out / 'summary.json'}; artifact in {artifact}; total {summary['wall_seconds']:.0f} s")
    return summary


def summarize_result(result: EvalResult) -> dict:
    """The quickstart's summary.json: NMSE after CONTEXT transitions and MPC returns, per mode and split."""
    modes, splits = result.modes, result.splits
    return {
        "prediction_error": {m: result.prediction(m, CONTEXT) for m in modes},
        "prediction_error_by_split": {s: {m: result.prediction(m, CONTEXT, split=s) for m in modes} for s in splits},
        "prediction_error_definition": "mean over test tasks of the one-step NMSE after 16 context transitions: "
                                       "squared delta error divided by the variance of that task's own true "
                                       "deltas, averaged over observation dims and context windows",
        "prediction_error_model_units": {m: result.prediction(m, CONTEXT, "one_step") for m in modes},
        "context_size": CONTEXT,
        "control_return": {m: result.mean_return(m) for m in modes},
        "control_return_by_split": {s: {m: result.mean_return(m, s) for m in modes} for s in splits},
        "tasks_hurt": {m: r["summary"].get("tasks_hurt") for m, r in result.regressions().items()},
        "cadm_table1_pendulum_moderate": CADM_TABLE1_PENDULUM_MODERATE,
        "tasks": [{"split": t.split, **t.params} for t in result.tasks],
        "episode_steps": result.protocol.episode_steps,
        "start_distribution": "CaDM (hanging down)",
    }


def print_summary(summary: dict, splits: list[str]) -> None:
    """The table the quickstart ends with."""
    print(f"{'mode':<12}{'NMSE @16':>10}{'MSE units @16':>15}{'return (all)':>14}"
          + "".join(f"{s:>11}" for s in splits) + f"{'tasks hurt':>12}")
    for m, nmse in summary["prediction_error"].items():
        by, hurt = summary["control_return_by_split"], summary["tasks_hurt"].get(m)
        print(f"{m:<12}{nmse:>10.4f}{summary['prediction_error_model_units'][m]:>15.4f}"
              f"{summary['control_return'][m]:>14.1f}" + "".join(f"{by[s][m]:>11.1f}" for s in splits)
              + (f"{hurt:>9}/{len(summary['tasks'])}" if hurt is not None else f"{'-':>12}"))
    cadm = CADM_TABLE1_PENDULUM_MODERATE
    print(f"CaDM Table 1 (Pendulum, moderate test): vanilla {cadm['vanilla dynamics model']}"
          f", +CaDM {cadm['+CaDM context encoder']}")

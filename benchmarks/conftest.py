"""Fixtures of the pytest-benchmark suite: the artifact to time (MBMRL_BENCH_ARTIFACT, e.g. the quickstart's,
else a small one trained here in seconds) and the planner every engine uses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def artifact(tmp_path_factory) -> str:
    """MBMRL_BENCH_ARTIFACT, or a pendulum artifact at a small budget (width 128 like the default model)."""
    given = os.environ.get("MBMRL_BENCH_ARTIFACT")
    if given:
        if not (Path(given) / "manifest.json").is_file():
            raise pytest.UsageError(f"MBMRL_BENCH_ARTIFACT={given} has no manifest.json: point it at an artifact "
                                    "directory written by `mbmrl export`")
        return given
    from mbmrl.export.config import ExportConfig
    from mbmrl.export.onnx_export import export_run
    from mbmrl.train.config import TrainConfig
    from mbmrl.train.trainer import train

    run = tmp_path_factory.mktemp("run")
    train(TrainConfig(out=str(run), n_tasks=8, episodes_per_task=1, iters=20, progress=False, oracle=False))
    return str(export_run(ExportConfig(run=str(run), out=str(tmp_path_factory.mktemp("art") / "a"), horizons=(15,))))


@pytest.fixture(scope="session")
def planner(artifact) -> dict:
    """The artifact's default N and H, one iteration (MBMRL_BENCH_SAMPLES overrides N)."""
    from mbmrl.runtime.loader import load

    default = load(artifact).default_planner
    return {"samples": int(os.environ.get("MBMRL_BENCH_SAMPLES", default.samples)), "horizon": default.horizon,
            "iterations": 1}

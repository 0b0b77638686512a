"""Shared fixtures: a tiny but real trained-and-exported pendulum artifact, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A real meta-training run at a tiny budget (seconds): RUN/ with model.pt, oracle.pt, data.npz."""
    pytest.importorskip("torch")
    from mbmrl.train.config import TrainConfig
    from mbmrl.train.trainer import train

    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(out=str(out), n_tasks=8, episodes_per_task=1, iters=40, batch_size=16, seq_len=48,
                      hidden_size=8, feature_dim=16, mlp_width=32, gradient_weight=0.5, bayes_weight=0.1,
                      window=32, progress=False)  # window > feature_dim: a head can be identified
    return train(cfg)


@pytest.fixture(scope="session")
def tiny_artifact(tiny_run, tmp_path_factory) -> Path:
    """The tiny run exported to an artifact directory (and its oracle to ARTIFACT/oracle)."""
    from mbmrl.export.config import ExportConfig
    from mbmrl.export.onnx_export import export_run

    out = tmp_path_factory.mktemp("artifact") / "artifact"
    return export_run(ExportConfig(run=str(tiny_run), out=str(out), horizons=(15, 30)))
